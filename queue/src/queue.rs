//! The queue handle the server uses.
//!
//! Where a message lives: new mail goes to the shard its id hashes to
//! among the `queue_shard_count` writable shards. When the count changes,
//! existing messages stay where they were written, so a message is looked
//! for first in its home shard under today's count and then in every other
//! shard. An update or removal that finds the message nowhere is an error
//! ([`QueueError::is_not_found`]), never a silent success.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::content::Content;
use crate::content_file::{self, ContentWriter, SpooledContent};
use crate::error::QueueError;
use crate::fault::Faults;
use crate::id::{IdGenerator, QueueId};
use crate::message::{Envelope, QueueEntry, SpooledPart, domain_of};
use crate::record;
use crate::scan::QueueScan;
use crate::shard::Shard;
use crate::store::{Applied, Change, ShardStore, StoreOp, sync_parent_dir};

/// Settings of the queue (built by the server from `queue_directory` and
/// `queue_shard_count`).
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// The queue directory; shard files live in its `queue/` subdirectory.
    pub directory: PathBuf,
    /// How many shards new mail is spread over.
    pub shards: usize,
}

/// A record whose envelope could not be decoded, moved aside so that the
/// rest of the queue is served (`queue list` reports it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    /// The record's queue id.
    pub id: QueueId,
    /// The shard file that holds it.
    pub shard: String,
    /// Why it cannot be read.
    pub reason: String,
}

/// What the queue tells the queue manager.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message became due: new, released or requeued. With the domains of
    /// its recipients, for the fast-flush index.
    Due { id: QueueId, domains: Vec<String> },
    /// The operator put a message on hold.
    Held(QueueId),
    /// The operator deleted a message.
    Deleted(QueueId),
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
    /// Where large messages keep the rest of their content.
    content_dir: PathBuf,
    paths: Vec<PathBuf>,
    writable: usize,
    ids: IdGenerator,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    events_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    #[cfg(test)]
    faults: Arc<Faults>,
}

