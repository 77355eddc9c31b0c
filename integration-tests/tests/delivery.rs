//! Relaying: what towerpost accepts it delivers to the next hop (a real
//! SMTP sink on loopback), retries on 4xx, returns on 5xx, and survives
//! restarts.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integration_tests::sink::{Sink, Stage};
use integration_tests::{Server, have_tool, queued_id};

/// Test-sized scheduling: retries within a second or two.
const FAST: &str =
    "queue_run_delay = \"1s\"\nminimal_backoff_time = \"1s\"\nmaximal_backoff_time = \"2s\"";

fn relay_to(sink: &Sink) -> String {
    format!("{FAST}\nrelayhost = \"[127.0.0.1]:{}\"", sink.addr().port())
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(server: &Server, from: &str, to: &[&str], subject: &str) -> String {
    let mut c = server.client();
    let reply = c.send_mail(
        from,
        to,
        &format!("Subject: {subject}\r\n\r\nbody of {subject}\r\n"),
    );
    let id = queued_id(&reply);
    c.cmd("QUIT");
    id
}

#[test]
fn recipients_of_one_destination_travel_in_one_transaction() {
    let sink = Sink::start();
    let server = Server::start(&relay_to(&sink));
    let id = send(
        &server,
        "a@example.test",
        &["b@example.test", "c@example.test"],
        "two",
    );
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "a@example.test");
    assert_eq!(got[0].rcpt_to, ["b@example.test", "c@example.test"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(
        data.contains(&format!("id {id}")),
        "Received header carries the queue id"
    );
    assert!(data.contains("Subject: two"));
    server.wait_for_log(&format!("{id}: removed"));
    server.wait_for_log(&format!(
        "{id}: to=<b@example.test>, relay=127.0.0.1[127.0.0.1]:{}",
        sink.addr().port()
    ));
    assert!(
        server
            .log()
            .contains("status=sent (250 2.0.0 Ok: queued as")
    );
    assert!(server.queue().is_empty());
}

#[test]
fn several_destinations_get_one_delivery_each() {
    let (a, b) = (Sink::start(), Sink::start());
    let server = Server::start(&format!(
        "{FAST}\n[transport_maps]\n\"a.test\" = \"smtp:[127.0.0.1]:{}\"\n\"b.test\" = \"smtp:[127.0.0.1]:{}\"\n",
        a.addr().port(),
        b.addr().port()
    ));
    send(
        &server,
        "s@example.test",
        &["x@a.test", "y@b.test", "z@a.test"],
        "split",
    );
    let got_a = a.wait_for(1, Duration::from_secs(20));
    let got_b = b.wait_for(1, Duration::from_secs(20));
    assert_eq!(got_a[0].rcpt_to, ["x@a.test", "z@a.test"]);
    assert_eq!(got_b[0].rcpt_to, ["y@b.test"]);
}

#[test]
fn sessions_are_reused_for_the_next_message() {
    let sink = Sink::start();
    let server = Server::start(&relay_to(&sink));
    for i in 0..3 {
        send(
            &server,
            "a@example.test",
            &["b@example.test"],
            &format!("m{i}"),
        );
        sink.wait_for(i + 1, Duration::from_secs(20));
    }
    assert_eq!(sink.messages().len(), 3);
    assert_eq!(
        sink.connections(),
        1,
        "one cached session carried all three"
    );
}

#[test]
fn temporary_failure_is_deferred_then_retried_and_delivered() {
    let sink = Sink::start();
    let tries = Arc::new(AtomicUsize::new(0));
    let counter = tries.clone();
    sink.set_rule(move |stage| match stage {
        Stage::Rcpt(_) if counter.fetch_add(1, Ordering::SeqCst) < 2 => {
            Some("451 4.3.0 try again later".into())
        }
        _ => None,
    });
    let server = Server::start(&relay_to(&sink));
    let id = send(&server, "a@example.test", &["b@example.test"], "retry");
    server.wait_for_log(&format!("{id}: to=<b@example.test>"));
    server.wait_for_log("dsn=4.3.0, status=deferred (host 127.0.0.1[127.0.0.1] said: 451 4.3.0 try again later (in reply to RCPT TO command))");
    let got = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1);
    assert!(tries.load(Ordering::SeqCst) >= 3);
    server.wait_for_log(&format!("{id}: removed"));
}

#[test]
fn permanent_failure_returns_a_dsn_to_the_sender() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Rcpt(r) if r.starts_with("nouser@") => Some("550 5.1.1 User unknown".into()),
        _ => None,
    });
    let server = Server::start(&relay_to(&sink));
    let id = send(
        &server,
        "sender@example.test",
        &["nouser@direct.test", "ok@direct.test"],
        "bounce me",
    );
    let got = sink.wait_for(2, Duration::from_secs(20));
    let original = got
        .iter()
        .find(|m| m.mail_from == "sender@example.test")
        .expect("original");
    assert_eq!(original.rcpt_to, ["ok@direct.test"]);
    let dsn = got
        .iter()
        .find(|m| m.mail_from.is_empty())
        .expect("a DSN from <>");
    assert_eq!(dsn.rcpt_to, ["sender@example.test"]);
    let text = String::from_utf8_lossy(&dsn.data);
    for needle in [
        "Content-Type: multipart/report; report-type=delivery-status",
        "Final-Recipient: rfc822; nouser@direct.test",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown",
        &format!("X-Postfix-Queue-ID: {id}"),
        "Subject: bounce me",
    ] {
        assert!(text.contains(needle), "DSN lacks {needle:?}:\n{text}");
    }
    server.wait_for_log(&format!("{id}: sender non-delivery notification:"));
    server.wait_for_log("dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 User unknown (in reply to RCPT TO command))");
}

