//! Limits a client cannot get around: line lengths, sizes, recipients,
//! errors and time.

use std::time::Duration;

use integration_tests::{Client, Server, queued_id};

fn ready(server: &Server) -> Client {
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    c
}

#[test]
fn overlong_command_line_answers_500_and_the_session_goes_on() {
    let server = Server::start("");
    let mut c = ready(&server);
    let long = format!("MAIL FROM:<{}@example.test>", "a".repeat(5000));
    assert_eq!(c.cmd(&long), "500 5.5.2 Error: line too long");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    // 512 octets including CRLF is still a command.
    let exact = format!("NOOP {}", "x".repeat(512 - 2 - 5));
    assert_eq!(c.cmd(&exact), "250 2.0.0 Ok");
}

#[test]
fn command_line_limit_can_be_raised() {
    let server = Server::start("smtpd_command_line_limit = 2048");
    let mut c = ready(&server);
    assert_eq!(c.cmd(&format!("NOOP {}", "x".repeat(1500))), "250 2.0.0 Ok");
}

#[test]
fn overlong_text_line_refuses_the_message() {
    let server = Server::start("");
    let mut c = ready(&server);
    let body = format!("Subject: long\r\n\r\n{}\r\n", "y".repeat(1200));
    let reply = c.send_mail("a@example.test", &["b@example.test"], &body);
    assert_eq!(
        reply,
        "554 5.6.0 Error: message has a line longer than 1000 octets"
    );
    assert!(server.queue().is_empty());
    // The session is still usable.
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: ok\r\n\r\nfine\r\n",
    );
    queued_id(&reply);
}

#[test]
fn nul_bytes_are_refused_in_commands_and_content() {
    let server = Server::start("");
    let mut c = ready(&server);
    c.send(b"NOOP \0\r\n");
    assert_eq!(c.read_reply(), "500 5.5.2 Error: bad syntax");
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: nul\r\n\r\na\0b\r\n",
    );
    assert_eq!(reply, "554 5.6.0 Error: message contains NUL characters");
    assert!(server.queue().is_empty());
}

#[test]
fn size_limit_applies_at_mail_and_during_data() {
    let server = Server::start("message_size_limit = 2000");
    let mut c = ready(&server);
    assert!(c.cmd("EHLO client.test").contains("SIZE 2000"));
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test> SIZE=5000"),
        "552 5.3.4 Message size exceeds fixed limit"
    );
    let body = format!(
        "Subject: big\r\n\r\n{}",
        "z".repeat(70).repeat(50).replace("zz", "z\r\n")
    );
    let reply = c.send_mail("a@example.test", &["b@example.test"], &body);
    assert_eq!(reply, "552 5.3.4 Error: message file too big");
    assert!(server.queue().is_empty());
    // BDAT: refused at the chunk that crosses the limit, bytes still consumed.
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    let chunk = vec![b'q'; 3000];
    c.send(b"BDAT 3000 LAST\r\n");
    c.send(&chunk);
    assert_eq!(c.read_reply(), "552 5.3.4 Chunk exceeds message size limit");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    assert!(server.queue().is_empty());
}

#[test]
fn recipient_limit_answers_452() {
    let server = Server::start("smtpd_recipient_limit = 3");
    let mut c = ready(&server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    for i in 0..3 {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<r{i}@example.test>")),
            "250 2.1.5 Ok"
        );
    }
    assert_eq!(
        c.cmd("RCPT TO:<r3@example.test>"),
        "452 4.5.3 Error: too many recipients"
    );
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: three\r\n\r\n.\r\n");
    queued_id(&c.read_reply());
    assert_eq!(server.queue()[0]["recipients"].as_array().unwrap().len(), 3);
}

#[test]
fn hard_error_limit_closes_with_421() {
    let server = Server::start("smtpd_hard_error_limit = 3\nsmtpd_error_sleep_time = \"0s\"");
    let mut c = ready(&server);
    for _ in 0..3 {
        assert!(c.cmd("BOGUS").starts_with("502"));
    }
    assert_eq!(
        c.cmd("NOOP"),
        "421 4.7.0 mx.towerpost.test Error: too many errors"
    );
    assert!(c.is_closed());
}

#[test]
fn soft_error_limit_slows_replies_down() {
    let server = Server::start(
        "smtpd_soft_error_limit = 2\nsmtpd_hard_error_limit = 10\nsmtpd_error_sleep_time = \"300ms\"",
    );
    let mut c = ready(&server);
    assert!(c.cmd("BOGUS").starts_with("502"));
    let start = std::time::Instant::now();
    assert!(c.cmd("BOGUS").starts_with("502"));
    assert!(c.cmd("BOGUS").starts_with("502"));
    // Two replies at or past the soft limit, 300 ms each. This checks that
    // the tarpit is applied, not how fast anything is.
    assert!(start.elapsed() >= Duration::from_millis(600));
}

#[test]
fn idle_client_gets_421_timeout() {
    let server = Server::start("smtpd_timeout = \"1s\"");
    let mut c = ready(&server);
    assert_eq!(
        c.read_reply(),
        "421 4.4.2 mx.towerpost.test Error: timeout exceeded"
    );
    assert!(c.is_closed());
    server.wait_for_log("timeout after EHLO from unknown[127.0.0.1]");
}

#[test]
fn stalled_data_gets_421_timeout_and_nothing_is_queued() {
    let server = Server::start("smtpd_timeout = \"1s\"");
    let mut c = ready(&server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: half\r\n\r\nhalf a mess");
    assert_eq!(
        c.read_reply(),
        "421 4.4.2 mx.towerpost.test Error: timeout exceeded"
    );
    assert!(server.queue().is_empty());
}

#[test]
fn bare_lf_is_rejected_when_configured() {
    let server = Server::start("smtpd_forbid_bare_newline = \"reject\"");
    let mut c = ready(&server);
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: lf\nbody\r\n",
    );
    assert_eq!(
        reply,
        "550 5.5.2 mx.towerpost.test Error: bare <LF> received"
    );
    c.send(b"NOOP\n");
    assert_eq!(
        c.read_reply(),
        "550 5.5.2 mx.towerpost.test Error: bare <LF> received"
    );
    assert!(server.queue().is_empty());
}

#[test]
fn bare_lf_is_normalized_by_default() {
    let server = Server::start("");
    let mut c = ready(&server);
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: lf\nbody\r\n",
    );
    queued_id(&reply);
}

#[test]
fn timeouts_and_lost_connections_name_the_stage_as_postfix_does() {
    let server = Server::start("smtpd_timeout = \"1s\"");
    let mut silent = server.client();
    assert_eq!(
        silent.read_reply(),
        "421 4.4.2 mx.towerpost.test Error: timeout exceeded"
    );
    server.wait_for_log("timeout after CONNECT from unknown[127.0.0.1]");
    let mut c = ready(&server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: cut\r\n");
    drop(c);
    server.wait_for_log("lost connection after DATA from unknown[127.0.0.1]");
    server.wait_for_log("disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1");
}