impl Queue {
    /// Opens the queue, creating its directory and shard files as needed,
    /// and finds every message already stored.
    pub async fn open(settings: QueueSettings) -> Result<Self, QueueError> {
        let dir = settings.directory.join("queue");
        let writable = settings.shards.max(1);
        let dir2 = dir.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let opened = open_shards(&dir2, writable)?;
            let content = content_file::content_dir(&dir2);
            create_dir_durably(&content)?;
            // Before anything is served: an orphan is never delivered.
            content_file::sweep_orphans(&content, |id| {
                for (_, store, _) in &opened {
                    if store.has_record(id)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })?;
            Ok::<_, QueueError>(opened)
        })
        .await
        .map_err(|_| QueueError::closed())??;
        let faults = Arc::new(Faults::default());
        let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut last = 0;
        let mut shards = Vec::new();
        let mut paths = Vec::new();
        let mut threads = Vec::new();
        for (index, (path, store, last_id)) in opened.into_iter().enumerate() {
            last = last.max(last_id.map_or(0, QueueId::as_u64));
            let (shard, thread) =
                Shard::spawn(index, path.clone(), store, faults.clone(), events.clone())
                    .map_err(|e| QueueError::directory(&path, e))?;
            shards.push(shard);
            paths.push(path);
            threads.push(thread);
        }
        let queue = Self {
            inner: Arc::new(Inner {
                content_dir: content_file::content_dir(&dir),
                shards,
                paths,
                writable,
                ids: IdGenerator::starting_after(last),
                events,
                events_rx: std::sync::Mutex::new(Some(events_rx)),
                threads: std::sync::Mutex::new(threads),
                #[cfg(test)]
                faults,
            }),
        };
        queue.restore_quarantined().await?;
        Ok(queue)
    }

    /// Moves back quarantined records that can be read now (a binary that
    /// did not understand them was run for a while): the quarantine is a
    /// place to wait, never a way to lose acknowledged mail.
    async fn restore_quarantined(&self) -> Result<(), QueueError> {
        for (shard, path) in self.inner.shards.iter().zip(&self.inner.paths) {
            for d in shard.read(|s| s.quarantined()).await? {
                if d.reason.is_empty()
                    && shard.apply(StoreOp::Restore { id: d.id }).await? == Applied::Done
                {
                    tracing::info!(
                        target: "towerpost::queue",
                        "{}: queue record in {} readable again, restored from quarantine",
                        d.id,
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// A new, unique queue id. Taking one stores nothing.
    pub fn new_id(&self) -> QueueId {
        self.inner.ids.next()
    }

    /// Stores a message under `id`. When this returns `Ok`, the message is
    /// on stable storage; when it returns an error, it is not (and will not
    /// be delivered, as far as the storage lets us take it back).
    pub async fn enqueue(
        &self,
        id: QueueId,
        envelope: &Envelope,
        content: Vec<u8>,
    ) -> Result<(), QueueError> {
        let bytes = record::encode(id, envelope)?;
        self.home(id)
            .apply(StoreOp::Insert {
                id,
                envelope: bytes,
                content,
            })
            .await?;
        self.announce(id, envelope);
        Ok(())
    }

    /// A writer for the content file of message `id`, for the part of a
    /// large message beyond its first [`INLINE_CONTENT_LIMIT`] octets.
    ///
    /// [`INLINE_CONTENT_LIMIT`]: crate::INLINE_CONTENT_LIMIT
    pub fn content_writer(&self, id: QueueId) -> ContentWriter {
        ContentWriter::new(content_file::content_path(&self.inner.content_dir, id))
    }

    /// Stores a large message under `id`: `head`, its first octets, with
    /// the envelope, and `rest`, its durable content file, named by the
    /// envelope. As [`enqueue`](Self::enqueue), `Ok` means on stable
    /// storage; on an error the file is removed.
    pub async fn enqueue_spooled(
        &self,
        id: QueueId,
        envelope: &Envelope,
        head: Vec<u8>,
        rest: SpooledContent,
    ) -> Result<(), QueueError> {
        let mut envelope = envelope.clone();
        envelope.spooled = Some(SpooledPart {
            size: rest.size(),
            crc32: rest.crc32(),
        });
        let bytes = record::encode(id, &envelope)?;
        // From here the file is the queue's: if this future is dropped
        // while the commit is in flight (a session aborted at shutdown),
        // the commit may still name it, so it must not be unlinked then;
        // a file that ends up unnamed is an orphan for the next start.
        let path = rest.hand_over();
        let stored = self
            .home(id)
            .apply(StoreOp::Insert {
                id,
                envelope: bytes,
                content: head,
            })
            .await;
        if let Err(e) = stored {
            // Not stored, as far as the shard can tell: the file goes now
            // (a full disk needs the space), unless a record names it
            // after all.
            if !self
                .home(id)
                .read(move |s| s.has_record(id))
                .await
                .unwrap_or(true)
            {
                content_file::remove_quietly(&path);
            }
            return Err(e);
        }
        self.announce(id, &envelope);
        Ok(())
    }

    /// Tells the queue manager, if one runs, that `id` is due; a message
    /// it misses is found at its next start-up scan, never lost.
    fn announce(&self, id: QueueId, envelope: &Envelope) {
        let domains = envelope
            .recipients
            .iter()
            .map(|r| domain_of(&r.address))
            .collect();
        let _ = self.inner.events.send(Event::Due { id, domains });
    }

    /// Replaces a stored message's envelope after a delivery attempt (new
    /// state, fewer recipients, next attempt). One put on hold meanwhile
    /// stays on hold; one deleted meanwhile stays deleted and the update
    /// fails with a not-found error.
    pub async fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), QueueError> {
        let bytes = record::encode(id, envelope)?;
        self.apply_anywhere(id, move || StoreOp::Update {
            id,
            envelope: bytes.clone(),
            keep_hold: true,
        })
        .await
    }

    /// Applies an operator's change (hold, release, requeue) to a stored
    /// message, atomically with respect to the queue manager's updates;
    /// returns `false` when there is no such message. A change that makes
    /// the message due is handed to the queue manager at once, one that
    /// changes nothing is not.
    pub async fn modify(
        &self,
        id: QueueId,
        change: impl FnOnce(&mut Envelope) + Send + 'static,
    ) -> Result<bool, QueueError> {
        let Some(shard) = self.locate(id).await? else {
            return Ok(false);
        };
        let op = StoreOp::Modify {
            id,
            change: Change(Box::new(change)),
        };
        // The shard writer tells the queue manager about the change.
        Ok(self.inner.shards[shard].apply(op).await? != Applied::Missing)
    }

    /// Removes a message that is done (delivered or bounced). A message
    /// that is not there is a not-found error.
    pub async fn remove(&self, id: QueueId) -> Result<(), QueueError> {
        self.apply_anywhere(id, move || StoreOp::Remove { id })
            .await
    }

    /// The operator deletes a message (`postsuper -d`); returns `false`
    /// when there is no such message.
    pub async fn delete(&self, id: QueueId) -> Result<bool, QueueError> {
        match self.remove(id).await {
            Ok(()) => {
                let _ = self.inner.events.send(Event::Deleted(id));
                Ok(true)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Applies an update or removal in the shard that holds `id`: its home
    /// shard, or failing that any shard that has it.
    async fn apply_anywhere(
        &self,
        id: QueueId,
        op: impl Fn() -> StoreOp,
    ) -> Result<(), QueueError> {
        let home = self.home_index(id);
        if self.inner.shards[home].apply(op()).await? != Applied::Missing {
            return Ok(());
        }
        for (index, shard) in self.inner.shards.iter().enumerate() {
            if index != home
                && shard.read(move |s| s.contains(id)).await?
                && shard.apply(op()).await? != Applied::Missing
            {
                return Ok(());
            }
        }
        Err(QueueError::not_found(id))
    }

    /// The index of the shard that holds `id`, if any.
    async fn locate(&self, id: QueueId) -> Result<Option<usize>, QueueError> {
        for index in self.search_order(id) {
            if self.inner.shards[index]
                .read(move |s| s.contains(id))
                .await?
            {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// Shard indexes, home first.
    fn search_order(&self, id: QueueId) -> impl Iterator<Item = usize> {
        let home = self.home_index(id);
        std::iter::once(home).chain((0..self.inner.shards.len()).filter(move |&i| i != home))
    }

    /// A message's envelope, if it is queued. A record whose envelope
    /// cannot be decoded is moved aside and reported as absent.
    pub async fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        for index in self.search_order(id) {
            match self.inner.shards[index].read(move |s| s.envelope(id)).await {
                Ok(Some(e)) => return Ok(Some(e)),
                Ok(None) => {}
                Err(e) if e.is_codec() => {
                    self.quarantine(index, id, &e.to_string()).await?;
                    return Ok(None);
                }
                Err(e) => {
                    self.note_damage(index, &e);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }

    /// A shard found damaged while served keeps serving what it can; it is
    /// marked so that the next start salvages it, and the operator told.
    fn note_damage(&self, shard: usize, e: &QueueError) {
        if e.is_damaged() {
            let path = &self.inner.paths[shard];
            crate::salvage::mark_damaged(path);
            tracing::error!(target: "towerpost::queue",
                "{e}; its readable records are salvaged at the next start, or now with \
                 `towerpost queue salvage {}` while towerpost is stopped", path.display());
        }
    }

    /// Moves an undecodable record aside, with a log line naming it.
    pub(crate) async fn quarantine(
        &self,
        shard: usize,
        id: QueueId,
        reason: &str,
    ) -> Result<(), QueueError> {
        tracing::error!(
            target: "towerpost::queue",
            "{id}: damaged queue record in {} moved to quarantine: {reason}",
            self.inner.paths[shard].display()
        );
        self.inner.shards[shard]
            .apply(StoreOp::Quarantine { id })
            .await
            .map(|_| ())
    }

    /// The receiver of the queue's events, for the queue manager. Only
    /// the first caller gets it.
    pub(crate) fn take_events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Event>> {
        self.inner
            .events_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Every queued message, in id (arrival) order, in one `Vec` (tests and
    /// small tools; the server walks the queue with [`scan`](Self::scan)).
    /// Records whose envelope cannot be decoded are moved aside (see
    /// [`quarantined`](Self::quarantined)).
    pub async fn entries(&self) -> Result<Vec<QueueEntry>, QueueError> {
        let mut all = Vec::new();
        let mut scan = self.scan();
        while let Some(page) = scan.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// Every queued message in id order, a page at a time, in memory that
    /// does not grow with the queue; damaged records are moved to
    /// quarantine as they are met.
    pub fn scan(&self) -> QueueScan {
        QueueScan::new(self.clone(), self.inner.shards.len())
    }

    /// Runs `f` on shard `index`'s store in its reader thread.
    pub(crate) async fn read_shard<T, F>(&self, index: usize, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&ShardStore) -> Result<T, QueueError> + Send + 'static,
    {
        self.inner.shards[index].read(f).await
    }

    /// Folds `f` over every queued message, one shard at a time, without
    /// holding the queue in memory (for summaries such as `queue shape`).
    /// Returns the result and how many records could not be decoded.
    pub async fn fold<A, F>(&self, init: A, f: F) -> Result<(A, usize), QueueError>
    where
        A: Send + 'static,
        F: Fn(&mut A, QueueId, Envelope) + Clone + Send + 'static,
    {
        let mut acc = init;
        let mut damaged = 0;
        for shard in &self.inner.shards {
            let f = f.clone();
            let (next, n) = shard
                .read(move |s| {
                    let mut acc = acc;
                    let n = s.for_each_envelope(|id, e| f(&mut acc, id, e))?;
                    Ok((acc, n))
                })
                .await?;
            acc = next;
            damaged += n;
        }
        Ok((acc, damaged))
    }

    /// The records moved aside because their envelope cannot be decoded.
    pub async fn quarantined(&self) -> Result<Vec<Quarantined>, QueueError> {
        let mut all = Vec::new();
        for (shard, path) in self.inner.shards.iter().zip(&self.inner.paths) {
            for d in shard.read(|s| s.quarantined()).await? {
                all.push(Quarantined {
                    id: d.id,
                    shard: path.display().to_string(),
                    reason: d.reason,
                });
            }
        }
        all.sort_by_key(|q| q.id);
        Ok(all)
    }

    /// A message's whole content in memory, if it is queued (tests and
    /// tools; delivery uses [`open_content`](Self::open_content)).
    pub async fn content(&self, id: QueueId) -> Result<Option<Vec<u8>>, QueueError> {
        let Some(envelope) = self.envelope(id).await? else {
            return Ok(None);
        };
        match self.open_content(id, &envelope).await? {
            None => Ok(None),
            Some(content) => content
                .to_vec()
                .await
                .map(Some)
                .map_err(QueueError::content_file),
        }
    }

    /// A message's content for delivery: the part in its record, read now,
    /// and for a large message (`envelope.spooled`) its content file, read
    /// as it is sent. A record part that fails its checksum is never
    /// returned: the record is moved to quarantine with an error line
    /// naming it, and the message is treated as gone.
    pub async fn open_content(
        &self,
        id: QueueId,
        envelope: &Envelope,
    ) -> Result<Option<Content>, QueueError> {
        let Some(head) = self.record_content(id).await? else {
            return Ok(None);
        };
        Ok(Some(match envelope.spooled {
            None => Content::from_bytes(head),
            Some(part) => Content::spooled(
                head,
                content_file::content_path(&self.inner.content_dir, id),
                part.size,
                part.crc32,
            ),
        }))
    }

    /// The content stored in a message's record, checked against its
    /// checksum (see [`open_content`](Self::open_content)).
    async fn record_content(&self, id: QueueId) -> Result<Option<Vec<u8>>, QueueError> {
        for index in self.search_order(id) {
            match self.inner.shards[index]
                .read(move |s| s.content(id))
                .await
                .inspect_err(|e| self.note_damage(index, e))?
            {
                Some(Ok(c)) => return Ok(Some(c)),
                Some(Err(reason)) => {
                    tracing::error!(
                        target: "towerpost::queue",
                        "{id}: damaged queue record in {} moved to quarantine: {reason}",
                        self.inner.paths[index].display()
                    );
                    self.inner.shards[index]
                        .apply(StoreOp::QuarantineContent { id })
                        .await?;
                    return Ok(None);
                }
                None => {}
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

    /// The storage fault injector shared by every shard.
    #[cfg(test)]
    pub(crate) fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Where new mail with this id goes.
    pub(crate) fn home(&self, id: QueueId) -> &Shard {
        &self.inner.shards[self.home_index(id)]
    }

    fn home_index(&self, id: QueueId) -> usize {
        // Ids are timestamps: mix the bits so consecutive ids spread evenly.
        let h = id.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (h % self.inner.writable as u64) as usize
    }
}

type OpenedShard = (PathBuf, ShardStore, Option<QueueId>);

fn open_shards(dir: &Path, writable: usize) -> Result<Vec<OpenedShard>, QueueError> {
    create_dir_durably(dir)?;
    let mut count = writable;
    let entries = std::fs::read_dir(dir).map_err(|e| QueueError::directory(dir, e))?;
    for entry in entries.flatten() {
        if let Some(i) = crate::salvage::shard_index(&entry.path()) {
            count = count.max(i + 1);
        }
    }
    (0..count)
        .map(|i| open_shard(dir.join(format!("shard-{i:03}.redb"))))
        .collect()
}

/// Opens one shard and reads its index once. A damaged file — found now,
/// or marked while it was served — is salvaged (see
/// [`salvage`](crate::salvage)) so that the intact records of it and every
/// other shard are served; only what cannot be read is left aside.
fn open_shard(path: PathBuf) -> Result<OpenedShard, QueueError> {
    crate::salvage::finish_interrupted(&path)?;
    let open = |path: &Path| -> Result<(ShardStore, Option<QueueId>), QueueError> {
        let store = ShardStore::open(path)?;
        store.scan()?;
        let last = store.last_id()?;
        Ok((store, last))
    };
    let marked = crate::salvage::is_marked(&path);
    let opened = if marked {
        Err(QueueError::damaged(
            &path,
            "marked damaged while it was served",
        ))
    } else {
        open(&path)
    };
    let (store, last) = match opened {
        Ok(opened) => opened,
        Err(e) if e.is_damaged() => {
            tracing::warn!(target: "towerpost::queue",
                "{e}; salvaging its readable records into a fresh file");
            let report = crate::salvage::salvage_shard(&path)?;
            log_salvage(&report);
            open(&path)?
        }
        Err(e) => return Err(e),
    };
    Ok((path, store, last))
}

/// Logs what a salvage did: one line, and one per record left behind.
pub(crate) fn log_salvage(report: &crate::SalvageReport) {
    tracing::warn!(target: "towerpost::queue",
        "queue shard {}: salvaged {} messages and {} quarantined records into a \
         fresh file; the damaged file was moved to {}",
        report.path.display(), report.salvaged, report.quarantined, report.moved_to.display());
    for lost in &report.lost {
        tracing::error!(target: "towerpost::queue",
            "queue shard {}: not salvaged: {lost}", report.path.display());
    }
}

/// Creates `dir` and any missing parents, and makes each new directory
/// entry durable (fsync of its parent), so that a crash right after the
/// first message was acknowledged cannot lose the directory that holds it.
fn create_dir_durably(dir: &Path) -> Result<(), QueueError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d.to_owned());
        at = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| QueueError::directory(dir, e))?;
    for created in missing.iter().rev() {
        sync_parent_dir(created)?;
    }
    Ok(())
}
