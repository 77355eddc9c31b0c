//! The queue handle the server uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::QueueError;
use crate::id::{IdGenerator, QueueId};
use crate::message::{Envelope, QueueEntry, QueueState};
use crate::shard::Shard;
use crate::store::{ShardStore, StoreOp};

/// Settings of the queue (built by the server from `queue_directory` and
/// `queue_shard_count`).
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// The queue directory; shard files live in its `queue/` subdirectory.
    pub directory: PathBuf,
    /// How many shards new mail is spread over.
    pub shards: usize,
}

/// A handle to the queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Shards that take new mail come first; shards left over from a
    /// larger `queue_shard_count` follow and are read, never written.
    shards: Vec<Shard>,
    writable: usize,
    ids: IdGenerator,
    arrivals: tokio::sync::mpsc::UnboundedSender<QueueId>,
    arrivals_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<QueueId>>>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Queue {
    /// Opens the queue, creating its directory and shard files as needed,
    /// and finds every message already stored.
    pub async fn open(settings: QueueSettings) -> Result<Self, QueueError> {
        let dir = settings.directory.join("queue");
        let writable = settings.shards.max(1);
        let dir2 = dir.clone();
        let opened = tokio::task::spawn_blocking(move || open_shards(&dir2, writable))
            .await
            .map_err(|_| QueueError::closed())??;
        let mut last = 0;
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for (index, (path, store, last_id)) in opened.into_iter().enumerate() {
            last = last.max(last_id.map_or(0, QueueId::as_u64));
            let (shard, thread) = Shard::spawn(index, path.clone(), store)
                .map_err(|e| QueueError::directory(&path, e))?;
            shards.push(shard);
            threads.push(thread);
        }
        let (arrivals, arrivals_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Self {
            inner: Arc::new(Inner {
                shards,
                writable,
                ids: IdGenerator::starting_after(last),
                arrivals,
                arrivals_rx: std::sync::Mutex::new(Some(arrivals_rx)),
                threads: std::sync::Mutex::new(threads),
            }),
        })
    }

    /// A new, unique queue id. Taking one stores nothing.
    pub fn new_id(&self) -> QueueId {
        self.inner.ids.next()
    }

    /// Stores a message under `id`. When this returns `Ok`, the message is
    /// on stable storage.
    pub async fn enqueue(
        &self,
        id: QueueId,
        envelope: &Envelope,
        content: Vec<u8>,
    ) -> Result<(), QueueError> {
        let envelope = serde_json::to_vec(envelope).map_err(|e| QueueError::codec(id, e))?;
        self.shard_for(id)
            .apply(StoreOp::Insert {
                id,
                envelope,
                content,
            })
            .await?;
        // Tell the queue manager, if one runs; a message it misses is
        // found at its next start-up scan, never lost.
        let _ = self.inner.arrivals.send(id);
        Ok(())
    }

    /// Replaces a stored message's envelope after a delivery attempt (new
    /// state, fewer recipients, next attempt). A message deleted meanwhile
    /// stays deleted; one put on hold meanwhile stays on hold.
    pub async fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), QueueError> {
        self.write_envelope(id, envelope, true).await
    }

    async fn write_envelope(
        &self,
        id: QueueId,
        envelope: &Envelope,
        keep_hold: bool,
    ) -> Result<(), QueueError> {
        let envelope = serde_json::to_vec(envelope).map_err(|e| QueueError::codec(id, e))?;
        self.shard_of(id)
            .await?
            .apply(StoreOp::Update {
                id,
                envelope,
                keep_hold,
            })
            .await
    }

    /// Applies an operator's change (hold, release, requeue) to a stored
    /// message; returns `false` when there is no such message. A message
    /// that becomes due is handed to the queue manager at once.
    pub async fn modify(
        &self,
        id: QueueId,
        change: impl FnOnce(&mut Envelope),
    ) -> Result<bool, QueueError> {
        let Some(mut envelope) = self.envelope(id).await? else {
            return Ok(false);
        };
        change(&mut envelope);
        self.write_envelope(id, &envelope, false).await?;
        if envelope.state != QueueState::Hold {
            let _ = self.inner.arrivals.send(id);
        }
        Ok(true)
    }

    /// Removes a message (delivered, bounced or deleted).
    pub async fn remove(&self, id: QueueId) -> Result<(), QueueError> {
        self.shard_of(id).await?.apply(StoreOp::Remove { id }).await
    }

    /// A message's envelope, if it is queued.
    pub async fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        for shard in &self.inner.shards {
            if let Some(e) = shard.read(move |s| s.envelope(id)).await? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The receiver of new-message notifications, for the queue manager.
    /// Only the first caller gets it.
    pub fn take_arrivals(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<QueueId>> {
        self.inner
            .arrivals_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The shard that holds `id`: where new mail with that id goes, unless
    /// the message lives in a shard left over from a larger shard count.
    async fn shard_of(&self, id: QueueId) -> Result<&Shard, QueueError> {
        let home = self.shard_for(id);
        if self.inner.shards.len() == self.inner.writable {
            return Ok(home);
        }
        for shard in &self.inner.shards {
            if shard.read(move |s| s.envelope(id)).await?.is_some() {
                return Ok(shard);
            }
        }
        Ok(home)
    }

    /// Every queued message, in id (arrival) order.
    pub async fn entries(&self) -> Result<Vec<QueueEntry>, QueueError> {
        let mut all = Vec::new();
        for shard in &self.inner.shards {
            all.extend(shard.read(|s| s.entries()).await?);
        }
        all.sort_by_key(|e| e.id);
        Ok(all)
    }

    /// A message's content, if it is queued.
    pub async fn content(&self, id: QueueId) -> Result<Option<Vec<u8>>, QueueError> {
        for shard in &self.inner.shards {
            if let Some(c) = shard.read(move |s| s.content(id)).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Stops the shard writers after they have committed what they were
    /// given. Every clone of the handle must be dropped or idle first.
    pub async fn shutdown(self) {
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        drop(self);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    fn shard_for(&self, id: QueueId) -> &Shard {
        // Ids are timestamps: mix the bits so consecutive ids spread evenly.
        let h = id.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.inner.shards[(h % self.inner.writable as u64) as usize]
    }
}

type OpenedShard = (PathBuf, ShardStore, Option<QueueId>);

fn open_shards(dir: &Path, writable: usize) -> Result<Vec<OpenedShard>, QueueError> {
    std::fs::create_dir_all(dir).map_err(|e| QueueError::directory(dir, e))?;
    let mut count = writable;
    let entries = std::fs::read_dir(dir).map_err(|e| QueueError::directory(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.strip_suffix(".redb"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(i) = index {
            count = count.max(i + 1);
        }
    }
    (0..count)
        .map(|i| {
            let path = dir.join(format!("shard-{i:03}.redb"));
            let store = ShardStore::open(&path)?;
            let last = store.last_id()?;
            Ok((path, store, last))
        })
        .collect()
}
