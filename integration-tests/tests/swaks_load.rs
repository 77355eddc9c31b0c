//! deploy/loadtest/swaks-load.sh as its README runs it: N messages over C
//! swaks workers, plain, with STARTTLS and AUTH, and against a server that
//! refuses, with the counts and reply codes it reports checked against
//! what the sink received.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use integration_tests::sink::Sink;
use integration_tests::{Server, add_sasl_user, have_tool};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/loadtest/swaks-load.sh")
}

/// Runs the script: (exit code, stdout).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(script())
        .args(args)
        .output()
        .expect("run swaks-load.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

#[test]
fn swaks_load_counts_what_the_server_accepted() {
    if !have_tool("swaks") {
        return;
    }
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    add_sasl_user(&passwd, "load@relay.test", "load secret");
    let server = Server::start_with_listeners(
        &format!(
            "mynetworks = \"192.0.2.0/24\"\nrelay_domains = [\"relay.test\"]\n\
             relayhost = \"[127.0.0.1]:{}\"\nsmtpd_sasl_password_file = \"{}\"",
            sink.addr().port(),
            passwd.display()
        ),
        &[
            ("smtp", "none", ""),
            ("submission", "starttls", "smtpd_sasl_auth_enable = true"),
        ],
    );
    let smtp = server.addr_of("smtp").to_string();
    let submission = server.addr_of("submission").to_string();

    let (code, out) = run(&["-s", &smtp, "-n", "12", "-c", "3", "-t", "user@relay.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepted 12, failed 0"), "{out}");
    assert!(out.contains("  250   12\n"), "{out}");

    // Relaying elsewhere needs AUTH: refused without, accepted with it
    // (over STARTTLS: plaintext AUTH is not offered).
    let (code, out) = run(&["-s", &smtp, "-n", "3", "-c", "2", "-t", "x@elsewhere.test"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("accepted 0, failed 3"), "{out}");
    assert!(out.contains("  454   3\n"), "{out}");
    let (code, out) = run(&[
        "-s",
        &submission,
        "-n",
        "4",
        "-c",
        "2",
        "-t",
        "x@elsewhere.test",
        "--tls",
        "--auth",
        "load@relay.test:load secret",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("accepted 4, failed 0"), "{out}");

    // A wrong password under TLS is counted under its reply code.
    let (code, out) = run(&[
        "-s",
        &submission,
        "-n",
        "2",
        "-t",
        "x@elsewhere.test",
        "--tls",
        "--auth",
        "load@relay.test:wrong",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  535   2\n"), "{out}");

    let got = sink.wait_for(16, Duration::from_secs(30));
    assert_eq!(got.len(), 16);
    assert_eq!(
        got.iter()
            .filter(|m| m.rcpt_to == ["x@elsewhere.test"])
            .count(),
        4
    );

    // Nothing listens: every message is a connection failure.
    let (code, out) = run(&["-s", "127.0.0.1:1", "-n", "2"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  conn  2\n"), "{out}");
    // Load never leaves the machine.
    let (code, out) = run(&["-s", "192.0.2.1:25"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("refusing non-loopback host"), "{out}");
}
