//! Operator commands on the queue: show, hold, release, delete, requeue.

use std::time::Duration;

use integration_tests::sink::Sink;
use integration_tests::{Server, queued_id};

fn send(server: &Server, subject: &str) -> String {
    let mut c = server.client();
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        &format!("Subject: {subject}\r\n\r\nx\r\n"),
    );
    queued_id(&reply)
}

/// A server relaying to a sink that is down, with Postfix's default
/// backoff (so nothing is retried during the test unless an operator says so).
fn parked() -> (Server, u16) {
    let port = Sink::start().stop();
    let server = Server::start(&format!(
        "queue_run_delay = \"1s\"\nrelayhost = \"[127.0.0.1]:{port}\""
    ));
    (server, port)
}

#[test]
fn show_hold_release_and_requeue() {
    let (server, port) = parked();
    let id = send(&server, "ops");
    server.wait_for_log(&format!("{id}: to=<b@example.test>, relay=none"));

    let (status, out, _) = server.cli(&["queue", "show", &id]);
    assert!(status.success());
    assert!(out.contains("queue_name: deferred"), "{out}");
    assert!(
        out.contains("recipient: b@example.test (deferred, dsn=4.4.1: connect to"),
        "{out}"
    );

    let (status, out, _) = server.cli(&["queue", "hold", &id]);
    assert!(status.success());
    assert_eq!(
        out,
        format!("towerpost: {id}: placed on hold\ntowerpost: Placed on hold: 1 message\n")
    );
    let (_, listing, _) = server.cli(&["queue", "list"]);
    assert!(listing.contains(&format!("{id}!")), "held mark: {listing}");

    // The next hop comes back, but held mail stays put.
    let sink = Sink::start_on(port);
    let (status, _, _) = server.cli(&["queue", "requeue", &id]);
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(3));
    assert!(sink.messages().is_empty(), "held mail was delivered");
    assert_eq!(server.queue()[0]["queue_name"], "hold");

    let (status, out, _) = server.cli(&["queue", "release", &id]);
    assert!(status.success(), "{out}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(20)).len(), 1);
    server.wait_for_log(&format!("{id}: removed"));
}

