//! STARTTLS and implicit TLS, with Python's smtplib and ssl as the client.

use std::process::Command;

use integration_tests::{Server, have_tool, run_python};

/// Runs a Python script with the server's listener ports as arguments.
fn python(script: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let args: Vec<&str> = ports.iter().map(String::as_str).collect();
    run_python(script, &args)
}

const PRELUDE: &str = r#"
import smtplib, socket, ssl, sys
ports = [int(p) for p in sys.argv[1:]]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
"#;

#[test]
fn starttls_then_mail_over_tls() {
    if !have_tool("python3") {
        return;
    }
    let server = Server::start_with("", &[("smtp", "starttls")]);
    let script = format!(
        "{PRELUDE}{}",
        r#"
with smtplib.SMTP("127.0.0.1", ports[0], timeout=20) as s:
    s.ehlo("client.test")
    assert s.has_extn("starttls"), s.esmtp_features
    code, _ = s.starttls(context=ctx)
    assert code == 220, code
    s.ehlo("client.test")
    assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
    assert s.sendmail("a@example.test", ["b@example.test"], b"Subject: tls\r\n\r\nsecret\r\n") == {}
    code, msg = s.docmd("STARTTLS")
    assert (code, msg) == (554, b"5.5.1 Error: TLS already active"), (code, msg)
print(s.sock.version() if s.sock else "closed")
"#
    );
    python(&script, &[server.addr().port()]);
    assert_eq!(server.queue().len(), 1);
    server.wait_for_log("Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1_3");
}

#[test]
fn implicit_tls_listener_speaks_tls_from_the_first_byte() {
    if !have_tool("python3") {
        return;
    }
    let server = Server::start_with("", &[("smtp", "none"), ("submissions", "implicit")]);
    let script = format!(
        "{PRELUDE}{}",
        r#"
with smtplib.SMTP_SSL("127.0.0.1", ports[1], timeout=20, context=ctx) as s:
    s.ehlo("client.test")
    assert not s.has_extn("starttls")
    assert s.sendmail("a@example.test", ["b@example.test"], b"Subject: implicit\r\n\r\nx\r\n") == {}
# The plain listener beside it neither offers nor accepts STARTTLS.
with smtplib.SMTP("127.0.0.1", ports[0], timeout=20) as s:
    s.ehlo("client.test")
    assert not s.has_extn("starttls")
    code, _ = s.docmd("STARTTLS")
    assert code == 502, code
"#
    );
    python(
        &script,
        &[
            server.addr_of("smtp").port(),
            server.addr_of("submissions").port(),
        ],
    );
    assert_eq!(server.queue().len(), 1);
}

#[test]
fn plaintext_pipelined_after_starttls_is_never_executed() {
    if !have_tool("python3") {
        return;
    }
    // CVE-2011-0411: a man in the middle appends a command to the STARTTLS
    // line; it must not run inside the TLS session. With the pipelining
    // check off, the plaintext is discarded at the handshake.
    let server = Server::start_with(
        "smtpd_forbid_unauth_pipelining = false",
        &[("smtp", "starttls")],
    );
    let script = format!(
        "{PRELUDE}{}",
        r#"
raw = socket.create_connection(("127.0.0.1", ports[0]), timeout=20)
f = raw.makefile("rb")
def reply(f):
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.rstrip())
        if line[3:4] != "-":
            return "\n".join(lines)
assert reply(f).startswith("220")
raw.sendall(b"EHLO client.test\r\n")
assert "STARTTLS" in reply(f)
raw.sendall(b"STARTTLS\r\nMAIL FROM:<attacker@evil.test>\r\n")
assert reply(f).startswith("220 2.0.0"), "STARTTLS refused"
tls = ctx.wrap_socket(raw, server_hostname="mx.towerpost.test")
tf = tls.makefile("rb")
tls.sendall(b"EHLO client.test\r\n")
assert reply(tf).startswith("250")
tls.sendall(b"RCPT TO:<victim@example.test>\r\n")
r = reply(tf)
assert r == "503 5.5.1 Error: need MAIL command", r
tls.sendall(b"QUIT\r\n")
print(reply(tf))
"#
    );
    python(&script, &[server.addr().port()]);
    server.wait_for_log("bytes of plaintext sent after STARTTLS");
}

#[test]
fn unreadable_certificate_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("towerpost.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}\"\nsmtpd_tls_cert_file = \"/nonexistent/cert.pem\"\nsmtpd_tls_key_file = \"/nonexistent/key.pem\"\n[[listener]]\nname = \"smtp\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let out = Command::new(integration_tests::towerpost_bin())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("smtpd_tls_cert_file /nonexistent/cert.pem"),
        "{stderr}"
    );
}

#[test]
fn plaintext_pipelined_after_starttls_ends_the_session_by_default() {
    let server = Server::start_with("", &[("smtp", "starttls")]);
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").contains("STARTTLS"));
    c.send(b"STARTTLS\r\nMAIL FROM:<attacker@evil.test>\r\n");
    assert_eq!(
        c.read_reply(),
        "554 5.5.0 Error: SMTP protocol synchronization"
    );
    assert!(c.is_closed());
}

/// testssl.sh (Debian's testssl.sh package, command `testssl`) against
/// the STARTTLS listener: nothing below TLS 1.2, no weak cipher category.
#[test]
fn testssl_finds_no_old_protocol_and_no_weak_cipher() {
    if !have_tool("testssl") {
        return;
    }
    let server = Server::start_with("", &[("smtp", "starttls")]);
    let target = format!("127.0.0.1:{}", server.addr().port());
    let out = Command::new("timeout")
        .args([
            "300",
            "testssl",
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
        ])
        .args(["--starttls", "smtp", "-p", "-s", "--ip", "one", &target])
        .output()
        .expect("run testssl");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "SSLv2      not offered (OK)",
        "SSLv3      not offered (OK)",
        "TLS 1      not offered",
        "TLS 1.1    not offered",
        "TLS 1.2    offered (OK)",
        "TLS 1.3    offered (OK)",
        "NULL ciphers (no encryption)                  not offered (OK)",
        "Export ciphers (w/o ADH+NULL)                 not offered (OK)",
        "LOW: 64 Bit + DES, RC[2,4] (w/o export)       not offered (OK)",
        "Triple DES Ciphers / IDEA                     not offered",
        "Obsolete CBC ciphers (AES, ARIA etc.)         not offered",
        "Strong encryption (AEAD ciphers)              offered (OK)",
    ] {
        assert!(
            text.contains(line),
            "testssl did not report {line:?}:\n{text}"
        );
    }
    assert!(!text.contains("NOT ok"), "{text}");
}
