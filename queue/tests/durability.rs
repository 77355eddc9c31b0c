//! The queue finds every stored message again after a restart.

use towerpost_queue::{Envelope, Queue, QueueSettings, QueueState};

mod common;

fn envelope(rcpt: &str) -> Envelope {
    common::envelope(rcpt, QueueState::Incoming)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_survive_a_reopen_with_fresh_ids() {
    let dir = tempfile::tempdir().unwrap();
    let settings = QueueSettings {
        directory: dir.path().to_owned(),
        shards: 3,
    };
    let queue = Queue::open(settings.clone()).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..200 {
        let q = queue.clone();
        handles.push(tokio::spawn(async move {
            let id = q.new_id();
            q.enqueue(
                id,
                &envelope(&format!("r{i}@example.test")),
                b"hello".to_vec(),
            )
            .await
            .unwrap();
            id
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    ids.sort();
    let max = *ids.last().unwrap();
    queue.shutdown().await;

    // Fewer shards than before: the old shard files are still read.
    let queue = Queue::open(QueueSettings {
        shards: 1,
        ..settings
    })
    .await
    .unwrap();
    let entries = queue.entries().await.unwrap();
    assert_eq!(entries.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(queue.content(ids[7]).await.unwrap().unwrap(), b"hello");
    assert!(queue.new_id() > max, "ids keep increasing across restarts");
    queue.shutdown().await;
}
