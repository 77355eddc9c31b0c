//! A damaged shard file does not take the queue down: its readable
//! records are salvaged into a fresh file, the damaged file is moved to
//! `queue/corrupt/`, and every other shard is served. On the main before
//! this, each of these made `Queue::open` fail (the server exited 69).

use std::path::{Path, PathBuf};

use towerpost_queue::{
    Envelope, Queue, QueueId, QueueSettings, QueueState, check_shard, salvage_shard,
};

mod common;

const MESSAGES: usize = 200;

/// A body that names its message, so that its page can be found on disk.
fn body(i: usize) -> Vec<u8> {
    let mut b = format!("body-{i:04}-").into_bytes();
    b.resize(3000, b'x');
    b
}

/// A queue of [`MESSAGES`] over two shards, written and closed.
async fn spool(dir: &Path) -> (QueueSettings, Vec<QueueId>) {
    let settings = QueueSettings {
        directory: dir.to_owned(),
        shards: 2,
    };
    let queue = Queue::open(settings.clone()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        let id = queue.new_id();
        let env: Envelope = common::envelope(&format!("r{i}@example.test"), QueueState::Deferred);
        queue.enqueue(id, &env, body(i)).await.unwrap();
        ids.push(id);
    }
    queue.shutdown().await;
    (settings, ids)
}

fn shard(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("queue/shard-{i:03}.redb"))
}

/// Flips 64 bytes at the start of the page at `offset`: what a bad sector
/// or a stray write does to a page header.
fn flip_page(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let page = offset / 4096 * 4096;
    for b in &mut bytes[page..page + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(path, &bytes).unwrap();
}

/// The shard file and offset holding message `i`'s body.
fn find_body(dir: &Path, i: usize) -> (PathBuf, usize) {
    let needle = format!("body-{i:04}-").into_bytes();
    (0..2)
        .map(|s| shard(dir, s))
        .find_map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let at = bytes.windows(needle.len()).position(|w| w == needle)?;
            Some((path, at))
        })
        .expect("the body is on disk")
}

fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("queue/corrupt"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_body_page_costs_its_message_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, ids) = spool(dir.path()).await;
    let victim = 123;
    let (path, offset) = find_body(dir.path(), victim);
    flip_page(&path, offset);

    // The check names the message and finds the rest intact.
    let health = check_shard(&path).unwrap();
    assert!(health.damaged, "{health:?}");
    assert!(
        health
            .problems
            .iter()
            .any(|p| p.contains(&ids[victim].to_string())),
        "{health:?}"
    );

    // Start-up does not read bodies: the queue opens, serves every other
    // body, and the damaged one is an error naming the shard, never a
    // panic or a body delivered as it is now.
    let queue = Queue::open(settings.clone()).await.unwrap();
    let err = queue.content(ids[victim]).await.unwrap_err();
    assert!(err.is_damaged(), "{err}");
    assert!(err.to_string().contains("shard-"), "{err}");
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != victim) {
        assert_eq!(queue.content(*id).await.unwrap().unwrap(), body(i));
    }
    queue.shutdown().await;

    // The shard was marked: the next start salvages it.
    let queue = Queue::open(settings).await.unwrap();
    let entries = queue.entries().await.unwrap();
    assert_eq!(entries.len(), MESSAGES - 1);
    assert!(entries.iter().all(|e| e.id != ids[victim]));
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != victim) {
        assert_eq!(queue.content(*id).await.unwrap().unwrap(), body(i));
    }
    let corrupt = corrupt_files(dir.path());
    assert_eq!(
        corrupt.len(),
        1,
        "the damaged file is kept aside: {corrupt:?}"
    );
    assert!(!path.with_extension("damaged").exists(), "the mark is gone");
    queue.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_with_a_damaged_header_is_set_aside_and_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, ids) = spool(dir.path()).await;
    let damaged = shard(dir.path(), 1);
    flip_page(&damaged, 0);

    let queue = Queue::open(settings).await.expect("the other shard serves");
    let entries = queue.entries().await.unwrap();
    assert!(
        !entries.is_empty() && entries.len() < MESSAGES,
        "shard 0's messages are served, shard 1's are set aside: {}",
        entries.len()
    );
    for e in &entries {
        let i = ids.iter().position(|id| *id == e.id).unwrap();
        assert_eq!(queue.content(e.id).await.unwrap().unwrap(), body(i));
    }
    // New mail goes into the fresh shard 1 as well.
    let id = queue.new_id();
    let env = common::envelope("new@example.test", QueueState::Incoming);
    queue.enqueue(id, &env, body(9999)).await.unwrap();
    assert_eq!(queue.content(id).await.unwrap().unwrap(), body(9999));
    let corrupt = corrupt_files(dir.path());
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert!(
        corrupt[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("shard-001.redb."),
        "{corrupt:?}"
    );
    queue.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_copies_every_readable_record_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ids) = spool(dir.path()).await;
    let victim = 7;
    let (path, offset) = find_body(dir.path(), victim);
    let before = check_shard(&path).unwrap();
    assert!(!before.damaged && before.problems.is_empty(), "{before:?}");
    flip_page(&path, offset);

    let report = salvage_shard(&path).unwrap();
    assert_eq!(report.salvaged, before.intact - 1, "{report:?}");
    assert!(
        report
            .lost
            .iter()
            .any(|l| l.contains(&ids[victim].to_string())),
        "{report:?}"
    );
    assert!(report.moved_to.exists());
    let after = check_shard(&path).unwrap();
    assert!(!after.damaged && after.problems.is_empty(), "{after:?}");
    assert_eq!(after.intact, report.salvaged);
}
