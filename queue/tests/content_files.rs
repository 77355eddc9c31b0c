//! Large messages: the head in the record, the rest in a content file
//! that is durable before the envelope names it, removed with the
//! message, and never left behind as an orphan.

use towerpost_queue::{Envelope, Queue, QueueSettings, QueueState};

mod common;

fn envelope() -> Envelope {
    common::envelope("r@example.test", QueueState::Incoming)
}

fn settings(dir: &std::path::Path) -> QueueSettings {
    QueueSettings {
        directory: dir.to_owned(),
        shards: 2,
    }
}

fn content_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("queue/content"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A body of `n` octets that shows where each octet belongs.
fn rest(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"0123456789\r\n"[i % 12]).collect()
}

/// Stores a message of `head` plus `rest`, written in two appends.
async fn store(queue: &Queue, head: &[u8], rest: &[u8]) -> towerpost_queue::QueueId {
    let id = queue.new_id();
    let mut writer = queue.content_writer(id);
    let (a, b) = rest.split_at(rest.len() / 3);
    writer.append(&mut a.to_vec()).await.unwrap();
    writer.append(&mut b.to_vec()).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    let mut env = envelope();
    env.size = (head.len() + rest.len()) as u64;
    queue
        .enqueue_spooled(id, &env, head.to_vec(), spooled)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_large_message_reads_back_whole_across_a_restart_and_leaves_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let body = rest(3 << 20);
    let id = store(&queue, b"Subject: big\r\n\r\n", &body).await;
    queue.shutdown().await;

    let queue = Queue::open(settings(dir.path())).await.unwrap();
    assert_eq!(content_files(dir.path()), [id.to_string()]);
    let envelope = queue.envelope(id).await.unwrap().unwrap();
    let spooled = envelope.spooled.expect("the envelope names its file");
    assert_eq!(spooled.size, body.len() as u64);
    let content = queue.open_content(id, &envelope).await.unwrap().unwrap();
    assert_eq!(content.head(), b"Subject: big\r\n\r\n");
    assert_eq!(content.len(), 16 + body.len() as u64);
    let whole = queue.content(id).await.unwrap().unwrap();
    assert_eq!(&whole[16..], &body[..]);

    queue.remove(id).await.unwrap();
    assert!(
        content_files(dir.path()).is_empty(),
        "removed with its message"
    );
    queue.shutdown().await;
}

#[tokio::test]
async fn orphans_are_removed_at_start_and_named_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let kept = store(&queue, b"h\r\n\r\n", &rest(1000)).await;

    // A DATA that never ended: written, never finished.
    let crashed = queue.new_id();
    let mut writer = queue.content_writer(crashed);
    writer.append(&mut rest(5000)).await.unwrap();
    std::mem::forget(writer); // as a crash would leave it
    // A message refused after its file was made durable.
    let refused = queue.new_id();
    let mut writer = queue.content_writer(refused);
    writer.append(&mut rest(5000)).await.unwrap();
    let spooled = writer.finish().await.unwrap();
    std::mem::forget(spooled);
    // Not a content file: left alone.
    std::fs::write(dir.path().join("queue/content/README"), "x").unwrap();
    queue.shutdown().await;

    let mut expected = vec![
        kept.to_string(),
        crashed.to_string(),
        refused.to_string(),
        "README".into(),
    ];
    expected.sort();
    assert_eq!(content_files(dir.path()), expected);

    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let mut expected = vec![kept.to_string(), "README".into()];
    expected.sort();
    assert_eq!(content_files(dir.path()), expected);
    assert!(queue.content(crashed).await.unwrap().is_none());
    assert_eq!(queue.entries().await.unwrap().len(), 1);
    queue.shutdown().await;
}

#[tokio::test]
async fn a_dropped_writer_or_an_unstored_file_removes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let id = queue.new_id();
    let mut writer = queue.content_writer(id);
    writer.append(&mut rest(100)).await.unwrap();
    assert_eq!(content_files(dir.path()), [id.to_string()]);
    drop(writer);
    assert!(content_files(dir.path()).is_empty());

    let mut writer = queue.content_writer(id);
    writer.append(&mut rest(100)).await.unwrap();
    drop(writer.finish().await.unwrap());
    assert!(content_files(dir.path()).is_empty());
    queue.shutdown().await;
}

#[tokio::test]
async fn a_damaged_content_file_is_never_read_as_complete() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let id = store(&queue, b"h\r\n\r\n", &rest(400_000)).await;
    let path = dir.path().join("queue/content").join(id.to_string());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[123_456] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let err = queue.content(id).await.unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    queue.shutdown().await;
}