#[test]
fn next_hop_down_defers_without_loss_and_delivers_when_it_returns() {
    let sink = Sink::start();
    let port = sink.stop();
    let server = Server::start(&format!("{FAST}\nrelayhost = \"[127.0.0.1]:{port}\""));
    let id = send(&server, "a@example.test", &["down@direct.test"], "later");
    server.wait_for_log(&format!("{id}: to=<down@direct.test>, relay=none"));
    server.wait_for_log(&format!(
        "dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused)"
    ));
    // The log line comes before the attempt's outcome is stored.
    wait_until("the message is deferred", Duration::from_secs(10), || {
        server
            .queue()
            .first()
            .is_some_and(|m| m["queue_name"] == "deferred")
    });
    let queue = server.queue();
    assert_eq!(queue.len(), 1);
    assert!(
        queue[0]["recipients"][0]["delay_reason"]
            .as_str()
            .unwrap()
            .contains("Connection refused")
    );
    let sink = Sink::start_on(port);
    let got = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1);
    server.wait_for_log(&format!("{id}: removed"));
}

#[test]
fn defer_transports_park_mail_across_restarts_without_connecting() {
    let sink = Sink::start();
    let mut server = Server::start(&format!(
        "{FAST}\ndefer_transports = [\"etrn-only\"]\n[transport.etrn-only]\ntype = \"smtp\"\n[transport_maps]\n\"customer.test\" = \"etrn-only:[127.0.0.1]:{}\"\n",
        sink.addr().port()
    ));
    let id = send(&server, "a@example.test", &["rcpt@customer.test"], "parked");
    server.wait_for_log(&format!("{id}: to=<rcpt@customer.test>, relay=none"));
    server.wait_for_log("dsn=4.3.2, status=deferred (deferred transport)");
    server.terminate();
    server.restart();
    // Several queue runs later: still parked, the next hop never contacted.
    std::thread::sleep(Duration::from_secs(4));
    let queue = server.queue();
    assert_eq!(queue.len(), 1);
    assert_eq!(
        queue[0]["recipients"][0]["delay_reason"],
        "deferred transport"
    );
    assert_eq!(sink.connections(), 0);
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_message() {
    let sink = Sink::start();
    // Slow the sink a little so deliveries are in flight when the kill lands.
    sink.set_rule(|stage| {
        if let Stage::EndOfData(_) = stage {
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    });
    let mut server = Server::start(&relay_to(&sink));
    let mut accepted = Vec::new();
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                let mut c = integration_tests::Client::connect(addr);
                for i in 0..25 {
                    let Some(reply) = c.try_send_mail(
                        "load@example.test",
                        &["b@example.test"],
                        &format!("Subject: load {t}-{i}\r\n\r\nx\r\n"),
                    ) else {
                        break;
                    };
                    if reply.starts_with("250") {
                        ids.push(queued_id(&reply));
                    }
                }
                ids
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.kill9();
    for s in senders {
        // Sessions die with the server; what they got a 250 for counts.
        accepted.extend(s.join().expect("sender thread"));
    }
    server.restart();
    wait_until("the queue to drain", Duration::from_secs(60), || {
        server.queue().is_empty()
    });
    let seen: HashSet<String> = sink
        .messages()
        .iter()
        .filter_map(|m| {
            let data = String::from_utf8_lossy(&m.data).into_owned();
            data.split(" id ")
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        })
        .collect();
    for id in &accepted {
        assert!(
            seen.contains(id),
            "{id} got a 250 but never reached the sink"
        );
    }
    assert!(!accepted.is_empty());
}

#[test]
fn delivers_to_postfix_smtp_sink() {
    if !have_tool("smtp-sink") {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Killed (and reaped) however the test ends: spawned directly, not
    // under timeout(1), whose death would orphan it.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sink = Reaped(
        Command::new("smtp-sink")
            .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "16"])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let server = Server::start(&format!("{FAST}\nrelayhost = \"[127.0.0.1]:{port}\""));
    let ids: Vec<String> = (0..5)
        .map(|i| {
            send(
                &server,
                "a@example.test",
                &["b@example.test", "c@example.test"],
                &format!("pf{i}"),
            )
        })
        .collect();
    for id in &ids {
        server.wait_for_log(&format!("{id}: removed"));
    }
    assert!(
        server
            .log()
            .contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}"))
    );
}

