//! `/metrics` and `/healthz` on `metrics_listen`: after a scripted session
//! each counter has moved by exactly what happened, and the queue gauges
//! show the deferred message while it waits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use integration_tests::sink::{Sink, Stage};
use integration_tests::{Server, WAIT, queued_id};

/// `GET path` over HTTP/1.1: (status code, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

/// Every sample of a scrape: `name{labels}` → value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn metrics_addr(server: &Server) -> SocketAddr {
    server.wait_for_log("metrics listener on ");
    let log = server.log();
    let rest = log.split("metrics listener on ").nth(1).unwrap();
    rest.lines().next().unwrap().trim().parse().unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn counters_move_by_exactly_what_a_scripted_session_did() {
    let sink = Sink::start();
    let deferring = Arc::new(AtomicBool::new(true));
    let d = deferring.clone();
    sink.set_rule(move |stage| match stage {
        Stage::Rcpt(a) if a.starts_with("later@") && d.load(Ordering::SeqCst) => {
            Some("451 4.3.0 try again later".into())
        }
        _ => None,
    });
    // 127.0.0.1 is outside mynetworks: it may relay to relay.test only.
    // The default backoff keeps the deferred message waiting until ETRN.
    let server = Server::start(&format!(
        "mynetworks = \"192.0.2.0/24\"\nrelay_domains = [\"relay.test\"]\n\
         relayhost = \"[127.0.0.1]:{}\"\nmetrics_listen = \"127.0.0.1:0\"",
        sink.addr().port()
    ));
    let http = metrics_addr(&server);
    let (code, body) = get(http, "/healthz");
    assert_eq!(
        (code, body.as_str()),
        (200, "ok: serving, queue manager answering\n")
    );
    assert_eq!(get(http, "/nothing").0, 404);
    let before = scrape(http);

    let mut c = server.client();
    c.cmd("EHLO client.test");
    // One delivered.
    let now = queued_id(&c.send_mail("a@src.test", &["now@relay.test"], "Subject: 1\r\n\r\nx\r\n"));
    server.wait_for_log(&format!("{now}: removed"));
    // One deferred.
    let later = queued_id(&c.send_mail(
        "a@src.test",
        &["later@relay.test"],
        "Subject: 2\r\n\r\nx\r\n",
    ));
    server.wait_for_log(&format!("{later}: to=<later@relay.test>"));
    // One relay attempt.
    c.cmd("MAIL FROM:<a@src.test>");
    assert_eq!(
        c.cmd("RCPT TO:<victim@elsewhere.test>"),
        "454 4.7.1 <victim@elsewhere.test>: Relay access denied"
    );
    c.cmd("RSET");

    let waiting = scrape(http);
    assert_eq!(waiting["towerpost_queue_messages{state=\"deferred\"}"], 1.0);
    assert_eq!(
        waiting["towerpost_queue_destination_messages{domain=\"relay.test\"}"],
        1.0
    );

    // One ETRN, once the site takes mail again.
    deferring.store(false, Ordering::SeqCst);
    assert!(c.cmd("ETRN relay.test").starts_with("250 "));
    server.wait_for_log(&format!("{later}: removed"));
    c.cmd("QUIT");
    wait_until("the session to close", || {
        scrape(http)["towerpost_smtpd_connections_open"] == 0.0
    });

    let after = scrape(http);
    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    let expected = [
        ("towerpost_smtpd_connections_total", 1.0),
        ("towerpost_messages_accepted_total", 2.0),
        ("towerpost_recipients_accepted_total", 2.0),
        ("towerpost_messages_delivered_total", 2.0),
        ("towerpost_messages_deferred_total", 1.0),
        ("towerpost_messages_bounced_total", 0.0),
        ("towerpost_recipients_total{outcome=\"sent\"}", 2.0),
        ("towerpost_recipients_total{outcome=\"deferred\"}", 1.0),
        (
            "towerpost_flush_requests_total{origin=\"etrn\",outcome=\"queued\"}",
            1.0,
        ),
        (
            "towerpost_smtpd_rejections_total{stage=\"RCPT\",rule=\"defer_unauth_destination\"}",
            1.0,
        ),
        (
            "towerpost_smtpd_commands_total{verb=\"RCPT\",class=\"2xx\"}",
            2.0,
        ),
        (
            "towerpost_smtpd_commands_total{verb=\"RCPT\",class=\"4xx\"}",
            1.0,
        ),
        (
            "towerpost_smtpd_commands_total{verb=\"ETRN\",class=\"2xx\"}",
            1.0,
        ),
        (
            "towerpost_smtpd_commands_total{verb=\"DATA\",class=\"2xx\"}",
            2.0,
        ),
        ("towerpost_delivery_duration_seconds_count", 3.0),
        ("towerpost_queue_time_seconds_count", 2.0),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(name, want)| delta(name) != *want)
        .map(|(name, want)| format!("{name}: moved {} (want {want})", delta(name)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\n{after:#?}");
    // Three deliveries; whether the cached session outlived the wait
    // before ETRN depends on the machine's speed.
    let new = delta("towerpost_smtp_deliveries_total{session=\"new\"}");
    let reused = delta("towerpost_smtp_deliveries_total{session=\"reused\"}");
    assert!(
        new >= 1.0 && new + reused == 3.0,
        "new {new}, reused {reused}"
    );
    assert_eq!(after["towerpost_queue_messages{state=\"deferred\"}"], 0.0);
    assert_eq!(
        after.get("towerpost_queue_destination_messages{domain=\"relay.test\"}"),
        Some(&0.0),
        "a fast-flush site is always reported"
    );
}
