//! Walking the queue a page at a time: every message once, in id order
//! across shards, in pages of bounded size, damaged records moved aside as
//! they are met, and mail stored during the walk seen.

use redb::{Database, TableDefinition};
use towerpost_queue::{Queue, QueueId, QueueSettings, QueueState, SCAN_PAGE};

const CONTENT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("content");
const ENVELOPE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("envelope");

mod common;

fn settings(dir: &std::path::Path) -> QueueSettings {
    QueueSettings {
        directory: dir.to_owned(),
        shards: 3,
    }
}

#[tokio::test]
async fn a_scan_returns_every_message_once_in_id_order_in_bounded_pages() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let mut stored: Vec<QueueId> = (0..1_302).map(|_| queue.new_id()).collect();
    // Two ids left for records no binary can read, between the others.
    let damaged = vec![stored.remove(400), stored.remove(900)];
    // Concurrently, so that they share commits.
    futures::future::try_join_all(stored.iter().enumerate().map(|(i, &id)| {
        let envelope = common::envelope(&format!("r{i}@d{}.test", i % 7), QueueState::Deferred);
        let queue = queue.clone();
        async move {
            queue
                .enqueue(id, &envelope, b"Subject: x\r\n\r\nbody\r\n".to_vec())
                .await
        }
    }))
    .await
    .unwrap();
    queue.shutdown().await;

    {
        let db = Database::create(dir.path().join("queue/shard-001.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut envelopes = txn.open_table(ENVELOPE).unwrap();
            let mut contents = txn.open_table(CONTENT).unwrap();
            for d in &damaged {
                envelopes
                    .insert(d.as_u64(), b"{not json".as_slice())
                    .unwrap();
                contents.insert(d.as_u64(), b"x".as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    let queue = Queue::open(settings(dir.path())).await.unwrap();
    let mut scan = queue.scan();
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(page) = scan.next_page().await.unwrap() {
        assert!(
            !page.is_empty() && page.len() <= SCAN_PAGE,
            "{}",
            page.len()
        );
        seen.extend(page.iter().map(|e| e.id));
        pages += 1;
        if pages == 1 {
            // Stored during the walk: its id is past every cursor.
            let late = queue.new_id();
            let envelope = common::envelope("late@d0.test", QueueState::Incoming);
            queue
                .enqueue(late, &envelope, b"Subject: late\r\n\r\n".to_vec())
                .await
                .unwrap();
            stored.push(late);
        }
    }
    drop(scan);
    assert_eq!(seen, stored, "each message once, in id order");
    assert!(pages >= stored.len().div_ceil(SCAN_PAGE));
    let mut quarantined: Vec<QueueId> = queue
        .quarantined()
        .await
        .unwrap()
        .iter()
        .map(|q| q.id)
        .collect();
    quarantined.sort();
    assert_eq!(quarantined, damaged, "moved aside as they were met");
    queue.shutdown().await;
}
