//! What all sessions together may hold, and clients that trickle:
//! `smtpd_session_limit`, `smtpd_message_memory_limit`,
//! `smtpd_per_record_deadline`, `smtpd_min_data_rate` and stress.

use std::time::{Duration, Instant};

use integration_tests::{Client, Server};

fn ready(server: &Server) -> Client {
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    c
}

/// Waits until another session holds at least `bytes` of the message
/// memory: a probe's MAIL with the SIZE that would then not fit is refused.
fn wait_until_held(server: &Server, budget: u64, bytes: u64) {
    let mut probe = ready(server);
    let size = budget - bytes + 1;
    for _ in 0..200 {
        let reply = probe.cmd(&format!("MAIL FROM:<> SIZE={size}"));
        if reply.starts_with("452") {
            return;
        }
        assert_eq!(probe.cmd("RSET"), "250 2.0.0 Ok");
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the memory was never held");
}

#[test]
fn sessions_beyond_the_global_limit_are_told_421_and_places_come_back() {
    let server = Server::start("smtpd_session_limit = 3");
    let held: Vec<Client> = (0..3).map(|_| server.client()).collect();
    for c in &held {
        assert!(c.greeting.starts_with("220 "), "{}", c.greeting);
    }
    let mut refused = Client::connect_silent(server.addr());
    assert_eq!(
        refused.read_reply(),
        "421 4.3.2 mx.towerpost.test Service currently unavailable: too many sessions, try again later"
    );
    assert!(refused.is_closed());
    server.wait_for_log("too many sessions (3, smtpd_session_limit); refusing unknown[127.0.0.1]");
    // A session that ends gives its place back.
    let mut first = held.into_iter().next().unwrap();
    assert!(first.cmd("QUIT").starts_with("221"));
    let start = Instant::now();
    loop {
        let mut c = Client::connect_silent(server.addr());
        let greeting = c.read_reply();
        if greeting.starts_with("220 ") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{greeting}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn message_memory_is_shared_by_all_sessions_and_given_back() {
    // 1 MB for everyone; each message 600 kB.
    let server = Server::start("smtpd_message_memory_limit = 1000000");
    let line = format!("{}\r\n", "x".repeat(78));
    let body = format!("Subject: big\r\n\r\n{}", line.repeat(7700));
    assert!(body.len() > 600_000);
    let start = |c: &mut Client| {
        assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
    };
    let mut a = ready(&server);
    let mut b = ready(&server);
    start(&mut a);
    start(&mut b);
    a.send(body.as_bytes()); // held while unfinished
    wait_until_held(&server, 1_000_000, 500_000);
    b.send(body.as_bytes());
    assert_eq!(b.cmd("."), "452 4.3.1 Insufficient system storage");
    assert!(a.cmd(".").starts_with("250 2.0.0 Ok: queued as"));
    // A declared size beyond the whole budget is no reason to refuse: only
    // a message's first 256 KiB and one write buffer are ever held, the
    // rest goes to its content file (a size whose share does not fit the
    // room left gets 452, as the probe in wait_until_held saw).
    assert_eq!(
        b.cmd("MAIL FROM:<a@example.test> SIZE=2000000"),
        "250 2.1.0 Ok"
    );
    assert_eq!(b.cmd("RSET"), "250 2.0.0 Ok");
    // The memory came back: the same message now goes through.
    start(&mut b);
    b.send(body.as_bytes());
    assert!(b.cmd(".").starts_with("250 2.0.0 Ok: queued as"));
    assert_eq!(server.queue().len(), 2);
}

/// Sends `byte` every `every` until the server closes the session or
/// `limit` passes; returns how long the session lasted.
fn trickle(c: &mut Client, every: Duration, limit: Duration) -> Duration {
    use std::io::Write;
    let start = Instant::now();
    let stream = c.stream_clone();
    loop {
        if (&stream).write_all(b"x").is_err() {
            return start.elapsed();
        }
        if c.closed_within(every) {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            return start.elapsed();
        }
    }
}

#[test]
fn a_trickled_command_line_meets_its_deadline() {
    let server = Server::start("smtpd_timeout = \"2s\"\nsmtpd_per_record_deadline = true");
    let mut c = ready(&server);
    let lasted = trickle(&mut c, Duration::from_millis(300), Duration::from_secs(20));
    assert!(lasted < Duration::from_secs(6), "held for {lasted:?}");
    server.wait_for_log("timeout after EHLO from unknown[127.0.0.1]");
}

#[test]
fn trickled_data_meets_its_deadline_at_the_minimum_rate() {
    let server = Server::start(
        "smtpd_timeout = \"2s\"\nsmtpd_per_record_deadline = true\nsmtpd_min_data_rate = 500",
    );
    let mut c = ready(&server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let lasted = trickle(&mut c, Duration::from_millis(300), Duration::from_secs(20));
    assert!(lasted < Duration::from_secs(6), "held for {lasted:?}");
    server.wait_for_log("timeout after DATA from unknown[127.0.0.1]");
    assert!(server.queue().is_empty());
}

#[test]
fn without_deadlines_a_trickle_is_only_bounded_per_read_until_stress() {
    // smtpd_timeout is per read: a byte every 300 ms keeps the session.
    let server = Server::start("smtpd_timeout = \"3s\"\nsmtpd_session_limit = 5");
    let mut c = ready(&server);
    let lasted = trickle(&mut c, Duration::from_millis(300), Duration::from_secs(5));
    assert!(lasted >= Duration::from_secs(5), "closed after {lasted:?}");
    // Four of five sessions open: stress turns per-record deadlines on.
    let others: Vec<Client> = (0..3).map(|_| ready(&server)).collect();
    let lasted = trickle(&mut c, Duration::from_millis(300), Duration::from_secs(20));
    assert!(
        lasted < Duration::from_secs(6),
        "held for {lasted:?} under stress"
    );
    drop(others);
}

#[test]
fn bdat_chunks_count_against_the_same_memory() {
    let server = Server::start("smtpd_message_memory_limit = 1000000");
    let message = format!("{}\r\n", "y".repeat(98)).repeat(7000); // 700 kB
    let (head, tail) = message.split_at(600_000);
    let start = |c: &mut Client| {
        assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    };
    let mut a = ready(&server);
    let mut b = ready(&server);
    start(&mut a);
    start(&mut b);
    // A's chunk is half sent: its 600 kB are held.
    a.send(format!("BDAT 700000 LAST\r\n{head}").as_bytes());
    wait_until_held(&server, 1_000_000, 500_000);
    b.send(format!("BDAT 600000 LAST\r\n{head}").as_bytes());
    assert_eq!(b.read_reply(), "452 4.3.1 Insufficient system storage");
    // BDAT LAST ended the transaction: the next one starts.
    assert_eq!(b.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(b.cmd("RSET"), "250 2.0.0 Ok");
    // A message bigger than all the memory is not refused for good (most
    // of it would go to its content file), but its share of memory does
    // not fit beside A's: 452, try later.
    assert_eq!(
        b.cmd("MAIL FROM:<a@example.test> SIZE=2000000"),
        "452 4.3.1 Insufficient system storage"
    );
    a.send(tail.as_bytes());
    let reply = a.read_reply();
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    assert_eq!(server.queue().len(), 1);
}
