//! A shard: one thread that alone writes one store, batching the messages
//! that arrive while a commit is in flight into the next commit.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::error::QueueError;
use crate::fault::Faults;
use crate::message::{QueueState, domain_of};
use crate::queue::Event;
use crate::store::{Applied, Outcomes, ShardStore, StoreOp};

/// Upper bound on the messages in one commit, so that one huge batch cannot
/// delay the replies of every session behind it for long.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Applied, QueueError>>;

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
        faults: Arc<Faults>,
        events: mpsc::UnboundedSender<Event>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let store: SharedStore = Arc::new(RwLock::new(Some(store)));
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let writer = Writer {
            path,
            store: store.clone(),
            faults,
            events,
            broken: false,
            removed: 0,
            compacted: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("queue-shard-{index}"))
            .spawn(move || writer.run(rx))?;
        Ok((Self { tx, store }, thread))
    }

    /// Applies a change durably; returns once it is committed.
    pub(crate) async fn apply(&self, op: StoreOp) -> Result<Applied, QueueError> {
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

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    store: SharedStore,
    faults: Arc<Faults>,
    /// Operator edits are reported to the queue manager from here, in
    /// commit order and before their caller hears of them, so the manager
    /// sees an edit before the end of any attempt that wrote after it.
    events: mpsc::UnboundedSender<Event>,
    /// The last commit failed: reopen the store before the next one.
    broken: bool,
    /// Records removed since the file was last compacted.
    removed: u64,
    /// When the file was last compacted.
    compacted: Option<std::time::Instant>,
}

