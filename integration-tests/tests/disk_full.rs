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
    // Each is larger than what a record holds: the rest is in its content
    // file, and the refused message left none behind.
    let mut files: Vec<String> = std::fs::read_dir(disk.0.join("queue/content"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files, accepted,
        "content files of the accepted messages only"
    );
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

/// A small ext4 file system on a loop device, mounted `errors=remount-ro`
/// so that the kernel can be told to turn it read-only under the server's
/// open files, as it does after a disk error. Needs root.
struct LoopExt4 {
    image: std::path::PathBuf,
    mount: std::path::PathBuf,
}

impl LoopExt4 {
    fn create() -> Option<LoopExt4> {
        let dir = tempfile::tempdir().ok()?.keep();
        let image = dir.join("spool.img");
        let mount = dir.join("mnt");
        std::fs::create_dir(&mount).ok()?;
        let ok = std::fs::File::create(&image)
            .and_then(|f| f.set_len(32 << 20))
            .is_ok()
            && run("mkfs.ext4", &["-q", "-F", image.to_str()?])
            && run(
                "mount",
                &[
                    "-o",
                    "loop,errors=remount-ro",
                    image.to_str()?,
                    mount.to_str()?,
                ],
            );
        if !ok {
            let _ = std::fs::remove_dir_all(&dir);
            if std::env::var("REQUIRE_TEST_TOOLS").as_deref() == Ok("1") {
                panic!("cannot mount an ext4 loop device (REQUIRE_TEST_TOOLS=1 needs root)");
            }
            eprintln!("SKIPPED: cannot mount an ext4 loop device here (needs root)");
            return None;
        }
        Some(LoopExt4 { image, mount })
    }

    /// The loop device's name under /sys/fs/ext4.
    fn device(&self) -> String {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", "--target"])
            .arg(&self.mount)
            .output()
            .expect("findmnt");
        let source = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        source.rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// What ext4 does on a metadata error with `errors=remount-ro`.
    fn turn_read_only(&self) {
        let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", self.device());
        std::fs::write(&trigger, "1").unwrap_or_else(|e| panic!("{trigger}: {e}"));
    }

    /// What the operator does next: unmount, check, mount again.
    fn repair(&self) {
        assert!(run("umount", &[self.mount.to_str().unwrap()]));
        // 1: errors corrected, which is what a triggered error leaves.
        let status = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("e2fsck");
        assert!(status.code().is_some_and(|c| c <= 1), "e2fsck: {status}");
        assert!(run(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                self.image.to_str().unwrap(),
                self.mount.to_str().unwrap()
            ],
        ));
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        if let Some(dir) = self.image.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_spool_turned_read_only_answers_4xx_and_loses_nothing() {
    let Some(disk) = LoopExt4::create() else {
        return;
    };
    let spool = disk.mount.join("spool");
    let mut server = Server::start(&format!(
        "queue_directory = \"{}\"\nqueue_shard_count = 2\ndefer_transports = [\"smtp\"]",
        spool.display()
    ));
    let mut c = server.client();
    let mut accepted: Vec<String> = (0..5)
        .map(|i| {
            let reply = c.send_mail(
                "a@example.test",
                &["b@example.test", "c@example.test"],
                &format!("Subject: {i}\r\n\r\nbefore\r\n"),
            );
            assert!(reply.starts_with("250"), "{reply}");
            queued_id(&reply)
        })
        .collect();

    disk.turn_read_only();
    for i in 0..3 {
        let reply = c.send_mail(
            "a@example.test",
            &["b@example.test"],
            &format!("Subject: ro {i}\r\n\r\nwhile read-only\r\n"),
        );
        assert_eq!(reply, "451 4.3.0 Error: queue file write error");
        assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    }
    // New sessions are still greeted, and the queue can be read.
    let mut other = server.client();
    assert_eq!(other.cmd("QUIT"), "221 2.0.0 Bye");
    let mut listed = server.queue_ids();
    listed.sort();
    accepted.sort();
    assert_eq!(listed, accepted);
    server.wait_for_log("queue commit failed");
    // Read through a fresh read-only handle, not what redb had cached.
    server.wait_for_log("the file system refuses writes; the shard is read-only");
    let (status, stdout, _) = server.cli(&["queue", "show", &accepted[0]]);
    assert!(
        status.success() && stdout.contains("b@example.test"),
        "{stdout}"
    );
    drop(c);

    // The operator stops the server, repairs the file system, starts again.
    let status = server.terminate();
    assert!(status.success(), "server exited {status}");
    disk.repair();
    let (status, stdout, stderr) = server.cli(&["queue", "check"]);
    assert!(status.success(), "queue check: {stdout}{stderr}");
    server.restart();
    let mut listed = server.queue_ids();
    listed.sort();
    assert_eq!(listed, accepted);
    let mut c = server.client();
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: after\r\n\r\nok\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
}
