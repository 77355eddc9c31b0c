//! A shard: one task that alone writes one store, batching the messages
//! that arrive while a commit is in flight into the next commit.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::error::QueueError;
use crate::store::{ShardStore, StoreOp};

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
    pub(crate) tx: mpsc::Sender<(StoreOp, Reply)>,
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

    /// Applies a change durably; returns once it is committed.
    pub(crate) async fn apply(&self, op: StoreOp) -> Result<(), QueueError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((op, reply))
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

fn run(path: PathBuf, store: SharedStore, mut rx: mpsc::Receiver<(StoreOp, Reply)>) {
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
        let (ops, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let result = commit(&path, &store, broken, &ops);
        broken = result.is_err();
        let outcomes: Vec<Result<(), QueueError>> = match &result {
            Ok(()) => ops.iter().map(|_| Ok(())).collect(),
            Err(e) => {
                tracing::error!(target: "towerpost::queue", "queue commit failed: {e}");
                reconcile(&path, &store, &ops, e)
            }
        };
        if result.is_err() && outcomes.iter().any(Result::is_ok) {
            // The store was reopened and holds part of the batch.
            broken = false;
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // The session may have gone away meanwhile; a stored message is
            // delivered regardless.
            let _ = reply.send(outcome);
        }
    }
}

/// After a failed commit: reopen the store and report, per operation, what
/// it actually holds. A commit can fail after its data became durable (an
/// error while tidying up), and a client must not be told 452 for a
/// message that will be delivered, nor 250 for one that will not.
fn reconcile(
    path: &std::path::Path,
    store: &SharedStore,
    ops: &[StoreOp],
    error: &QueueError,
) -> Vec<Result<(), QueueError>> {
    let failed = || {
        ops.iter()
            .map(|_| Err(QueueError::from_shared(error)))
            .collect()
    };
    let mut guard = store.write().unwrap_or_else(|p| p.into_inner());
    guard.take();
    let reopened = match ShardStore::open(path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "towerpost::queue", "queue shard {} cannot be reopened: {e}", path.display());
            return failed();
        }
    };
    let outcomes = ops
        .iter()
        .map(|op| {
            let present = |id| reopened.envelope(id).map(|e| e.is_some());
            let held = match op {
                StoreOp::Insert { id, .. } => present(*id),
                StoreOp::Remove { id } => present(*id).map(|p| !p),
                // An update cannot be checked cheaply; its caller retries.
                StoreOp::Update { .. } => Ok(false),
            };
            match held {
                Ok(true) => Ok(()),
                _ => Err(QueueError::from_shared(error)),
            }
        })
        .collect();
    *guard = Some(reopened);
    tracing::info!(target: "towerpost::queue", "queue shard {} reopened after an error", path.display());
    outcomes
}

fn commit(
    path: &std::path::Path,
    store: &SharedStore,
    reopen: bool,
    messages: &[StoreOp],
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
