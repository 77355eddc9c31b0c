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
    let mut server = Server::start(&format!(
        "queue_directory = \"{}\"\nqueue_shard_count = 1",
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
