//! Relaying through a smarthost that wants TLS and a password: Python's
//! aiosmtpd (a server we did not write) with an authenticator, on
//! loopback. A wrong password defers the mail with the smarthost's reply;
//! once the password file is fixed, the mail goes through, authenticated.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{PythonServer, Server, have_aiosmtpd, have_tool, write_certificate};

const SMARTHOST: &str = r#"
import asyncio, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

cert, key, out = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == b"relay-user" and auth_data.password == b"s3cret pw")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            login = session.auth_data.login if session.authenticated else None
            f.write("login=%s tls=%s from=%s to=%s\n" % (
                login, session.ssl is not None,
                envelope.mail_from, ",".join(envelope.rcpt_tos)))
        return "250 2.0.0 accepted"

# aiosmtpd's controller checks its port by connecting to it, so it needs
# a real one: take a free port from the kernel.
import socket
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                        authenticator=authenticator, auth_require_tls=True,
                        tls_context=ctx, require_starttls=True)
controller.start()
print("READY", port, flush=True)
try:
    time.sleep(120)
finally:
    controller.stop()
"#;

fn start_smarthost(dir: &std::path::Path, out: &std::path::Path) -> PythonServer {
    let (cert, key) = write_certificate(dir);
    PythonServer::start(
        SMARTHOST,
        &[cert.as_os_str(), key.as_os_str(), out.as_os_str()],
    )
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A towerpost relaying everything to `port` with `tls` and the client
/// login `login` ("user:password") in a password map; returns the server
/// and the map's path.
fn relay_to(
    dir: &std::path::Path,
    port: u16,
    tls: &str,
    login: &str,
) -> (Server, std::path::PathBuf) {
    let passwords = dir.join("sasl_passwd");
    let hop = format!("[127.0.0.1]:{port}");
    std::fs::write(&passwords, format!("{hop} {login}\n")).unwrap();
    let server = Server::start(&format!(
        "relayhost = \"{hop}\"\nsmtp_tls_security_level = \"{tls}\"\n\
         smtp_sasl_auth_enable = true\nsmtp_sasl_password_maps = \"{}\"\n\
         queue_run_delay = \"1s\"\nminimal_backoff_time = \"1s\"\nmaximal_backoff_time = \"2s\"",
        passwords.display()
    ));
    (server, passwords)
}

#[test]
fn mail_reaches_an_authenticating_smarthost_once_the_password_is_right() {
    if !have_tool("python3") || !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("received");
    let smarthost = start_smarthost(dir.path(), &received);
    let hop = format!("[127.0.0.1]:{}", smarthost.port);
    let (server, passwords) = relay_to(dir.path(), smarthost.port, "encrypt", "relay-user:wrong");
    let mut c = server.client();
    let reply = c.send_mail(
        "app@relay.test",
        &["user@elsewhere.test"],
        "Subject: x\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    server.wait_for_log("SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535");
    server.wait_for_log("status=deferred");
    assert!(!received.exists(), "delivered with a wrong password");
    let queue = server.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let shown = queue[0].to_string();
    assert!(shown.contains("SASL authentication failed"), "{shown}");

    // Fix the password: the next retry authenticates, no restart.
    std::fs::write(&passwords, format!("{hop} relay-user:s3cret pw\n")).unwrap();
    wait_for("delivery to the smarthost", || received.exists());
    let text = std::fs::read_to_string(&received).unwrap();
    assert_eq!(
        text,
        "login=b'relay-user' tls=True from=app@relay.test to=user@elsewhere.test\n"
    );
    server.wait_for_log("status=sent");
    wait_for("an empty queue", || server.queue().is_empty());
}

#[test]
fn no_password_is_sent_without_tls_by_default() {
    if !have_tool("python3") || !have_aiosmtpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("received");
    let smarthost = start_smarthost(dir.path(), &received);
    // TLS switched off toward the smarthost: the client must not AUTH.
    let (server, _) = relay_to(dir.path(), smarthost.port, "none", "relay-user:s3cret pw");
    let mut c = server.client();
    c.send_mail(
        "app@relay.test",
        &["user@elsewhere.test"],
        "Subject: x\r\n\r\nx\r\n",
    );
    // aiosmtpd offers AUTH only after STARTTLS and refuses MAIL before it
    // (530, a bounce); the client never tried to log in in plain text.
    server.wait_for_log("said: 530 Must issue a STARTTLS command first (in reply to MAIL FROM");
    assert!(!server.log().contains("SASL"), "{}", server.log());
    assert!(!received.exists());
}

/// A next hop that offers AUTH over plain text (a second towerpost with
/// `smtpd_tls_auth_only = no`): the client still sends no password
/// without TLS (`smtp_sasl_security_options = noplaintext, noanonymous`),
/// and defers the mail saying why.
#[test]
fn a_password_is_never_sent_in_plain_text_even_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let next_passwd = dir.path().join("next_passwd");
    let add = Command::new(integration_tests::towerpost_bin())
        .args(["passwd", "--file"])
        .arg(&next_passwd)
        .args(["add", "relay-user", "--password-stdin"])
        .env_remove("TOWERPOST_CONFIG")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "s3cret")?;
            child.wait()
        })
        .unwrap();
    assert!(add.success());
    let next = Server::start_with_listeners(
        &format!("smtpd_sasl_password_file = \"{}\"", next_passwd.display()),
        &[(
            "smtp",
            "none",
            "smtpd_sasl_auth_enable = true\nsmtpd_tls_auth_only = false",
        )],
    );
    let (server, _) = relay_to(dir.path(), next.addr().port(), "none", "relay-user:s3cret");
    let mut c = server.client();
    c.send_mail(
        "app@relay.test",
        &["user@elsewhere.test"],
        "Subject: x\r\n\r\nx\r\n",
    );
    server.wait_for_log(
        "status=deferred (SASL authentication failed: server 127.0.0.1[127.0.0.1] offered no \
         compatible authentication mechanisms for this type of connection security)",
    );
    // The next hop counts every command on its disconnect line.
    next.wait_for_log("from unknown[127.0.0.1] ehlo=1");
    assert!(!next.log().contains(" auth="), "{}", next.log());
    assert!(next.queue().is_empty());
}
