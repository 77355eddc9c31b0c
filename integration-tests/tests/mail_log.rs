//! The mail log as the tools operators already run read it: pflogsumm's
//! report counts what was sent, fail2ban's stock `postfix` and
//! `postfix-sasl` filters find the rejects and failed logins, the file
//! survives logrotate's move-and-SIGUSR1, and the JSON format carries the
//! same fields.

use std::path::Path;
use std::process::Command;

use integration_tests::sink::{Sink, Stage};
use integration_tests::{Client, Server, add_sasl_user, have_tool, queued_id, towerpost_bin};

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The number before `label` in pflogsumm's "Grand Totals".
fn total(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            (words.next()? == label).then_some(n)
        })
        .unwrap_or_else(|| panic!("no {label:?} total in:\n{report}"))
}

/// `fail2ban-regex LOG FILTER`: how many lines matched.
fn fail2ban_matches(log: &Path, filter: &str) -> u64 {
    let out = Command::new("fail2ban-regex")
        .arg(log)
        .arg(filter)
        .output()
        .expect("run fail2ban-regex");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines = text
        .lines()
        .find(|l| l.starts_with("Lines: "))
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    // `Lines: 36 lines, 0 ignored, 2 matched, 34 missed`
    lines
        .split(", ")
        .find_map(|part| part.strip_suffix(" matched")?.parse().ok())
        .unwrap_or_else(|| panic!("no match count in {lines:?}"))
}

