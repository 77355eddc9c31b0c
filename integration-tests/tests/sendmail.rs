//! `sendmail` submission: a message on standard input is queued and
//! delivered like one received over SMTP.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::sink::Sink;
use integration_tests::{Server, towerpost_bin};

fn sendmail(server: &Server, args: &[&str], input: impl AsRef<[u8]>) -> (Option<i32>, String) {
    let mut child = Command::new(towerpost_bin())
        .arg("--config")
        .arg(server.config_path())
        .arg("sendmail")
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_ref())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn relay(sink: &Sink) -> Server {
    Server::start(&format!(
        "queue_run_delay = \"1s\"\nrelayhost = \"[127.0.0.1]:{}\"",
        sink.addr().port()
    ))
}

#[test]
fn submits_from_stdin_with_arguments() {
    let sink = Sink::start();
    let server = relay(&sink);
    let (code, err) = sendmail(
        &server,
        &["-f", "a@example.test", "b@example.test", "c@example.test"],
        "Subject: from sendmail\n\nline one\n.\nnot part of the message\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0].mail_from, "a@example.test");
    assert_eq!(got[0].rcpt_to, ["b@example.test", "c@example.test"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(
        data.starts_with("Received: by mx.towerpost.test (towerpost, from userid 0)"),
        "{data}"
    );
    assert!(
        data.contains("Subject: from sendmail\r\n\r\nline one\r\n"),
        "CRLF: {data:?}"
    );
    assert!(!data.contains("not part"), "a lone dot ends the input");
    server.wait_for_log("uid=0 from=<a@example.test>");
}

#[test]
fn extracts_recipients_with_t_and_drops_bcc() {
    let sink = Sink::start();
    let server = relay(&sink);
    let (code, err) = sendmail(
        &server,
        &["-t", "-i"],
        "To: B <b@example.test>\nBcc: hidden@example.test\nSubject: t\n\n.\nkept with -i\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0].mail_from, "root@mx.towerpost.test");
    assert_eq!(got[0].rcpt_to, ["b@example.test", "hidden@example.test"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(!data.contains("Bcc:"), "{data}");
    assert!(data.contains("kept with -i"), "{data}");
}

#[test]
fn t_reads_rfc5322_address_lists_and_keeps_header_bytes() {
    let sink = Sink::start();
    let server = relay(&sink);
    let input: &[u8] = b"To: \"Doe, John\" <john@example.test>, team: a@example.test,\n b@example.test;\nCc: undisclosed-recipients:;\nSubject: caf\xe9 \xff\n\nbody\n";
    let (code, err) = sendmail(&server, &["-t"], input);
    assert_eq!(code, Some(0), "{err}");
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(
        got[0].rcpt_to,
        ["john@example.test", "a@example.test", "b@example.test"]
    );
    let data = &got[0].data;
    let want: &[u8] = b"To: \"Doe, John\" <john@example.test>, team: a@example.test,\r\n b@example.test;\r\nCc: undisclosed-recipients:;\r\nSubject: caf\xe9 \xff\r\n\r\nbody\r\n";
    assert!(
        data.windows(want.len()).any(|w| w == want),
        "headers changed: {:?}",
        String::from_utf8_lossy(data)
    );
}

#[test]
fn no_recipients_is_an_error() {
    let sink = Sink::start();
    let server = relay(&sink);
    let (code, err) = sendmail(&server, &[], "Subject: nobody\n\nx\n");
    assert_eq!(code, Some(65));
    assert!(err.contains("no recipient addresses found"), "{err}");
}
