//! A shard: one task that alone writes one store, batching the messages
//! that arrive while a commit is in flight into the next commit.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::error::QueueError;
use crate::store::{ShardStore, StoredMessage};

/// Upper bound on the messages in one commit, so that one huge batch cannot
/// delay the replies of every session behind it for long.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<(), QueueError>>;

/// The store, swappable so the writer can reopen it after an I/O error
/// (redb refuses all further work on a handle that saw one).
pub(crate) type SharedStore = Arc<RwLock<Option<ShardStore>>>;

/// Handle to a running shard task.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) tx: mpsc::Sender<(StoredMessage, Reply)>,
    pub(crate) store: SharedStore,
}

impl Shard {
    /// Starts the shard's writer: a dedicated thread, since its work is
    /// blocking I/O from start to end and a thread of its own wakes faster
    /// than a hand-off to the blocking pool for every commit.
    pub(crate) fn spawn(
        index: usize,
        path: PathBuf,
        store: ShardStore,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let store: SharedStore = Arc::new(RwLock::new(Some(store)));
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let writer = store.clone();
        let thread = std::thread::Builder::new()
            .name(format!("queue-shard-{index}"))
            .spawn(move || run(path, writer, rx))?;
        Ok((Self { tx, store }, thread))
    }

    /// Stores a message durably; returns once it is committed.
    pub(crate) async fn store(&self, message: StoredMessage) -> Result<(), QueueError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((message, reply))
            .await
            .map_err(|_| QueueError::closed())?;
        done.await.map_err(|_| QueueError::closed())?
    }

    /// Runs `f` on the store in a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&ShardStore) -> Result<T, QueueError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let guard = store.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(s) => f(s),
                None => Err(QueueError::closed()),
            }
        })
        .await
        .map_err(|_| QueueError::closed())?
    }
}

fn run(path: PathBuf, store: SharedStore, mut rx: mpsc::Receiver<(StoredMessage, Reply)>) {
    let mut broken = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        // Everything that arrived while the previous commit ran goes into
        // this one: that is the group commit.
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let result = commit(&path, &store, broken, &messages);
        broken = result.is_err();
        if let Err(e) = &result {
            tracing::error!(target: "towerpost::queue", "queue commit failed: {e}");
        }
        for reply in replies {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(QueueError::from_shared(e)),
            };
            // The session may have gone away meanwhile; the message is
            // stored regardless, and will be delivered.
            let _ = reply.send(r);
        }
    }
}

fn commit(
    path: &std::path::Path,
    store: &SharedStore,
    reopen: bool,
    messages: &[StoredMessage],
) -> Result<(), QueueError> {
    if reopen {
        let mut guard = store.write().unwrap_or_else(|p| p.into_inner());
        // Close the old handle first: redb holds a lock on the file.
        guard.take();
        *guard = Some(ShardStore::open(path)?);
        tracing::info!(target: "towerpost::queue", "queue shard {} reopened after an error", path.display());
    }
    let guard = store.read().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(s) => s.commit(messages),
        None => Err(QueueError::closed()),
    }
}
