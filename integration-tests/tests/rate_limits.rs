//! Per-client limits from a loopback client, with Postfix's replies.

use std::time::Duration;

use integration_tests::{Client, Server};

/// Limits apply to loopback only when the exceptions list (by default
/// $mynetworks, which holds 127.0.0.0/8) is emptied.
fn limited(extra: &str) -> Server {
    Server::start(&format!(
        "smtpd_client_event_limit_exceptions = []\nanvil_rate_time_unit = \"2s\"\n{extra}"
    ))
}

#[test]
fn connection_count_limit_answers_421() {
    let server = limited("smtpd_client_connection_count_limit = 2");
    let _a = server.client();
    let _b = server.client();
    let mut c = Client::connect_silent(server.addr());
    assert_eq!(
        c.read_reply(),
        "421 4.7.0 mx.towerpost.test Error: too many connections from 127.0.0.1"
    );
    assert!(c.is_closed());
    server.wait_for_log(
        "warning: Connection concurrency limit exceeded: 3 from unknown[127.0.0.1] for service smtp",
    );
    drop(_a);
    // The count goes down when a connection ends.
    let mut ok = None;
    for _ in 0..50 {
        let mut d = Client::connect_silent(server.addr());
        if d.read_reply().starts_with("220") {
            ok = Some(d);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok.is_some(), "a slot was freed");
}

#[test]
fn message_rate_limit_answers_450_and_recovers() {
    let server = limited("smtpd_client_message_rate_limit = 2");
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    for _ in 0..2 {
        assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    }
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test>"),
        "450 4.7.1 Error: too much mail from 127.0.0.1"
    );
    // One more is allowed each unit/limit (1 s here).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
}

#[test]
fn recipient_rate_limit_answers_450() {
    let server = limited("smtpd_client_recipient_rate_limit = 1");
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<c@example.test>"),
        "450 4.7.1 Error: too many recipients from 127.0.0.1"
    );
}

#[test]
fn exceptions_exempt_and_other_addresses_count_separately() {
    // Default exceptions ($mynetworks) cover loopback: no limit applies.
    let server = Server::start("smtpd_client_message_rate_limit = 1");
    let mut c = server.client();
    for _ in 0..3 {
        assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    }
    // Without exceptions, 127.0.0.2 has a limit of its own.
    let server = limited("smtpd_client_message_rate_limit = 1");
    let mut c = server.client();
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    assert!(c.cmd("MAIL FROM:<a@example.test>").starts_with("450"));
    let mut other = Client::connect_from(server.addr(), "127.0.0.2");
    assert_eq!(other.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
}

#[test]
fn connection_rate_limit_answers_421() {
    let server = limited("smtpd_client_connection_rate_limit = 2");
    for _ in 0..2 {
        let mut c = server.client();
        assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    }
    let mut c = Client::connect_silent(server.addr());
    assert_eq!(
        c.read_reply(),
        "421 4.7.0 mx.towerpost.test Error: too many connections from 127.0.0.1"
    );
}

#[test]
fn auth_and_new_tls_session_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "").unwrap();
    let server = Server::start_with_listeners(
        &format!(
            "smtpd_client_event_limit_exceptions = []\nsmtpd_client_auth_rate_limit = 1\n\
             smtpd_client_new_tls_session_rate_limit = 1\nsmtpd_sasl_password_file = \"{}\"",
            passwd.display()
        ),
        &[(
            "smtp",
            "starttls",
            "smtpd_sasl_auth_enable = true\nsmtpd_tls_auth_only = false",
        )],
    );
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    // The first AUTH goes ahead (and is aborted); the second is over the
    // rate, as Postfix counts it: after AUTH's own preconditions.
    assert_eq!(c.cmd("AUTH PLAIN"), "334 ");
    assert_eq!(c.cmd("*"), "501 5.7.0 Authentication aborted");
    assert_eq!(
        c.cmd("AUTH PLAIN"),
        "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
    );
    // The first STARTTLS would start TLS; take the budget with another
    // connection's attempt, then this one is refused.
    let mut other = server.client();
    assert!(other.cmd("EHLO other.test").starts_with("250"));
    assert!(other.cmd("STARTTLS").starts_with("220"));
    assert_eq!(
        c.cmd("STARTTLS"),
        "454 4.7.0 Error: too many new TLS sessions from unknown[127.0.0.1]"
    );
}

#[test]
fn implicit_tls_sessions_count_against_the_tls_limit() {
    if !integration_tests::have_tool("python3") {
        return;
    }
    let server = Server::start_with(
        "smtpd_client_event_limit_exceptions = []\nsmtpd_client_new_tls_session_rate_limit = 1",
        &[("submissions", "implicit")],
    );
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for _ in range(2):
    raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
    tls = ctx.wrap_socket(raw, server_hostname="mx.towerpost.test")
    print(tls.makefile("rb").readline().decode().strip())
    tls.close()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &server.addr().port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("220 "), "{stdout}");
    assert_eq!(
        lines[1],
        "421 4.7.0 mx.towerpost.test Error: too many new TLS sessions from unknown[127.0.0.1]"
    );
}
