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
    pub(crate) fn spawn(path: PathBuf, store: ShardStore) -> (Self, tokio::task::JoinHandle<()>) {
        let store: SharedStore = Arc::new(RwLock::new(Some(store)));
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let task = tokio::spawn(run(path, store.clone(), rx));
        (Self { tx, store }, task)
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

async fn run(path: PathBuf, store: SharedStore, mut rx: mpsc::Receiver<(StoredMessage, Reply)>) {
    let mut broken = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (messages, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let store = store.clone();
        let path = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = store.write().unwrap_or_else(|p| p.into_inner());
            if broken {
                // Close the old handle first: redb holds a lock on the file.
                guard.take();
                *guard = Some(ShardStore::open(&path)?);
                tracing::info!(path = %path.display(), "queue shard reopened after an error");
            }
            match guard.as_ref() {
                Some(s) => s.commit(&messages),
                None => Err(QueueError::closed()),
            }
        })
        .await
        .unwrap_or_else(|_| Err(QueueError::closed()));
        broken = result.is_err();
        if let Err(e) = &result {
            tracing::error!(error = %e, "queue commit failed");
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
