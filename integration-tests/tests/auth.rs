//! SMTP AUTH for submission: swaks and Python's smtplib log in over
//! STARTTLS and implicit TLS; AUTH is never offered or accepted before
//! TLS; an authenticated client relays anywhere, an unauthenticated one
//! does not. The password file is made with `towerpost passwd`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use integration_tests::sink::Sink;
use integration_tests::{Client, Server, add_sasl_user, have_tool, run_python, towerpost_bin};

/// A relay with `smtp` (STARTTLS, no AUTH), `submission` (STARTTLS
/// required, AUTH, authenticated senders only) and `submissions`
/// (implicit TLS, AUTH). 127.0.0.1 is outside `mynetworks`, so only AUTH
/// lets it relay; delivery goes to `sink`.
fn submission_server(sink: &Sink) -> (Server, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    add_sasl_user(&passwd, "alice@relay.test", "correct horse");
    let config = format!(
        "mynetworks = \"192.0.2.0/24\"\nrelay_domains = [\"relay.test\"]\n\
         smtpd_sasl_password_file = \"{}\"\nrelayhost = \"[127.0.0.1]:{}\"\n\
         smtpd_client_connection_count_limit = 0",
        passwd.display(),
        sink.addr().port()
    );
    let auth = "smtpd_sasl_auth_enable = true\n\
                smtpd_recipient_restrictions = [\"permit_sasl_authenticated\", \"reject\"]";
    let server = Server::start_with_listeners(
        &config,
        &[
            ("smtp", "starttls", ""),
            (
                "submission",
                "starttls",
                &format!("smtpd_tls_security_level = \"encrypt\"\n{auth}"),
            ),
            ("submissions", "implicit", auth),
        ],
    );
    (server, dir, passwd)
}

fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .args(["--timeout", "20"])
        .output()
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn swaks_authenticates_with_plain_and_login_over_starttls_and_implicit_tls() {
    if !have_tool("swaks") {
        return;
    }
    let sink = Sink::start();
    let (server, _dir, _) = submission_server(&sink);
    let submission = server.addr_of("submission").to_string();
    let submissions = server.addr_of("submissions").to_string();
    let cases = [
        (submission.as_str(), "--tls", "PLAIN"),
        (submission.as_str(), "--tls", "LOGIN"),
        (submissions.as_str(), "--tls-on-connect", "PLAIN"),
        (submissions.as_str(), "--tls-on-connect", "LOGIN"),
    ];
    for (server_addr, tls, mechanism) in cases {
        let (ok, out) = swaks(&[
            "--server",
            server_addr,
            tls,
            "--auth",
            mechanism,
            "--auth-user",
            "alice@relay.test",
            "--auth-password",
            "correct horse",
            "--from",
            "alice@relay.test",
            "--to",
            "someone@elsewhere.test",
            "--ehlo",
            "client.test",
        ]);
        assert!(ok, "{tls} {mechanism}:\n{out}");
        assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
        assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    }
    let messages = sink.wait_for(4, Duration::from_secs(30));
    assert_eq!(messages.len(), 4);
    let received = String::from_utf8_lossy(&messages[0].data).into_owned();
    assert!(received.contains("with ESMTPSA id"), "{received}");
    assert!(
        received.contains("(using TLSv1.3 with cipher TLS_"),
        "{received}"
    );
    server.wait_for_log(
        "client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@relay.test",
    );
    server.wait_for_log(
        "client=unknown[127.0.0.1], sasl_method=LOGIN, sasl_username=alice@relay.test",
    );
}

#[test]
fn smtplib_starttls_then_login_relays() {
    if !have_tool("python3") {
        return;
    }
    let sink = Sink::start();
    let (server, _dir, _) = submission_server(&sink);
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.ehlo("client.test")
    assert "auth" not in s.esmtp_features, s.esmtp_features
    s.starttls(context=ctx)
    s.ehlo("client.test")
    assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"], s.esmtp_features
    try:
        s.login("alice@relay.test", "wrong")
        raise SystemExit("a wrong password was accepted")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
        assert e.smtp_error == b"5.7.8 Error: authentication failed: authentication failure", e
    code, _ = s.login("alice@relay.test", "correct horse")
    assert code == 235, code
    assert s.sendmail("alice@relay.test", ["bob@elsewhere.test"], b"Subject: hi\r\n\r\nhi\r\n") == {}
"#;
    run_python(script, &[&server.addr_of("submission").port().to_string()]);
    let messages = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(messages[0].rcpt_to, ["bob@elsewhere.test"]);
    // The line fail2ban's postfix-sasl filter reads.
    server.wait_for_log(
        "warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: authentication \
         failure, sasl_username=alice@relay.test",
    );
    fail2ban_matches_the_failure(&server.log());
}

