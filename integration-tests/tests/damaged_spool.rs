//! A damaged shard file, as the operator meets it: `towerpost queue check`
//! names it, the server starts anyway and serves every other shard (the
//! damaged file is salvaged and kept in `queue/corrupt/`), and `queue
//! salvage` does the same by hand. On the main before this the server
//! exited 69 at start-up without opening its listeners.

use integration_tests::sink::Sink;
use integration_tests::{Server, queued_id};

const MESSAGES: usize = 20;

#[test]
fn a_damaged_shard_is_reported_set_aside_and_the_rest_served() {
    let port = Sink::start().stop();
    let mut server = Server::start(&format!(
        "queue_shard_count = 2\nrelayhost = \"[127.0.0.1]:{port}\""
    ));
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        let reply = server.client().send_mail(
            "a@example.test",
            &["b@example.test"],
            &format!("Subject: {i}\r\n\r\nx\r\n"),
        );
        ids.push(queued_id(&reply));
    }
    for id in &ids {
        server.wait_for_log(&format!("{id}: to=<b@example.test>, relay=none"));
    }
    let (status, _, err) = server.cli(&["queue", "check"]);
    assert_eq!(status.code(), Some(75), "refused while running: {err}");
    assert!(server.terminate().success());

    let (status, out, _) = server.cli(&["queue", "check"]);
    assert!(status.success(), "{out}");
    assert!(out.contains("2 shard files checked, no damage"), "{out}");

    // A stray write over the first page of shard 1 (its header).
    let shard1 = server.spool().join("queue/shard-001.redb");
    let mut bytes = std::fs::read(&shard1).unwrap();
    bytes[..64].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&shard1, &bytes).unwrap();

    let (status, out, _) = server.cli(&["queue", "check"]);
    assert_eq!(status.code(), Some(65), "{out}");
    assert!(out.contains("shard-001.redb: DAMAGED"), "{out}");
    assert!(out.contains("shard-000.redb: ok"), "{out}");

    server.restart();
    server.wait_for_log("the damaged file was moved to");
    let served = server.queue_ids();
    assert!(
        !served.is_empty() && served.len() < MESSAGES,
        "shard 0's mail is served: {served:?}"
    );
    assert!(served.iter().all(|id| ids.contains(id)));
    // New mail is accepted, into the fresh shard 1 as much as shard 0.
    for _ in 0..4 {
        let reply = server.client().send_mail(
            "a@example.test",
            &["c@example.test"],
            "Subject: new\r\n\r\nx\r\n",
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    assert!(server.terminate().success());

    let corrupt: Vec<_> = std::fs::read_dir(server.spool().join("queue/corrupt"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert!(corrupt[0].starts_with("shard-001.redb."), "{corrupt:?}");
    let (status, out, _) = server.cli(&["queue", "check"]);
    assert!(status.success(), "after the salvage: {out}");

    // By hand: a healthy shard salvages whole.
    let (status, out, _) = server.cli(&["queue", "salvage", "0"]);
    assert!(status.success(), "{out}");
    let salvaged = format!(
        "salvaged {} messages",
        served.len() + 4 - count_in(&server, 1)
    );
    assert!(out.contains(&salvaged), "{out} (wanted {salvaged})");
    let (status, out, _) = server.cli(&["queue", "salvage", "7"]);
    assert_eq!(status.code(), Some(66), "{out}");
}

/// Messages in shard `i`, as `queue check` counts them.
fn count_in(server: &Server, i: usize) -> usize {
    let (_, out, _) = server.cli(&["queue", "check"]);
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("shard-{i:03}.redb:")))
        .unwrap_or_else(|| panic!("{out}"));
    let intact = line.split('(').nth(1).unwrap().split(' ').next().unwrap();
    intact.parse().unwrap()
}
