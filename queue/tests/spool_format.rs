//! The stored format: spools written before the content checksum existed
//! are read and delivered as they are, and a body that fails its checksum
//! is never handed out.

use redb::{Database, TableDefinition};
use towerpost_queue::{Envelope, Queue, QueueId, QueueSettings, QueueState};

const CONTENT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("content");
const ENVELOPE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("envelope");

mod common;

fn envelope(rcpt: &str) -> Envelope {
    common::envelope(rcpt, QueueState::Deferred)
}

fn settings(dir: &std::path::Path) -> QueueSettings {
    QueueSettings {
        directory: dir.to_owned(),
        shards: 1,
    }
}

/// The layout of every spool before the checksum table (the format the
/// earlier mains wrote: an envelope and a content table by id).
#[tokio::test]
async fn a_spool_without_checksums_is_read_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let id = QueueId::from_u64(0x0123_4567_89ab);
    {
        std::fs::create_dir_all(dir.path().join("queue")).unwrap();
        let db = Database::create(dir.path().join("queue/shard-000.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut content = txn.open_table(CONTENT).unwrap();
            content
                .insert(id.as_u64(), b"Subject: old\r\n\r\nbody\r\n".as_slice())
                .unwrap();
            let mut env = txn.open_table(ENVELOPE).unwrap();
            let bytes = serde_json::to_vec(&envelope("b@example.test")).unwrap();
            env.insert(id.as_u64(), bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let entries = queue.entries().await.unwrap();
    assert_eq!(entries.iter().map(|e| e.id).collect::<Vec<_>>(), [id]);
    assert_eq!(
        queue.content(id).await.unwrap().unwrap(),
        b"Subject: old\r\n\r\nbody\r\n"
    );
    assert!(queue.quarantined().await.unwrap().is_empty());
    queue.shutdown().await;
}

#[tokio::test]
async fn a_body_that_fails_its_checksum_is_moved_aside_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let good = queue.new_id();
    let bad = queue.new_id();
    for id in [good, bad] {
        queue
            .enqueue(
                id,
                &envelope("b@example.test"),
                b"Subject: x\r\n\r\n12345678\r\n".to_vec(),
            )
            .await
            .unwrap();
    }
    queue.shutdown().await;

    // Flip bytes of one body behind the queue's back, as a bad disk would.
    {
        let db = Database::create(dir.path().join("queue/shard-000.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(CONTENT)
            .unwrap()
            .insert(bad.as_u64(), b"Subject: x\r\n\r\n12345679\r\n".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    let queue = Queue::open(settings(dir.path())).await.unwrap();
    assert!(queue.content(good).await.unwrap().is_some());
    assert_eq!(queue.content(bad).await.unwrap(), None, "never handed out");
    let q = queue.quarantined().await.unwrap();
    assert_eq!(q.iter().map(|q| q.id).collect::<Vec<_>>(), [bad]);
    assert!(
        q[0].reason.starts_with("content checksum mismatch"),
        "{}",
        q[0].reason
    );
    queue.shutdown().await;

    // It stays aside across a restart (its envelope is fine, its body
    // not), also after an attempt to remove it from the live queue.
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    assert!(queue.remove(bad).await.is_err(), "not in the live queue");
    queue.shutdown().await;
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let ids: Vec<_> = queue
        .entries()
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [good]);
    assert_eq!(queue.quarantined().await.unwrap().len(), 1);
    queue.shutdown().await;
}

/// Space of removed mail goes back to the file system: a shard that has
/// emptied is compacted (it used to stay at its peak size).
#[tokio::test]
async fn an_emptied_shard_gives_its_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let body = vec![b'x'; 200_000];
    let mut ids = Vec::new();
    for _ in 0..100 {
        let id = queue.new_id();
        queue
            .enqueue(id, &envelope("b@example.test"), body.clone())
            .await
            .unwrap();
        ids.push(id);
    }
    let file = dir.path().join("queue/shard-000.redb");
    let peak = std::fs::metadata(&file).unwrap().len();
    assert!(peak > 20_000_000, "{peak}");
    for id in ids {
        queue.remove(id).await.unwrap();
    }
    // The writer compacts once it is idle.
    let mut size = peak;
    for _ in 0..100 {
        size = std::fs::metadata(&file).unwrap().len();
        if size < peak / 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(size < peak / 4, "still {size} of {peak} bytes");
    assert!(queue.entries().await.unwrap().is_empty());
    queue.shutdown().await;
}