#[test]
fn delayed_mail_warns_the_sender_once() {
    let sink = Sink::start();
    let dead = Sink::start().stop();
    let server = Server::start(&format!(
        "{}\ndelay_warning_time = \"1s\"\n[transport_maps]\n\"down.test\" = \"smtp:[127.0.0.1]:{dead}\"\n",
        relay_to(&sink)
    ));
    let id = send(&server, "sender@example.test", &["rcpt@down.test"], "slow");
    let got = sink.wait_for(1, Duration::from_secs(30));
    let warning = &got[0];
    assert_eq!(warning.mail_from, "");
    assert_eq!(warning.rcpt_to, ["sender@example.test"]);
    let text = String::from_utf8_lossy(&warning.data);
    assert!(
        text.contains("Subject: Delayed Mail (still being retried)"),
        "{text}"
    );
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(text.contains("Will-Retry-Until:"), "{text}");
    server.wait_for_log(&format!("{id}: sender delay notification:"));
    // Further retries do not warn again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(server.queue().len(), 1, "the original is still queued");
}

#[test]
fn starttls_to_the_next_hop_when_the_level_asks_for_it() {
    // The next hop is a second towerpost that offers STARTTLS.
    let next = Server::start_with("", &[("smtp", "starttls")]);
    let server = Server::start(&format!(
        "{FAST}\nsmtp_tls_security_level = \"encrypt\"\nrelayhost = \"[127.0.0.1]:{}\"",
        next.addr().port()
    ));
    let id = send(&server, "a@example.test", &["b@example.test"], "over tls");
    server.wait_for_log(&format!("{id}: removed"));
    next.wait_for_log("Anonymous TLS connection established from unknown[127.0.0.1]");
    assert_eq!(next.queue().len(), 1);
    let received = next.log();
    assert!(received.contains("from=<a@example.test>"), "{received}");
}

