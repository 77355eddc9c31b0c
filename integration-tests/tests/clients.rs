//! Real SMTP clients against the real server: swaks, Python's smtplib and
//! Postfix's smtp-source.

use std::process::Command;

use integration_tests::{Server, have_tool, run_python};

#[test]
fn swaks_gets_250_queued_as() {
    if !have_tool("swaks") {
        return;
    }
    let server = Server::start("");
    let out = Command::new("swaks")
        .args(["--server", &server.addr().to_string()])
        .args(["--from", "a@example.test", "--to", "b@example.test"])
        .args(["--timeout", "20"])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    let line = transcript
        .lines()
        .find(|l| l.contains("250 2.0.0 Ok: queued as"))
        .unwrap_or_else(|| panic!("no queued reply: {transcript}"));
    let id = line.rsplit(' ').next().unwrap();
    assert_eq!(server.queue_ids(), vec![id.to_owned()]);
}

#[test]
fn swaks_with_and_without_pipelining() {
    if !have_tool("swaks") {
        return;
    }
    let server = Server::start("");
    for extra in [&["--pipeline"][..], &[][..]] {
        let out = Command::new("swaks")
            .args(["--server", &server.addr().to_string()])
            .args([
                "--from",
                "a@example.test",
                "--to",
                "b@example.test,c@example.test",
            ])
            .args(extra)
            .output()
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{transcript}");
        assert!(
            transcript.contains("250 2.0.0 Ok: queued as"),
            "{transcript}"
        );
    }
    assert_eq!(server.queue().len(), 2);
}

#[test]
fn python_smtplib_sends_with_and_without_smtputf8() {
    if !have_tool("python3") {
        return;
    }
    let server = Server::start("");
    let script = r#"
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
with smtplib.SMTP(host, port, timeout=20) as s:
    s.ehlo("client.test")
    refused = s.sendmail("a@example.test", ["b@example.test", "c@example.test"],
                         b"Subject: from python\r\n\r\nhello\r\n")
    assert refused == {}, refused
    s.sendmail("jörg@bücher.test", ["x@example.test"],
               "Subject: utf8\r\n\r\nhallo\r\n".encode(), mail_options=["SMTPUTF8"])
    code, _ = s.docmd("VRFY", "someone")
    assert code == 252, code
print("ok")
"#;
    run_python(script, &["127.0.0.1", &server.addr().port().to_string()]);
    let queue = server.queue();
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[1]["sender"], "jörg@bücher.test");
}

#[test]
fn smtp_source_sessions_are_all_queued() {
    if !have_tool("smtp-source") {
        return;
    }
    let server = Server::start("");
    let status = Command::new("timeout")
        .args(["60", "smtp-source", "-s", "5", "-m", "50", "-l", "1024"])
        .args(["-f", "bench@example.test", "-t", "sink@example.test"])
        .arg(server.addr().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(server.queue().len(), 50);
}
