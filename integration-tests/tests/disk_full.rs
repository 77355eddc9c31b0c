//! A full disk answers 452 4.3.1 and keeps the session usable; what was
//! acknowledged before stays queued.

use std::process::Command;

use integration_tests::{Server, queued_id};

/// A small tmpfs to fill up; needs root (CI runs as root).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("REQUIRE_TEST_TOOLS").as_deref() == Ok("1") {
                panic!("cannot mount a tmpfs (REQUIRE_TEST_TOOLS=1 needs root)");
            }
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn full_disk_answers_452_and_keeps_the_session_usable() {
    let Some(disk) = SmallDisk::mount("3m") else {
        return;
    };
    // No free-space check at MAIL (queue_minfree 0, no size limit): the
    // write itself must fail cleanly.
    let mut server = Server::start(&format!(
        "queue_directory = \"{}\"\nqueue_shard_count = 1\nmessage_size_limit = 0",
        disk.0.display()
    ));
    let body = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef\r\n".repeat(20_000)
    );
    let mut accepted = Vec::new();
    let mut c = server.client();
    let mut refused = None;
    for _ in 0..40 {
        let reply = c.send_mail("a@example.test", &["b@example.test"], &body);
        if reply.starts_with("250") {
            accepted.push(queued_id(&reply));
        } else {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("a 3 MiB disk must fill up");
    assert_eq!(refused, "452 4.3.1 Insufficient system storage");
    assert!(!accepted.is_empty());
    // The session goes on.
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    // Everything acknowledged is still there after a crash.
    server.kill9();
    let mut listed = server.queue_ids();
    listed.sort();
    assert_eq!(listed, accepted);
}

#[test]
fn mail_is_refused_before_the_body_when_space_runs_short() {
    let Some(disk) = SmallDisk::mount("3m") else {
        return;
    };
    let server = Server::start(&format!(
        "queue_directory = \"{}\"\nqueue_shard_count = 1\nmessage_size_limit = 0\n\
         queue_minfree = 1000000",
        disk.0.display()
    ));
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test> SIZE=2500000"),
        "452 4.3.1 Insufficient system storage"
    );
    server.wait_for_log("not enough free space in mail queue");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test> SIZE=100000"),
        "250 2.1.0 Ok"
    );
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    let body = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef\r\n".repeat(20_000)
    );
    let mut refused = None;
    for _ in 0..40 {
        let reply = c.cmd("MAIL FROM:<a@example.test>");
        if reply != "250 2.1.0 Ok" {
            refused = Some(reply);
            break;
        }
        assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(body.as_bytes());
        let reply = c.cmd(".");
        assert!(reply.starts_with("250"), "refused after the body: {reply}");
    }
    assert_eq!(
        refused.as_deref(),
        Some("452 4.3.1 Insufficient system storage"),
        "the disk must run short at MAIL"
    );
    assert!(!server.queue().is_empty());
}