#[test]
fn required_tls_defers_when_the_next_hop_does_not_offer_it() {
    let sink = Sink::start();
    let server = Server::start(&format!(
        "{}\nsmtp_tls_security_level = \"encrypt\"",
        relay_to(&sink)
    ));
    let id = send(&server, "a@example.test", &["b@example.test"], "no tls");
    server.wait_for_log(&format!("{id}: to=<b@example.test>, relay=none"));
    server.wait_for_log("dsn=4.7.4, status=deferred (TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])");
    assert!(sink.messages().is_empty());
    // The session it gave up on ends with QUIT, not a dropped socket.
    wait_until("QUIT after giving up", Duration::from_secs(10), || {
        sink.quits() >= 1 && sink.open_connections() == 0
    });
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Idle outbound sessions are closed with QUIT once they have been idle
/// for `smtp_connection_cache_time_limit` (2 s by default), whether or not
/// more mail comes for their next hop, so many destinations cannot run a
/// relay out of file descriptors.
#[test]
fn idle_outbound_sessions_are_closed_on_time_with_quit() {
    let sinks: Vec<Sink> = (0..30).map(|_| Sink::start()).collect();
    let mut config = String::from("[transport_maps]\n");
    for (i, sink) in sinks.iter().enumerate() {
        config.push_str(&format!(
            "\"d{i}.test\" = \"smtp:[127.0.0.1]:{}\"\n",
            sink.addr().port()
        ));
    }
    let server = Server::start(&config);
    let baseline = open_fds(server.pid());
    for i in 0..sinks.len() {
        send(&server, "a@example.test", &[&format!("r@d{i}.test")], "hop");
    }
    for sink in &sinks {
        assert_eq!(sink.wait_for(1, Duration::from_secs(30)).len(), 1);
    }
    let delivered = Instant::now();
    // The limit, plus a second.
    let deadline = Duration::from_secs(3);
    while delivered.elapsed() < deadline
        && sinks
            .iter()
            .any(|s| s.quits() < 1 || s.open_connections() > 0)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, sink) in sinks.iter().enumerate() {
        assert_eq!(
            (sink.connections(), sink.quits(), sink.open_connections()),
            (1, 1, 0),
            "next hop d{i}.test: (connections, QUITs, open) after {:?}",
            delivered.elapsed()
        );
    }
    let fds = open_fds(server.pid());
    assert!(fds <= baseline, "fds: {baseline} before, {fds} after");
}

/// A bounce of 8-bit mail with internationalised headers: `Remote-MTA` is
/// `dns; host`, the notification goes out with `BODY=8BITMIME`, and the
/// returned message is `message/global` (RFC 6532), as Python's email
/// package reads it.
#[test]
fn bounces_of_8bit_mail_with_utf8_headers_are_well_formed() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Rcpt(r) if r.starts_with("nouser@") => Some("550 5.1.1 User unknown".into()),
        _ => None,
    });
    let server = Server::start(&relay_to(&sink));
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("MAIL FROM:<sender@example.test> BODY=8BITMIME SMTPUTF8"),
        "250 2.1.0 Ok"
    );
    assert_eq!(c.cmd("RCPT TO:<nouser@direct.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(
        "Subject: Grüße aus Köln\r\nFrom: sender@example.test\r\n\r\nKäsekuchen\r\n.\r\n"
            .as_bytes(),
    );
    assert!(c.read_reply().starts_with("250 2.0.0 Ok: queued as"));
    c.cmd("QUIT");
    let got = sink.wait_for(1, Duration::from_secs(20));
    let dsn = got.iter().find(|m| m.mail_from.is_empty()).expect("a DSN");
    assert!(
        dsn.mail_params.iter().any(|p| p == "BODY=8BITMIME"),
        "{:?}",
        dsn.mail_params
    );
    let path = server.spool().join("dsn.eml");
    std::fs::write(&path, &dsn.data).unwrap();
    let parsed = integration_tests::run_python(
        "import sys, email\n\
         from email import policy\n\
         m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)\n\
         print('types', ' '.join(p.get_content_type() for p in m.walk()))\n\
         for p in m.walk():\n\
         \x20   if p.get_content_type() == 'message/delivery-status':\n\
         \x20       for block in p.get_payload():\n\
         \x20           if block['Remote-MTA']:\n\
         \x20               print('remote-mta', block['Remote-MTA'])\n",
        &[path.to_str().unwrap()],
    );
    assert!(parsed.contains("message/global"), "{parsed}");
    assert!(!parsed.contains("message/rfc822"), "{parsed}");
    assert!(parsed.contains("remote-mta dns; 127.0.0.1\n"), "{parsed}");
}