#[test]
fn pflogsumm_and_fail2ban_read_the_rotated_mail_log() {
    let pflogsumm = have_tool("pflogsumm");
    let fail2ban = have_tool("fail2ban-regex");
    let sink = Sink::start();
    sink.set_rule(|stage| match stage {
        Stage::Rcpt(a) if a.starts_with("defer@") => Some("451 4.3.0 try again later".into()),
        Stage::Rcpt(a) if a.starts_with("bounce@") => Some("550 5.1.1 no such user".into()),
        _ => None,
    });
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    add_sasl_user(&passwd, "alice@src.test", "correct horse");
    let maillog = dir.path().join("maillog");
    // 127.0.0.1 is outside mynetworks: it relays only to relay.test, or
    // once authenticated.
    let server = Server::start_with_listeners(
        &format!(
            "mynetworks = \"192.0.2.0/24\"\nrelay_domains = [\"relay.test\"]\n\
             relayhost = \"[127.0.0.1]:{}\"\nsmtpd_sasl_password_file = \"{}\"\n\
             maillog_file = \"{}\"",
            sink.addr().port(),
            passwd.display(),
            maillog.display()
        ),
        &[(
            "smtp",
            "none",
            "smtpd_sasl_auth_enable = true\nsmtpd_tls_auth_only = false",
        )],
    );

    // One message: one recipient delivered, one deferred, one bounced (its
    // notification to the sender is delivered too).
    let mut c = server.client();
    let first = queued_id(&c.send_mail(
        "a@src.test",
        &["ok@relay.test", "defer@relay.test", "bounce@relay.test"],
        "Subject: one\r\nMessage-ID: <one@src.test>\r\n\r\nbody\r\n",
    ));
    c.cmd("QUIT");
    server.wait_for_log(&format!("{first}: message-id=<one@src.test>"));
    server.wait_for_log("status=deferred");
    server.wait_for_log("status=bounced");
    server.wait_for_log(&format!("{first}: sender non-delivery notification: "));
    let log = server.log();
    let notice = log
        .split(&format!("{first}: sender non-delivery notification: "))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    server.wait_for_log(&format!("{notice}: removed"));

    // logrotate: move the file, then SIGUSR1.
    std::fs::rename(&maillog, dir.path().join("maillog.1")).unwrap();
    let sent = Command::new("kill")
        .args(["-USR1", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    server.wait_for_log(&format!("SIGUSR1: reopened {}", maillog.display()));

    // A relay attempt, two failed logins, then a login that relays.
    let mut c = server.client();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@src.test>");
    assert_eq!(
        c.cmd("RCPT TO:<victim@elsewhere.test>"),
        "454 4.7.1 <victim@elsewhere.test>: Relay access denied"
    );
    c.cmd("RSET");
    let wrong = b64("\0alice@src.test\0wrong");
    assert!(c.cmd(&format!("AUTH PLAIN {wrong}")).starts_with("535 "));
    assert!(c.cmd("AUTH LOGIN").starts_with("334 "));
    assert!(c.cmd(&b64("alice@src.test")).starts_with("334 "));
    assert!(c.cmd(&b64("also wrong")).starts_with("535 "));
    c.cmd("QUIT");
    let mut c = Client::connect(server.addr());
    c.cmd("EHLO client.test");
    let right = b64("\0alice@src.test\0correct horse");
    assert!(c.cmd(&format!("AUTH PLAIN {right}")).starts_with("235 "));
    let second = queued_id(&c.send_mail(
        "alice@src.test",
        &["x@elsewhere.test"],
        "Subject: two\r\n\r\nbody\r\n",
    ));
    c.cmd("QUIT");
    server.wait_for_log(&format!("{second}: removed"));
    server.wait_for_log("SASL LOGIN authentication failed");

    let rotated = std::fs::read_to_string(dir.path().join("maillog.1")).unwrap();
    let current = std::fs::read_to_string(&maillog).unwrap();
    assert!(rotated.contains(&format!("{first}: client=")), "{rotated}");
    assert!(!rotated.contains("Relay access denied"), "{rotated}");
    assert!(current.contains("Relay access denied"), "{current}");
    assert!(!current.contains(&format!("{first}: client=")), "{current}");
    let whole = dir.path().join("whole.log");
    std::fs::write(&whole, format!("{rotated}{current}")).unwrap();

    if pflogsumm {
        let out = Command::new("pflogsumm")
            .arg("--syslog-name=towerpost")
            .arg(&whole)
            .output()
            .expect("run pflogsumm");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{report}");
        assert_eq!(total(&report, "received"), 2, "{report}");
        // Recipients: ok@relay.test, the notice to a@src.test, x@elsewhere.test.
        assert_eq!(total(&report, "delivered"), 3, "{report}");
        assert_eq!(total(&report, "deferred"), 1, "{report}");
        assert!(report.contains("(1  deferrals)"), "{report}");
        assert_eq!(total(&report, "bounced"), 1, "{report}");
        assert_eq!(total(&report, "rejected"), 1, "{report}");
        assert_eq!(total(&report, "recipients"), 3, "{report}");
        assert!(report.contains("Relay access denied"), "{report}");
        assert!(report.contains("no such user"), "{report}");
    }
    if fail2ban {
        // The jails of deploy/README.md: the stock filter with towerpost's
        // daemon name.
        let filter = r#"/etc/fail2ban/filter.d/postfix.conf[_daemon="towerpost/\w+"]"#;
        assert_eq!(fail2ban_matches(&whole, filter), 1, "the relay reject");
        let sasl = r#"/etc/fail2ban/filter.d/postfix.conf[mode=auth, _daemon="towerpost/\w+"]"#;
        assert_eq!(fail2ban_matches(&whole, sasl), 2, "the failed logins");
    }
}

#[test]
fn with_syslog_name_postfix_the_stock_filter_needs_no_override() {
    let server = Server::start("mynetworks = \"192.0.2.0/24\"\nsyslog_name = \"postfix\"");
    let mut c = server.client();
    c.cmd("EHLO client.test");
    c.cmd("MAIL FROM:<a@src.test>");
    assert!(c.cmd("RCPT TO:<victim@elsewhere.test>").starts_with("454 "));
    c.cmd("QUIT");
    server.wait_for_log("postfix/smtpd[");
    server.wait_for_log("Relay access denied");
    if have_tool("fail2ban-regex") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mail.log");
        std::fs::write(&file, server.log()).unwrap();
        assert_eq!(
            fail2ban_matches(&file, "/etc/fail2ban/filter.d/postfix.conf"),
            1
        );
    }
}

#[test]
fn json_lines_carry_the_same_fields() {
    let sink = Sink::start();
    let server = Server::start(&format!(
        "log_format = \"json\"\nrelayhost = \"[127.0.0.1]:{}\"",
        sink.addr().port()
    ));
    let mut c = server.client();
    let id = queued_id(&c.send_mail(
        "a@src.test",
        &["b@example.test"],
        "Subject: j\r\nMessage-ID: <j@src.test>\r\n\r\nbody\r\n",
    ));
    c.cmd("QUIT");
    server.wait_for_log(&format!("\"message\":\"{id}: removed\""));
    let objects: Vec<serde_json::Value> = server
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |program: &str| {
        objects
            .iter()
            .find(|o| o["program"] == program && o["queue_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no {program} line for {id}: {objects:#?}"))
    };
    let sent = of("towerpost/smtp");
    assert_eq!(sent["to"], "b@example.test");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["dsn"], "2.0.0");
    assert_eq!(
        sent["relay"],
        format!("127.0.0.1[127.0.0.1]:{}", sink.addr().port())
    );
    assert_eq!(sent["severity"], "info");
    assert!(sent["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(of("towerpost/cleanup")["message-id"], "j@src.test");
    let active = of("towerpost/qmgr");
    assert_eq!(active["from"], "a@src.test");
    assert_eq!(active["nrcpt"], 1);
    assert_eq!(of("towerpost/smtpd")["client"], "unknown[127.0.0.1]");
}

#[test]
fn a_maillog_file_that_cannot_be_opened_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("towerpost.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}\"\nmaillog_file = \"{}/no/such/dir/maillog\"\n",
            dir.path().join("spool").display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(towerpost_bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("maillog_file ") && stderr.contains("/no/such/dir/maillog: "),
        "{stderr}"
    );
}