#[test]
fn requeue_skips_the_backoff() {
    let (server, port) = parked();
    let id = send(&server, "requeue");
    server.wait_for_log(&format!("{id}: to=<b@example.test>, relay=none"));
    let sink = Sink::start_on(port);
    // minimal_backoff_time is 300s: only the requeue can deliver it now.
    let (status, out, _) = server.cli(&["queue", "requeue", "ALL"]);
    assert!(status.success());
    assert!(out.contains(&format!("towerpost: {id}: requeued")), "{out}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(20)).len(), 1);
}

#[test]
fn delete_removes_and_unknown_ids_fail_clearly() {
    let (server, _port) = parked();
    let id = send(&server, "delete");
    let (status, out, _) = server.cli(&["queue", "delete", &id]);
    assert!(status.success());
    assert!(out.contains(&format!("towerpost: {id}: removed")));
    assert!(server.queue().is_empty());

    let (status, _, err) = server.cli(&["queue", "delete", &id, "NOTANID"]);
    assert_eq!(status.code(), Some(66));
    assert!(
        err.contains(&format!("towerpost: {id}: no such message in the queue")),
        "{err}"
    );
    assert!(
        err.contains("towerpost: NOTANID: no such message in the queue"),
        "{err}"
    );
    let (status, _, err) = server.cli(&["queue", "show", &id]);
    assert_eq!(status.code(), Some(66));
    assert!(err.contains("no such message"));
}

#[test]
fn operations_work_without_a_running_server() {
    let (mut server, _port) = parked();
    let id = send(&server, "offline");
    server.terminate();
    let (status, out, err) = server.cli(&["queue", "hold", &id]);
    assert!(status.success(), "{err}");
    assert!(out.contains("placed on hold"));
    server.restart();
    assert_eq!(server.queue()[0]["queue_name"], "hold");
}

/// A local user cannot take the control socket away from others: idle
/// connections are capped per uid and closed after 10 s, and root's
/// `queue list` works meanwhile.
#[test]
fn an_unprivileged_user_cannot_exhaust_the_control_socket() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let can = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can || !integration_tests::have_tool("python3") {
        if std::env::var("REQUIRE_TEST_TOOLS").as_deref() == Ok("1") {
            panic!("runuser -u nobody and python3 are needed (REQUIRE_TEST_TOOLS=1)");
        }
        eprintln!("SKIPPED: cannot run commands as nobody here (needs root)");
        return;
    }
    let server = Server::start("");
    let dir = server.config_path().parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(server.spool(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = server.spool().join("control.sock");
    let script = r#"
import socket, sys, time
held = []
for i in range(12):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
time.sleep(0.5)
def answer(s, wait):
    s.settimeout(wait)
    try:
        return s.recv(4096)
    except socket.timeout:
        return None
answers = [answer(s, 0.2) for s in held]
refused = sum(1 for a in answers if a and b"too many control connections" in a)
waiting = sum(1 for a in answers if a is None)
print(refused, waiting, flush=True)
time.sleep(11)
closed = sum(1 for s, a in zip(held, answers) if a is None and answer(s, 1) == b"")
print(closed, flush=True)
"#;
    let mut child = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c", script])
        .arg(&socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "4 8", "refused and admitted connections");
    // Root is not held up by nobody's connections.
    let (status, out, err) = server.cli(&["queue", "list"]);
    assert!(status.success(), "{out}{err}");
    let second = lines.next().unwrap().unwrap();
    assert_eq!(second, "8", "idle connections are closed after 10 s");
    assert!(child.wait().unwrap().success());
    server.wait_for_log("too many control connections from uid 65534; refused");
}

/// A listing longer than one page (512 messages) is streamed by the server
/// and read from the files without one alike; a client from before paging
/// still gets every message in one answer, and a reader that goes away
/// early (`mailq | head`) ends the listing quietly.
#[test]
fn a_long_listing_arrives_in_pages() {
    use std::io::{BufRead, Write};
    const MESSAGES: usize = 1_100;
    let (mut server, _port) = parked();
    let mut c = server.client();
    for i in 0..MESSAGES {
        c.send_mail(
            "a@example.test",
            &[&format!("r{i}@example.test")],
            &format!("Subject: page {i}\r\n\r\nx\r\n"),
        );
    }
    let start = std::time::Instant::now();
    while server.queue().iter().any(|m| m["queue_name"] != "deferred") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not all deferred"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let (status, streamed, err) = server.cli(&["queue", "list"]);
    assert!(status.success(), "{err}");
    assert_eq!(streamed.matches("-Queue ID-").count(), 1, "one header");
    let reasons = streamed
        .lines()
        .filter(|l| l.trim_start().starts_with('(') && l.ends_with(')'))
        .count();
    assert_eq!(reasons, MESSAGES, "one delay reason each");
    assert!(
        streamed.ends_with(&format!(" Kbytes in {MESSAGES} Requests.\n")),
        "{}",
        &streamed[streamed.len() - 200..]
    );
    let ids = server.queue_ids();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids.len(), MESSAGES);
    assert_eq!(ids, sorted, "once each, in id order");

    // A client from before paging.
    let mut old = std::os::unix::net::UnixStream::connect(server.spool().join("control.sock"))
        .expect("control socket");
    old.write_all(b"{\"command\":\"list\"}\n").unwrap();
    old.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(old).read_line(&mut answer).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["entries"]["entries"].as_array().map(Vec::len),
        Some(MESSAGES)
    );

    // The reader stops after the first line.
    let mut child = std::process::Command::new(integration_tests::towerpost_bin())
        .arg("--config")
        .arg(server.config_path())
        .args(["queue", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("-Queue ID-"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // Stdout that cannot be written is the listing's fault, not the server's.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = std::process::Command::new(integration_tests::towerpost_bin())
        .arg("--config")
        .arg(server.config_path())
        .args(["queue", "list"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("towerpost: fatal: cannot write the listing: "),
        "{err}"
    );

    server.terminate();
    let (status, offline, err) = server.cli(&["queue", "list"]);
    assert!(status.success(), "{err}");
    assert_eq!(offline, streamed, "the same listing without a server");
}