/// Two next hops: `direct.test` mail goes to one that offers neither
/// SMTPUTF8 nor DSN, the sender's domain `example.test` to a full one
/// (where notifications arrive).
fn hidden_extensions() -> (Sink, Sink, Server) {
    let bare = Sink::start();
    bare.set_rule(|stage| match stage {
        Stage::Ehlo(_) => {
            Some("250-bare.test\n250-PIPELINING\n250-8BITMIME\n250 ENHANCEDSTATUSCODES".into())
        }
        _ => None,
    });
    let full = Sink::start();
    let server = Server::start(&format!(
        "{FAST}\nrelayhost = \"[127.0.0.1]:{}\"\n[transport_maps]\n\"example.test\" = \"smtp:[127.0.0.1]:{}\"\n",
        bare.addr().port(),
        full.addr().port()
    ));
    (bare, full, server)
}

#[test]
fn utf8_headers_toward_a_server_without_smtputf8_bounce_5_6_7() {
    let (bare, full, server) = hidden_extensions();
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("MAIL FROM:<sender@example.test> SMTPUTF8"),
        "250 2.1.0 Ok"
    );
    assert_eq!(c.cmd("RCPT TO:<r@direct.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send("Subject: Grüße\r\n\r\nHallo\r\n.\r\n".as_bytes());
    let id = queued_id(&c.read_reply());
    c.cmd("QUIT");
    server.wait_for_log(&format!("{id}: to=<r@direct.test>"));
    server.wait_for_log("dsn=5.6.7, status=bounced (SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1])");
    let dsn = full.wait_for(1, Duration::from_secs(20));
    assert!(dsn[0].mail_from.is_empty());
    assert!(
        dsn[0].mail_params.iter().any(|p| p == "SMTPUTF8"),
        "{:?}",
        dsn[0].mail_params
    );
    let text = String::from_utf8_lossy(&dsn[0].data);
    assert!(text.contains("Status: 5.6.7"), "{text}");
    assert!(
        bare.messages().is_empty(),
        "sent unchanged to a server without SMTPUTF8"
    );
}

#[test]
fn notify_success_toward_a_server_without_dsn_gets_a_relayed_notice() {
    let (bare, full, server) = hidden_extensions();
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("MAIL FROM:<sender@example.test> RET=FULL"),
        "250 2.1.0 Ok"
    );
    assert_eq!(
        c.cmd("RCPT TO:<ok@direct.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ok@direct.test"),
        "250 2.1.5 Ok"
    );
    assert_eq!(c.cmd("RCPT TO:<quiet@direct.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: tell me\r\n\r\nsecret body\r\n.\r\n");
    let id = queued_id(&c.read_reply());
    c.cmd("QUIT");
    assert_eq!(
        bare.wait_for(1, Duration::from_secs(20))[0].rcpt_to.len(),
        2
    );
    server.wait_for_log(&format!("{id}: sender delivery status notification:"));
    let notice = full.wait_for(1, Duration::from_secs(20));
    assert!(notice[0].mail_from.is_empty());
    let text = String::from_utf8_lossy(&notice[0].data);
    for needle in [
        "Subject: Successful Mail Delivery Report",
        "Final-Recipient: rfc822; ok@direct.test",
        "Action: relayed",
        "Remote-MTA: dns; 127.0.0.1",
        "Content-Type: text/rfc822-headers",
    ] {
        assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
    }
    assert!(
        !text.contains("quiet@direct.test"),
        "only who asked:\n{text}"
    );
    assert!(!text.contains("secret body"), "headers only:\n{text}");
}

/// A next hop without 8BITMIME (nor SMTPUTF8 and DSN).
fn seven_bit_sink() -> Sink {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Ehlo(_) => Some("250-seven.test\n250-PIPELINING\n250 ENHANCEDSTATUSCODES".into()),
        _ => None,
    });
    sink
}

