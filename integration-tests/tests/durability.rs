//! The 250 after DATA means the message is on stable storage.

use integration_tests::{Server, queued_id};

#[test]
fn message_survives_kill_9_right_after_250() {
    let mut server = Server::start("");
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut c = server.client();
        let reply = c.send_mail(
            "a@example.test",
            &[&format!("r{i}@example.test")],
            "Subject: durable\r\n\r\nbody\r\n",
        );
        ids.push(queued_id(&reply));
    }
    // No QUIT, no shutdown: the process dies the instant after the last 250.
    server.kill9();
    // Offline listing reads the queue files directly.
    let mut listed = server.queue_ids();
    listed.sort();
    assert_eq!(listed, ids);
    server.restart();
    let mut listed = server.queue_ids();
    listed.sort();
    assert_eq!(listed, ids, "listed through the running server");
    // New ids continue after the old ones.
    let mut c = server.client();
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: after\r\n\r\nx\r\n",
    );
    assert!(queued_id(&reply) > *ids.last().unwrap());
}

#[test]
fn sigterm_lets_a_transaction_finish_and_tells_idle_sessions_421() {
    let mut server = Server::start("");
    let mut idle = server.client();
    assert!(idle.cmd("EHLO idle.test").starts_with("250"));
    let mut busy = server.client();
    assert!(busy.cmd("EHLO busy.test").starts_with("250"));
    assert_eq!(busy.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");

    // Signal from another thread; the idle session hears 421 at once.
    let status = std::thread::scope(|s| {
        let t = s.spawn(|| server.terminate());
        assert_eq!(
            idle.read_reply(),
            "421 4.3.2 mx.towerpost.test Error: service shutting down"
        );
        // The transaction in flight may complete.
        assert_eq!(busy.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
        assert!(busy.cmd("DATA").starts_with("354"));
        busy.send(b"Subject: last one\r\n\r\nbody\r\n.\r\n");
        queued_id(&busy.read_reply());
        assert_eq!(
            busy.read_reply(),
            "421 4.3.2 mx.towerpost.test Error: service shutting down"
        );
        t.join().unwrap()
    });
    assert!(status.success());
    // Every handle of the queue was let go: it closed, rather than being
    // given up on after 10 s.
    server.wait_for_log("]: stopped");
    let log = server.log();
    assert!(!log.contains("queue did not close"), "{log}");
    assert_eq!(server.queue().len(), 1);
}