/// fail2ban's stock `postfix` filter in `auth` mode (the postfix-sasl
/// jail) finds both failed logins in the log (smtplib tries PLAIN, then
/// LOGIN, with the wrong password), with the daemon name
/// set to towerpost's as deploy/README.md shows.
fn fail2ban_matches_the_failure(log: &str) {
    if !have_tool("fail2ban-regex") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mail.log");
    std::fs::write(&file, log).unwrap();
    let out = Command::new("fail2ban-regex")
        .arg(&file)
        .arg(r#"/etc/fail2ban/filter.d/postfix.conf[mode=auth, _daemon="towerpost/\w+"]"#)
        .output()
        .expect("run fail2ban-regex");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 2 matched,"), "{text}\n{log}");
}

#[test]
fn auth_is_neither_offered_nor_accepted_before_tls() {
    let sink = Sink::start();
    let (server, _dir, _) = submission_server(&sink);
    let mut c = Client::connect(server.addr_of("submission"));
    let ehlo = c.cmd("EHLO client.test");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    // PLAIN for alice / correct horse.
    assert_eq!(
        c.cmd("AUTH PLAIN AGFsaWNlQHJlbGF5LnRlc3QAY29ycmVjdCBob3JzZQ=="),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<alice@relay.test>"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    // On the port-25 listener AUTH is not enabled at all.
    let mut c = Client::connect(server.addr_of("smtp"));
    let ehlo = c.cmd("EHLO client.test");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        c.cmd("AUTH PLAIN AGFsaWNlQHJlbGF5LnRlc3QAY29ycmVjdCBob3JzZQ=="),
        "503 5.5.1 Error: authentication not enabled"
    );
}

#[test]
fn plaintext_auth_only_where_explicitly_allowed() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    add_sasl_user(&passwd, "app", "pw");
    let config = format!(
        "mynetworks = \"192.0.2.0/24\"\nsmtpd_sasl_password_file = \"{}\"\n\
         relayhost = \"[127.0.0.1]:{}\"",
        passwd.display(),
        sink.addr().port()
    );
    let server = Server::start_with_listeners(
        &config,
        &[
            ("tls-only", "none", "smtpd_sasl_auth_enable = true"),
            (
                "local",
                "none",
                "smtpd_sasl_auth_enable = true\nsmtpd_tls_auth_only = false",
            ),
        ],
    );
    let plain = "AUTH PLAIN AGFwcABwdw=="; // \0app\0pw
    let mut c = Client::connect(server.addr_of("tls-only"));
    assert!(!c.cmd("EHLO client.test").contains("AUTH"));
    assert_eq!(
        c.cmd(plain),
        "504 5.5.4 Encryption required for requested authentication mechanism"
    );
    let mut c = Client::connect(server.addr_of("local"));
    assert!(c.cmd("EHLO client.test").contains("250-AUTH PLAIN LOGIN"));
    assert_eq!(c.cmd("MAIL FROM:<app@x.test>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("AUTH PLAIN AGFwcABwdw=="),
        "503 5.5.1 Error: MAIL transaction in progress"
    );
    c.cmd("RSET");
    c.cmd("MAIL FROM:<app@x.test>");
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.test>"),
        "454 4.7.1 <x@elsewhere.test>: Relay access denied",
        "unauthenticated and outside mynetworks"
    );
    c.cmd("RSET");
    assert_eq!(c.cmd(plain), "235 2.7.0 Authentication successful");
    assert_eq!(c.cmd(plain), "503 5.5.1 Error: already authenticated");
    c.cmd("MAIL FROM:<app@x.test>");
    assert_eq!(c.cmd("RCPT TO:<x@elsewhere.test>"), "250 2.1.5 Ok");
    // LOGIN step by step, a cancel, bad base64, an unknown mechanism.
    let mut c = Client::connect(server.addr_of("local"));
    c.cmd("EHLO client.test");
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6");
    assert_eq!(c.cmd("YXBw"), "334 UGFzc3dvcmQ6");
    assert_eq!(c.cmd("*"), "501 5.7.0 Authentication aborted");
    assert_eq!(c.cmd("AUTH PLAIN"), "334 ");
    assert_eq!(
        c.cmd("not base64!"),
        "535 5.7.8 Error: authentication failed: Invalid base64 data in continued response"
    );
    assert_eq!(
        c.cmd("AUTH CRAM-MD5"),
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
    );
    assert_eq!(c.cmd("AUTH"), "501 5.5.4 Syntax: AUTH mechanism");
}

#[test]
fn a_changed_password_file_takes_effect_without_a_restart() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    add_sasl_user(&passwd, "app", "pw");
    let server = Server::start_with_listeners(
        &format!(
            "smtpd_sasl_password_file = \"{}\"\nrelayhost = \"[127.0.0.1]:{}\"",
            passwd.display(),
            sink.addr().port()
        ),
        &[(
            "local",
            "none",
            "smtpd_sasl_auth_enable = true\nsmtpd_tls_auth_only = false",
        )],
    );
    let login = |expect: &str| {
        let mut c = Client::connect(server.addr_of("local"));
        c.cmd("EHLO client.test");
        assert_eq!(c.cmd("AUTH PLAIN AGFwcABwdw=="), expect);
    };
    login("235 2.7.0 Authentication successful");
    add_sasl_user(&passwd, "app", "new password");
    login("535 5.7.8 Error: authentication failed: authentication failure");
    let out = Command::new(towerpost_bin())
        .args(["passwd", "--file"])
        .arg(&passwd)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "app\n");
    // A damaged file refuses every login until it is fixed (a stale copy
    // could let a removed user in), and says so.
    std::fs::write(&passwd, "app:not-a-hash\n").unwrap();
    let mut c = Client::connect(server.addr_of("local"));
    c.cmd("EHLO client.test");
    // "\0app\0new password"
    assert_eq!(
        c.cmd("AUTH PLAIN AGFwcABuZXcgcGFzc3dvcmQ="),
        "454 4.7.0 Temporary authentication failure: password store unavailable"
    );
    server.wait_for_log("password file not usable, AUTH answers 454 until it is fixed");
    std::fs::remove_file(&passwd).unwrap();
    add_sasl_user(&passwd, "app", "new password");
    let mut c = Client::connect(server.addr_of("local"));
    c.cmd("EHLO client.test");
    assert_eq!(
        c.cmd("AUTH PLAIN AGFwcABuZXcgcGFzc3dvcmQ="),
        "235 2.7.0 Authentication successful"
    );
}