fn send_8bit(server: &Server, content: &str) -> String {
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("MAIL FROM:<sender@example.test> BODY=8BITMIME"),
        "250 2.1.0 Ok"
    );
    assert_eq!(c.cmd("RCPT TO:<r@direct.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(format!("{content}.\r\n").as_bytes());
    let id = queued_id(&c.read_reply());
    c.cmd("QUIT");
    id
}

#[test]
fn eight_bit_mail_toward_a_7bit_server_is_converted_or_bounced() {
    let seven = seven_bit_sink();
    let full = Sink::start();
    let server = Server::start(&format!(
        "{FAST}\nrelayhost = \"[127.0.0.1]:{}\"\n[transport_maps]\n\"example.test\" = \"smtp:[127.0.0.1]:{}\"\n",
        seven.addr().port(),
        full.addr().port()
    ));
    let text = "Subject: menu\r\nContent-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: 8bit\r\n\r\nCrème brûlée = dessert\r\n";
    send_8bit(&server, text);
    let got = seven.wait_for(1, Duration::from_secs(20));
    assert!(
        !got[0].mail_params.iter().any(|p| p.starts_with("BODY=")),
        "{:?}",
        got[0].mail_params
    );
    assert!(
        got[0].data.is_ascii(),
        "{}",
        String::from_utf8_lossy(&got[0].data)
    );
    let path = server.spool().join("converted.eml");
    std::fs::write(&path, &got[0].data).unwrap();
    let decoded = integration_tests::run_python(
        "import sys, email\nfrom email import policy\n\
         m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)\n\
         print(m['Content-Transfer-Encoding'])\nprint(m.get_content(), end='')\n",
        &[path.to_str().unwrap()],
    );
    // (Python keeps the message's CRLF line ends in what it decodes.)
    assert_eq!(
        decoded.replace("\r\n", "\n"),
        "quoted-printable\nCrème brûlée = dessert\n"
    );

    // An 8-bit header cannot be converted: 5.6.3, to the sender.
    let id = send_8bit(&server, "Subject: Crème\r\n\r\nbrûlée\r\n");
    server.wait_for_log(&format!("{id}: to=<r@direct.test>"));
    server.wait_for_log("dsn=5.6.3, status=bounced (host 127.0.0.1[127.0.0.1] does not offer 8BITMIME, and the message cannot be converted to 7-bit: 8-bit data in a message header)");
    let dsn = full.wait_for(1, Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&dsn[0].data).contains("Status: 5.6.3"));
}

#[test]
fn disable_mime_output_conversion_sends_8bit_unchanged() {
    let seven = seven_bit_sink();
    let server = Server::start(&format!(
        "{FAST}\ndisable_mime_output_conversion = true\nrelayhost = \"[127.0.0.1]:{}\"",
        seven.addr().port()
    ));
    send_8bit(&server, "Subject: raw\r\n\r\nbrûlée\r\n");
    let got = seven.wait_for(1, Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&got[0].data).ends_with("\r\n\r\nbrûlée\r\n"));
}

/// `destination_rate_limit` paces one destination (one message every
/// unit/N) and leaves the others alone. 30 messages at 10 per 3 s: at
/// least 0.3 s apart, so at least 8.7 s from the first to the last.
#[test]
fn a_destination_rate_limit_paces_that_destination_only() {
    let slow = Sink::start();
    let fast = Sink::start();
    let server = Server::start(&format!(
        "[transport.paced]\ntype = \"smtp\"\ndestination_rate_limit = \"10/3s\"\n\
         [transport_maps]\n\"slow.test\" = \"paced:[127.0.0.1]:{}\"\n\"fast.test\" = \"smtp:[127.0.0.1]:{}\"\n",
        slow.addr().port(),
        fast.addr().port()
    ));
    let started = Instant::now();
    for i in 0..30 {
        send(
            &server,
            "a@example.test",
            &[&format!("r{i}@slow.test")],
            "paced",
        );
        send(
            &server,
            "a@example.test",
            &[&format!("r{i}@fast.test")],
            "free",
        );
    }
    assert_eq!(fast.wait_for(30, Duration::from_secs(20)).len(), 30);
    let fast_done = started.elapsed();
    assert_eq!(slow.wait_for(30, Duration::from_secs(30)).len(), 30);
    let slow_done = started.elapsed();
    assert!(
        slow_done >= Duration::from_millis(29 * 300 - 100),
        "30 paced messages in {slow_done:?}"
    );
    assert!(
        fast_done + Duration::from_secs(2) < slow_done,
        "the other destination was slowed: {fast_done:?} vs {slow_done:?}"
    );
}

