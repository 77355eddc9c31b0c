//! The examples, run as servers: `cargo run --example greylist`.

use std::time::Duration;

use integration_tests::{Server, queued_id};

#[test]
fn greylist_example_refuses_first_sight_and_accepts_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("greylist.txt");
    let server = Server::start_example(
        "greylist",
        "",
        &[
            ("GREYLIST_FILE", file.to_str().unwrap()),
            ("GREYLIST_DELAY", "1"),
        ],
    );
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    let first = c.cmd("RCPT TO:<b@example.test>");
    assert!(
        first.starts_with("450 4.7.1 <b@example.test>: Recipient address rejected: Greylisted"),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: greylisted\r\n\r\nx\r\n");
    queued_id(&c.cmd("."));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("<a@example.test> <b@example.test>")
    );
}

#[test]
fn policy_example_refuses_listed_senders_and_adds_its_header() {
    let sink = integration_tests::sink::Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sender_access");
    std::fs::write(&table, "spam@example.test REJECT go away\n").unwrap();
    let server = Server::start_example(
        "policy",
        &format!(
            "queue_run_delay = \"1s\"\nrelayhost = \"[127.0.0.1]:{}\"",
            sink.addr().port()
        ),
        &[("POLICY_TABLE", table.to_str().unwrap())],
    );
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("MAIL FROM:<spam@example.test>"),
        "550 5.7.1 <spam@example.test>: Sender address rejected: go away"
    );
    let reply = c.send_mail(
        "ok@example.test",
        &["b@example.test"],
        "Subject: fine\r\n\r\nx\r\n",
    );
    queued_id(&reply);
    let got = sink.wait_for(1, Duration::from_secs(20));
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(
        data.contains(
            "\r\nX-Policy: sender checked by the towerpost policy example\r\nSubject: fine"
        ),
        "{data}"
    );
}
