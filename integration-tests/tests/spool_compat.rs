//! A spool written by an earlier release is read and delivered by today's
//! binary, with every envelope field intact.
//!
//! `queue/tests/fixtures/spool-9cc85ce/` was written by the `towerpost`
//! binary of commit 9cc85ce (before queue records carried a format
//! version): its relayhost refused, so four messages were deferred, and
//! one was then put on hold. They were sent with smtplib:
//!
//! 1. `sender@old.example.test` → `one@`, `two@dest.example.test`,
//!    `RET=HDRS ENVID=env+2Bid`, each `NOTIFY=SUCCESS,DELAY
//!    ORCPT=rfc822;one@dest.example.test`;
//! 2. `<>` → `three@other.example.test`, `BODY=8BITMIME RET=FULL`,
//!    `NOTIFY=NEVER`, an 8-bit body;
//! 3. `sénder@old.example.test` → `für@utf8.example.test`, `SMTPUTF8
//!    BODY=8BITMIME`;
//! 4. `held@old.example.test` → `held@hold.example.test`, on hold.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use integration_tests::sink::{Sink, SunkMessage};
use integration_tests::{Server, towerpost_bin};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn by_sender<'a>(messages: &'a [SunkMessage], sender: &str) -> &'a SunkMessage {
    messages
        .iter()
        .find(|m| m.mail_from == sender)
        .unwrap_or_else(|| panic!("nothing from {sender:?} in {messages:#?}"))
}

#[test]
fn a_spool_from_the_release_before_record_versions_is_delivered() {
    let spool = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../queue/tests/fixtures/spool-9cc85ce");
    copy_dir(&fixture, spool.path());
    // Read offline first: once the server runs, it may deliver the mail
    // that is due at any moment.
    let config = spool.path().join("offline.toml");
    std::fs::write(
        &config,
        format!(
            "queue_directory = \"{}\"\nqueue_shard_count = 2\n",
            spool.path().display()
        ),
    )
    .unwrap();
    let listed = Command::new(towerpost_bin())
        .arg("--config")
        .arg(&config)
        .args(["queue", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let queue: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(queue.len(), 4, "{queue:#?}");
    let held: Vec<_> = queue
        .iter()
        .filter(|e| e["queue_name"] == "hold")
        .map(|e| e["queue_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held.len(), 1, "{queue:#?}");

    let sink = Sink::start();
    // The fixture's mail arrived on 2026-12-02: lifetimes long enough that
    // it never expires while this test exists.
    let server = Server::start(&format!(
        "queue_directory = \"{}\"\nqueue_shard_count = 2\n\
         maximal_queue_lifetime = \"3650d\"\nbounce_queue_lifetime = \"3650d\"\n\
         relayhost = \"[127.0.0.1]:{}\"",
        spool.path().display(),
        sink.addr().port()
    ));

    let (status, _, err) = server.cli(&["postqueue", "-f"]);
    assert!(status.success(), "{err}");
    let (status, _, err) = server.cli(&["queue", "release", &held[0]]);
    assert!(status.success(), "{err}");
    let messages = sink.wait_for(4, Duration::from_secs(20));
    assert_eq!(messages.len(), 4, "{messages:#?}");

    let dsn = by_sender(&messages, "sender@old.example.test");
    assert!(dsn.mail_params.contains(&"RET=HDRS".to_owned()), "{dsn:?}");
    assert!(
        dsn.mail_params.contains(&"ENVID=env+2Bid".to_owned()),
        "{dsn:?}"
    );
    assert_eq!(
        dsn.rcpt_to,
        ["one@dest.example.test", "two@dest.example.test"]
    );
    for params in &dsn.rcpt_params {
        assert!(
            params.contains(&"NOTIFY=SUCCESS,DELAY".to_owned()),
            "{dsn:?}"
        );
        assert!(
            params.contains(&"ORCPT=rfc822;one@dest.example.test".to_owned()),
            "{dsn:?}"
        );
    }
    assert!(String::from_utf8_lossy(&dsn.data).contains("body one"));

    let bounce = by_sender(&messages, "");
    assert_eq!(bounce.rcpt_to, ["three@other.example.test"]);
    assert!(
        bounce.mail_params.contains(&"BODY=8BITMIME".to_owned()),
        "{bounce:?}"
    );
    assert!(
        bounce.mail_params.contains(&"RET=FULL".to_owned()),
        "{bounce:?}"
    );
    assert_eq!(bounce.rcpt_params, [vec!["NOTIFY=NEVER".to_owned()]]);
    assert!(
        bounce.data.ends_with("8bit \u{e9}\r\n".as_bytes()),
        "{bounce:?}"
    );

    let utf8 = by_sender(&messages, "s\u{e9}nder@old.example.test");
    assert_eq!(utf8.rcpt_to, ["f\u{fc}r@utf8.example.test"]);
    assert!(
        utf8.mail_params.contains(&"SMTPUTF8".to_owned()),
        "{utf8:?}"
    );

    let released = by_sender(&messages, "held@old.example.test");
    assert_eq!(released.rcpt_to, ["held@hold.example.test"]);
    assert!(String::from_utf8_lossy(&released.data).contains("held body"));

    for _ in 0..100 {
        if server.queue().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("delivered mail stayed queued: {:#?}", server.queue());
}
