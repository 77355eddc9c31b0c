//! The server's certificates: chosen by SNI, replaced on disk without a
//! restart, and kept when a replacement is broken. Python's ssl module is
//! the client; it reports which certificate it was served.

use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{Server, have_tool, write_chain_file};

/// Connects with implicit TLS (SNI `name`, or none when empty) and says
/// whether the server's certificate is the one in `expected` (PEM).
const SERVED: &str = r#"
import socket, ssl, sys
port, name, expected = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
    with ctx.wrap_socket(raw, server_hostname=name or None) as tls:
        served = tls.getpeercert(binary_form=True)
        print("same" if served == ssl.PEM_cert_to_DER_cert(open(expected).read()) else "different")
"#;

fn served_is(port: u16, sni: &str, expected: &std::path::Path) -> bool {
    let out = Command::new("python3")
        .args(["-c", SERVED, &port.to_string(), sni])
        .arg(expected)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim() == "same"
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Setup {
    server: Server,
    dir: tempfile::TempDir,
}

impl Setup {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// A server with two chain files: `a.pem` (mx.a.test, the default) and
/// `b.pem` (mx.b.test, *.b.test).
fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    for (file, names) in [
        ("a.pem", &["mx.a.test"][..]),
        ("b.pem", &["mx.b.test", "*.b.test"][..]),
    ] {
        let cert = write_chain_file(&dir.path().join(file), names);
        std::fs::write(dir.path().join(format!("{file}.cert")), cert).unwrap();
    }
    let config = format!(
        "smtpd_tls_chain_files = [\"{}\", \"{}\"]",
        dir.path().join("a.pem").display(),
        dir.path().join("b.pem").display()
    );
    // The harness adds its own pair (smtpd_tls_cert_file, for
    // mx.towerpost.test) as a third certificate, after the chain files.
    let server =
        Server::start_with_listeners(&config, &[("smtp", "none", ""), ("smtps", "implicit", "")]);
    Setup { server, dir }
}

#[test]
fn sni_picks_the_certificate_and_the_first_is_the_default() {
    if !have_tool("python3") {
        return;
    }
    let s = start();
    let port = s.server.addr_of("smtps").port();
    assert!(served_is(port, "mx.b.test", &s.path("b.pem.cert")));
    assert!(
        served_is(port, "relay.b.test", &s.path("b.pem.cert")),
        "wildcard"
    );
    assert!(served_is(port, "mx.a.test", &s.path("a.pem.cert")));
    assert!(
        served_is(port, "unknown.test", &s.path("a.pem.cert")),
        "default"
    );
    assert!(served_is(port, "", &s.path("a.pem.cert")), "no SNI");
}

#[test]
fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    if !have_tool("python3") {
        return;
    }
    let s = start();
    let port = s.server.addr_of("smtps").port();
    assert!(served_is(port, "mx.a.test", &s.path("a.pem.cert")));
    // As certbot and Kubernetes do: write elsewhere, rename over.
    let new_cert = write_chain_file(&s.path("a.pem.new"), &["mx.a.test"]);
    std::fs::write(s.path("new.cert"), new_cert).unwrap();
    std::fs::rename(s.path("a.pem.new"), s.path("a.pem")).unwrap();
    eventually("the new certificate", || {
        served_is(port, "mx.a.test", &s.path("new.cert"))
    });
    s.server.wait_for_log("reloaded 3 TLS certificate(s)");

    // A broken replacement: the certificate in use stays, and the log
    // says why.
    std::fs::write(s.path("broken"), "not a certificate\n").unwrap();
    std::fs::rename(s.path("broken"), s.path("a.pem")).unwrap();
    s.server.wait_for_log(
        "cannot reload TLS certificates, keeping the ones in use: smtpd_tls_chain_files",
    );
    assert!(served_is(port, "mx.a.test", &s.path("new.cert")));

    // SIGHUP reloads at once, too (here: still broken, still kept).
    let status = Command::new("kill")
        .args(["-HUP", &s.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    s.server.wait_for_log("SIGHUP: reloading TLS certificates");
    assert!(served_is(port, "mx.a.test", &s.path("new.cert")));
}