/// The writer compacts the file when it is idle, at most this often…
const COMPACT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// …once the shard is empty, or this many records were removed…
const COMPACT_AFTER_REMOVALS: u64 = 10_000;
/// …and at most this many are left.
const COMPACT_MAX_LEFT: u64 = 1_000;

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<(StoreOp, Reply)>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            // Everything that arrived while the previous commit ran goes
            // into this one: that is the group commit.
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (mut ops, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
            // A panic is a bug, but it must cost one batch (answered 4xx),
            // not the shard: the writer carries on with a reopened store.
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.commit(&mut ops)))
                .unwrap_or_else(|_| Err(QueueError::panicked(&self.path)));
            let outcomes: Outcomes = match result {
                Ok(outcomes) => {
                    self.announce(&ops, &outcomes);
                    outcomes
                }
                Err(e) => {
                    tracing::error!(target: "towerpost::queue", "queue commit failed: {e}");
                    self.broken = true;
                    self.undo_inserts(&ops);
                    ops.iter()
                        .map(|_| Err(QueueError::from_shared(&e)))
                        .collect()
                }
            };
            self.removed += ops
                .iter()
                .filter(|op| matches!(op, StoreOp::Remove { .. }))
                .count() as u64;
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // The session may have gone away meanwhile; a stored message
                // is delivered regardless.
                let _ = reply.send(outcome);
            }
            if rx.is_empty() {
                self.compact_if_due();
            }
        }
    }

    /// When idle, gives the space of removed mail back (Postfix's queue
    /// files are deleted; a redb file stays at its peak size until it is
    /// compacted): after many removals, or when the shard has emptied.
    fn compact_if_due(&mut self) {
        let recent = self
            .compacted
            .is_some_and(|t| t.elapsed() < COMPACT_INTERVAL);
        if self.removed == 0 || self.broken || recent {
            return;
        }
        let mut guard = self.store.write().unwrap_or_else(|p| p.into_inner());
        let Some(store) = guard.as_mut() else { return };
        // Compaction copies what is left and blocks this shard's commits
        // meanwhile, so only when little is left: an emptied shard, or one
        // that shrank by many records to a few.
        let left = store.len().unwrap_or(u64::MAX);
        if left != 0 && (self.removed < COMPACT_AFTER_REMOVALS || left > COMPACT_MAX_LEFT) {
            return;
        }
        let before = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| store.compact()));
        self.compacted = Some(std::time::Instant::now());
        self.removed = 0;
        match result {
            Ok(Ok(_)) => {
                let after = std::fs::metadata(&self.path).map_or(0, |m| m.len());
                if after < before {
                    tracing::info!(target: "towerpost::queue",
                        "queue shard {} compacted: {before} -> {after} bytes", self.path.display());
                }
            }
            Ok(Err(e)) => tracing::warn!(target: "towerpost::queue", "{e}"),
            Err(_) => {
                tracing::error!(target: "towerpost::queue",
                    "queue shard {}: compaction panicked; reopening", self.path.display());
                self.broken = true;
            }
        }
    }

    /// Tells the manager about operator edits that changed a message.
    fn announce(&self, ops: &[StoreOp], outcomes: &Outcomes) {
        for (op, outcome) in ops.iter().zip(outcomes) {
            if let Ok(Applied::Modified {
                envelope,
                changed: true,
            }) = outcome
            {
                let id = op.id();
                let event = if envelope.state == QueueState::Hold {
                    Event::Held(id)
                } else {
                    let domains = envelope
                        .recipients
                        .iter()
                        .map(|r| domain_of(&r.address))
                        .collect();
                    Event::Due { id, domains }
                };
                let _ = self.events.send(event);
            }
        }
    }

    fn commit(&mut self, ops: &mut [StoreOp]) -> Result<Outcomes, QueueError> {
        if self.broken {
            self.reopen()?;
        }
        self.faults.check_before()?;
        let guard = self.store.read().unwrap_or_else(|p| p.into_inner());
        let outcomes = match guard.as_ref() {
            Some(s) => s.commit(ops)?,
            None => return Err(QueueError::closed()),
        };
        self.faults.check_after()?;
        Ok(outcomes)
    }

    fn reopen(&mut self) -> Result<(), QueueError> {
        // A file system the kernel turned read-only (after a disk error)
        // stays so until it is unmounted. The failed handle serves only
        // what redb had cached; open the file read-only instead, so that
        // the shard's mail can still be listed and delivered, and keep
        // failing commits until the file system takes writes again.
        if on_read_only_mount(&self.path) {
            let mut guard = self.store.write().unwrap_or_else(|p| p.into_inner());
            if !guard.as_ref().is_some_and(ShardStore::is_read_only) {
                guard.take();
                match ShardStore::open_read_only(&self.path) {
                    Ok(store) => {
                        *guard = Some(store);
                        tracing::warn!(target: "towerpost::queue", "queue shard {}: the file system refuses writes; the shard is read-only until it takes them again", self.path.display());
                    }
                    Err(e) => {
                        tracing::error!(target: "towerpost::queue", "queue shard {}: cannot open read-only: {e}", self.path.display());
                    }
                }
            }
            return Err(QueueError::read_only(&self.path));
        }
        let mut guard = self.store.write().unwrap_or_else(|p| p.into_inner());
        // Close the old handle first: redb holds a lock on the file.
        guard.take();
        *guard = Some(ShardStore::open(&self.path)?);
        self.broken = false;
        tracing::info!(target: "towerpost::queue", "queue shard {} reopened after an error", self.path.display());
        Ok(())
    }

    /// After a failed commit every operation of the batch was answered
    /// with an error: a commit can fail after its data reached the file
    /// (and after an fsync error the kernel may still show pages that are
    /// not on disk), so what a reopened store shows proves nothing. The
    /// clients were told 4xx and will send again; take out the messages
    /// they sent, as far as the store lets us, so that a retry does not
    /// deliver them twice. If this fails too, a duplicate is possible; a
    /// loss is not.
    fn undo_inserts(&mut self, ops: &[StoreOp]) {
        let mut undo: Vec<StoreOp> = ops
            .iter()
            .filter(|op| matches!(op, StoreOp::Insert { .. }))
            .map(|op| StoreOp::Remove { id: op.id() })
            .collect();
        if undo.is_empty() {
            return;
        }
        let result = self.reopen().and_then(|()| {
            let guard = self.store.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(s) => s.commit(&mut undo).map(|_| ()),
                None => Err(QueueError::closed()),
            }
        });
        if let Err(e) = result {
            self.broken = true;
            tracing::warn!(target: "towerpost::queue", "queue shard {}: cannot take back {} unacknowledged message(s): {e}; they may be delivered as well as resent", self.path.display(), undo.len());
        }
    }
}

/// Whether the file system holding `path` refuses writes. An ext4 that
/// turned read-only after an error still says `rw` to statvfs, so ask it
/// the way the next commit would, by writing: an unnamed O_TMPFILE leaves
/// nothing behind, whatever happens next. A file system without O_TMPFILE
/// counts as writable (the reopen then finds out).
fn on_read_only_mount(path: &Path) -> bool {
    use rustix::fs::{Mode, OFlags};
    let dir = path.parent().unwrap_or(Path::new("."));
    matches!(
        rustix::fs::open(
            dir,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600)
        ),
        Err(rustix::io::Errno::ROFS)
    )
}