/// Postfix's flow control: a destination that refuses sessions (421 at
/// connect) is declared dead after a failed cohort, and the rest of its
/// mail is deferred without more connections until the backoff has passed.
#[test]
fn a_destination_that_refuses_sessions_is_left_alone_for_a_while() {
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Connect => Some("421 4.3.2 too busy, come back later".into()),
        _ => None,
    });
    // Retries come only after 30 s, so all that happens here is the first
    // attempt of each message.
    let server = Server::start(&format!(
        "queue_run_delay = \"1s\"\nminimal_backoff_time = \"30s\"\nmaximal_backoff_time = \"60s\"\nrelayhost = \"[127.0.0.1]:{}\"",
        sink.addr().port()
    ));
    let ids: Vec<String> = (0..12)
        .map(|i| {
            send(
                &server,
                "a@example.test",
                &[&format!("r{i}@direct.test")],
                "busy",
            )
        })
        .collect();
    for id in &ids {
        server.wait_for_log(&format!("{id}: to=<r"));
    }
    server.wait_for_log("dsn=4.3.2, status=deferred (delivery temporarily suspended: host 127.0.0.1[127.0.0.1] said: 421 4.3.2 too busy, come back later (in reply to initial server greeting))");
    let tried = sink.connections();
    assert!(
        (4..12).contains(&tried),
        "{tried} connections for 12 messages (initial concurrency 5, one failed cohort)"
    );
}

/// A next hop that refuses every recipient but answers the pipelined DATA
/// with 354 anyway (RFC 2920 says it should not): the client ends the
/// empty content with "." before RSET, or RSET would be read as content.
#[test]
fn a_354_after_every_recipient_was_refused_gets_an_empty_message() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let Ok((mut out, _)) = listener.accept() else {
            return;
        };
        let _ = out.set_read_timeout(Some(Duration::from_secs(20)));
        let mut input = BufReader::new(out.try_clone().unwrap());
        let _ = out.write_all(b"220 lax.test ESMTP\r\n");
        let mut in_data = false;
        let mut line = String::new();
        while input.read_line(&mut line).unwrap_or(0) > 0 {
            let text = line.trim_end().to_owned();
            line.clear();
            log.lock().unwrap().push(text.clone());
            let verb = text.to_ascii_uppercase();
            let reply: &[u8] = if in_data {
                if text != "." {
                    continue;
                }
                in_data = false;
                b"554 5.5.1 no valid recipients\r\n"
            } else if verb.starts_with("EHLO") {
                b"250-lax.test\r\n250 PIPELINING\r\n"
            } else if verb.starts_with("RCPT") {
                b"550 5.1.1 no such user\r\n"
            } else if verb.starts_with("DATA") {
                in_data = true;
                b"354 go ahead\r\n"
            } else if verb.starts_with("QUIT") {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            } else {
                b"250 ok\r\n"
            };
            let _ = out.write_all(reply);
        }
    });
    let server = Server::start(&format!("{FAST}\nrelayhost = \"[127.0.0.1]:{port}\""));
    let id = send(&server, "a@example.test", &["nobody@direct.test"], "lax");
    server.wait_for_log(&format!("{id}: to=<nobody@direct.test>"));
    server.wait_for_log("dsn=5.1.1, status=bounced");
    wait_until(
        "RSET after the empty message",
        Duration::from_secs(10),
        || {
            let seen = seen.lock().unwrap();
            let dot = seen.iter().position(|l| l == ".");
            let rset = seen.iter().position(|l| l.eq_ignore_ascii_case("RSET"));
            matches!((dot, rset), (Some(d), Some(r)) if d < r)
        },
    );
}
