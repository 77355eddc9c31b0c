//! One shard's storage: a redb database with the content and envelope of
//! each message under its queue id.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::content_file;
use crate::error::QueueError;
use crate::id::QueueId;
use crate::message::{Envelope, QueueEntry, QueueState};
use crate::overlay::ReadOnlyOverlay;
use crate::record;

pub(crate) const CONTENT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("content");
/// redb's page cache per shard.
const CACHE_BYTES: usize = 32 << 20;
pub(crate) const ENVELOPE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("envelope");
/// Records whose envelope could not be decoded, moved aside so the rest of
/// the queue is served: the raw envelope and the content, as they were.
pub(crate) const QUARANTINE_ENVELOPE: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("quarantine_envelope");
pub(crate) const QUARANTINE_CONTENT: TableDefinition<'_, u64, &[u8]> =
    TableDefinition::new("quarantine_content");
/// The CRC-32 of each content, written with it and checked before the
/// content is delivered, so that a damaged body is never sent on. Records
/// stored before this table existed have no entry and are delivered as
/// they are (the spool format is otherwise unchanged).
pub(crate) const CONTENT_CRC: TableDefinition<'_, u64, u32> = TableDefinition::new("content_crc32");

/// An operator's edit of a stored envelope, applied by the shard writer
/// inside its write transaction so that no other write can come between
/// reading the envelope and writing it back.
pub(crate) struct Change(pub(crate) Box<dyn FnOnce(&mut Envelope) + Send>);

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Change(..)")
    }
}

/// One change to a shard, applied in a batch with others.
#[derive(Debug)]
pub(crate) enum StoreOp {
    /// A new message: envelope and content.
    Insert {
        id: QueueId,
        envelope: Vec<u8>,
        content: Vec<u8>,
    },
    /// A new envelope for a stored message (state, recipients, next attempt).
    /// With `keep_hold`, a message the operator put on hold meanwhile stays
    /// on hold (the queue manager's updates race with `queue hold`).
    Update {
        id: QueueId,
        envelope: Vec<u8>,
        keep_hold: bool,
    },
    /// Read, edit and write back a stored envelope in one transaction.
    Modify { id: QueueId, change: Change },
    /// The message is done: remove it.
    Remove { id: QueueId },
    /// The envelope cannot be decoded: move the record aside.
    Quarantine { id: QueueId },
    /// The content does not match its checksum: move the record aside.
    QuarantineContent { id: QueueId },
    /// A quarantined record decodes again (after an upgrade): move it back.
    Restore { id: QueueId },
}

impl StoreOp {
    /// The message the operation is about.
    pub(crate) fn id(&self) -> QueueId {
        match self {
            StoreOp::Insert { id, .. }
            | StoreOp::Update { id, .. }
            | StoreOp::Modify { id, .. }
            | StoreOp::Remove { id }
            | StoreOp::Quarantine { id }
            | StoreOp::QuarantineContent { id }
            | StoreOp::Restore { id } => *id,
        }
    }
}

/// What one operation of a committed batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Stored, updated, removed or moved aside as asked.
    Done,
    /// The message was not there: nothing changed.
    Missing,
    /// A `Modify`: the envelope as it is now, and whether the change
    /// changed anything (an unchanged envelope is not written).
    Modified {
        envelope: Box<Envelope>,
        changed: bool,
    },
}

/// A batch's outcome per operation (the batch itself committed).
pub(crate) type Outcomes = Vec<Result<Applied, QueueError>>;

/// A shard's database file.
#[derive(Debug)]
pub(crate) struct ShardStore {
    path: PathBuf,
    db: Database,
    /// Opened through [`ReadOnlyOverlay`]: reads only, every commit fails.
    read_only: bool,
}

impl ShardStore {
    /// Opens (or creates) the shard file and makes sure its tables exist.
    pub(crate) fn open(path: &Path) -> Result<Self, QueueError> {
        let created = !path.exists();
        // redb's page cache would otherwise grow with the queue (about
        // 2.5 KiB per parked message was measured at 200,000); the kernel's
        // page cache serves the rest.
        let db = contained(path, || {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(path)
                .map_err(|e| QueueError::storage(format!("open {}", path.display()), e))
        })?;
        if created {
            // The new file's directory entry must be durable before any
            // message in it is acknowledged.
            sync_parent_dir(path)?;
        }
        let store = Self {
            path: path.to_owned(),
            db,
            read_only: false,
        };
        // Create the tables up front so readers never see them missing.
        store.write(&mut [], true)?;
        Ok(store)
    }

    /// Opens the file for reading only, for when its file system refuses
    /// writes: see [`ReadOnlyOverlay`]. Every commit fails.
    pub(crate) fn open_read_only(path: &Path) -> Result<Self, QueueError> {
        let ctx = || format!("open {} read-only", path.display());
        let backend = ReadOnlyOverlay::open(path)
            .map_err(|e| QueueError::storage(ctx(), redb::StorageError::Io(e)))?;
        let db = contained(path, || {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(backend)
                .map_err(|e| QueueError::storage(ctx(), e))
        })?;
        Ok(Self {
            path: path.to_owned(),
            db,
            read_only: true,
        })
    }

    /// Whether this is the read-only handle of [`ShardStore::open_read_only`].
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Applies `batch` in one durable transaction: all or nothing. An
    /// operation that finds nothing to change is `Missing`, one whose
    /// envelope cannot be decoded is an error of its own; neither stops
    /// the others. An error of the transaction itself fails them all.
    pub(crate) fn commit(&self, batch: &mut [StoreOp]) -> Result<Outcomes, QueueError> {
        self.write(batch, false)
    }

    /// [`commit`](Self::commit); a batch that changes nothing is not
    /// committed (no fsync for an update that finds its message gone)
    /// unless `always`.
    fn write(&self, batch: &mut [StoreOp], always: bool) -> Result<Outcomes, QueueError> {
        if self.read_only {
            return Err(QueueError::read_only(&self.path));
        }
        let ctx = || format!("commit to {}", self.path.display());
        let storage = |e: redb::StorageError| QueueError::storage(ctx(), e);
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| QueueError::storage(ctx(), e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| QueueError::storage(ctx(), redb::Error::from(e)))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut wrote = always;
        // Content files of removed messages, unlinked once the removal is
        // committed (a crash in between leaves an orphan, swept at start).
        let mut unlink = Vec::new();
        {
            let open = |t| txn.open_table(t).map_err(|e| QueueError::storage(ctx(), e));
            let mut content = open(CONTENT)?;
            let mut envelope = open(ENVELOPE)?;
            let mut quarantine_envelope = open(QUARANTINE_ENVELOPE)?;
            let mut quarantine_content = open(QUARANTINE_CONTENT)?;
            let mut crc = txn
                .open_table(CONTENT_CRC)
                .map_err(|e| QueueError::storage(ctx(), e))?;
            for op in batch.iter_mut() {
                let outcome = match op {
                    StoreOp::Insert {
                        id,
                        envelope: env,
                        content: body,
                    } => {
                        content
                            .insert(id.as_u64(), body.as_slice())
                            .map_err(storage)?;
                        crc.insert(id.as_u64(), crc32fast::hash(body))
                            .map_err(storage)?;
                        envelope
                            .insert(id.as_u64(), env.as_slice())
                            .map_err(storage)?;
                        Ok(Applied::Done)
                    }
                    StoreOp::Update {
                        id,
                        envelope: env,
                        keep_hold,
                    } => {
                        // Only a message that is still there: a concurrent
                        // delete must not be undone by a late update.
                        let old = envelope
                            .get(id.as_u64())
                            .map_err(storage)?
                            .map(|v| v.value().to_vec());
                        match old {
                            None => Ok(Applied::Missing),
                            Some(old) => {
                                let held = *keep_hold
                                    && record::decode(*id, &old)
                                        .is_ok_and(|e| e.state == QueueState::Hold);
                                let bytes = if held {
                                    held_copy(*id, env)
                                } else {
                                    Ok(std::mem::take(env))
                                };
                                match bytes {
                                    Ok(bytes) => {
                                        envelope
                                            .insert(id.as_u64(), bytes.as_slice())
                                            .map_err(storage)?;
                                        Ok(Applied::Done)
                                    }
                                    Err(e) => Err(e),
                                }
                            }
                        }
                    }
                    StoreOp::Modify { id, change } => {
                        let old = envelope
                            .get(id.as_u64())
                            .map_err(storage)?
                            .map(|v| v.value().to_vec());
                        match old {
                            None => Ok(Applied::Missing),
                            Some(old) => match record::decode(*id, &old) {
                                Err(e) => Err(e),
                                Ok(before) => {
                                    let edit = std::mem::replace(&mut change.0, Box::new(|_| {}));
                                    let mut env = before.clone();
                                    edit(&mut env);
                                    let changed = env != before;
                                    match record::encode(*id, &env) {
                                        Ok(bytes) => {
                                            if changed {
                                                envelope
                                                    .insert(id.as_u64(), bytes.as_slice())
                                                    .map_err(storage)?;
                                            }
                                            Ok(Applied::Modified {
                                                envelope: Box::new(env),
                                                changed,
                                            })
                                        }
                                        Err(e) => Err(e),
                                    }
                                }
                            },
                        }
                    }
                    StoreOp::Remove { id } => {
                        content.remove(id.as_u64()).map_err(storage)?;
                        let old = envelope.remove(id.as_u64()).map_err(storage)?;
                        let removed = old.is_some();
                        if old.is_some_and(|v| names_content_file(v.value())) {
                            unlink.push(*id);
                        }
                        // A quarantined record keeps its checksum, so its
                        // damaged body is never taken back as sound.
                        if removed {
                            crc.remove(id.as_u64()).map_err(storage)?;
                        }
                        Ok(if removed {
                            Applied::Done
                        } else {
                            Applied::Missing
                        })
                    }
                    // An undecodable envelope, or (`QuarantineContent`) a
                    // body that fails its checksum: the record moves aside.
                    StoreOp::Quarantine { id } | StoreOp::QuarantineContent { id } => {
                        let id = *id;
                        let only_if_undecodable = matches!(op, StoreOp::Quarantine { .. });
                        let raw = envelope
                            .get(id.as_u64())
                            .map_err(storage)?
                            .map(|v| v.value().to_vec());
                        match raw {
                            // Gone, or readable after all: nothing to do.
                            None => Ok(Applied::Missing),
                            Some(raw)
                                if only_if_undecodable && record::decode(id, &raw).is_ok() =>
                            {
                                Ok(Applied::Missing)
                            }
                            Some(raw) => {
                                move_record(
                                    id.as_u64(),
                                    &raw,
                                    [&mut envelope, &mut content],
                                    [&mut quarantine_envelope, &mut quarantine_content],
                                )
                                .map_err(storage)?;
                                Ok(Applied::Done)
                            }
                        }
                    }
                    StoreOp::Restore { id } => {
                        let raw = quarantine_envelope
                            .get(id.as_u64())
                            .map_err(storage)?
                            .map(|v| v.value().to_vec());
                        // A body that fails its checksum stays aside.
                        let intact = match (
                            quarantine_content.get(id.as_u64()).map_err(storage)?,
                            crc.get(id.as_u64()).map_err(storage)?,
                        ) {
                            (Some(body), Some(sum)) => crc32fast::hash(body.value()) == sum.value(),
                            _ => true,
                        };
                        match raw {
                            Some(raw) if intact && record::decode(*id, &raw).is_ok() => {
                                move_record(
                                    id.as_u64(),
                                    &raw,
                                    [&mut quarantine_envelope, &mut quarantine_content],
                                    [&mut envelope, &mut content],
                                )
                                .map_err(storage)?;
                                Ok(Applied::Done)
                            }
                            _ => Ok(Applied::Missing),
                        }
                    }
                };
                wrote |= match &outcome {
                    Ok(Applied::Done) => true,
                    Ok(Applied::Modified { changed, .. }) => *changed,
                    Ok(Applied::Missing) | Err(_) => false,
                };
                outcomes.push(outcome);
            }
        }
        if wrote {
            txn.commit().map_err(|e| QueueError::storage(ctx(), e))?;
            let dir = self.content_dir();
            for id in unlink {
                content_file::remove_quietly(&content_file::content_path(&dir, id));
            }
        } else {
            txn.abort().map_err(|e| QueueError::storage(ctx(), e))?;
        }
        Ok(outcomes)
    }

    /// The directory of the queue's content files, next to the shards.
    pub(crate) fn content_dir(&self) -> PathBuf {
        content_file::content_dir(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// Whether a stored or quarantined record exists for `id` (a content
    /// file named by neither is an orphan).
    pub(crate) fn has_record(&self, id: QueueId) -> Result<bool, QueueError> {
        Ok(self.contains(id)?
            || self.read(QUARANTINE_ENVELOPE, |t| Ok(t.get(id.as_u64())?.is_some()))?)
    }

    /// Runs `f` on one table in a read transaction; errors name the file.
    fn read<V: redb::Value + 'static, T>(
        &self,
        table: TableDefinition<'_, u64, V>,
        f: impl FnOnce(&redb::ReadOnlyTable<u64, V>) -> Result<T, redb::StorageError>,
    ) -> Result<T, QueueError> {
        let ctx = || format!("read {}", self.path.display());
        contained(&self.path, || {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| QueueError::storage(ctx(), e))?;
            let table = txn
                .open_table(table)
                .map_err(|e| QueueError::storage(ctx(), e))?;
            f(&table).map_err(|e| QueueError::storage(ctx(), e))
        })
    }

    /// Reads every envelope, quarantined envelope and checksum once (not
    /// the bodies), so that a shard whose index pages are damaged is found
    /// at start-up, before it is served.
    pub(crate) fn scan(&self) -> Result<(), QueueError> {
        for table in [ENVELOPE, QUARANTINE_ENVELOPE] {
            self.read(table, |t| {
                for row in t.iter()? {
                    let (k, v) = row?;
                    std::hint::black_box((k.value(), v.value().len()));
                }
                Ok(())
            })?;
        }
        self.read(CONTENT_CRC, |t| {
            for row in t.iter()? {
                let (k, v) = row?;
                std::hint::black_box((k.value(), v.value()));
            }
            Ok(())
        })
    }

    /// The largest queue id in the shard.
    pub(crate) fn last_id(&self) -> Result<Option<QueueId>, QueueError> {
        self.read(ENVELOPE, |t| {
            Ok(t.last()?.map(|(k, _)| QueueId::from_u64(k.value())))
        })
    }

    /// Up to `limit` envelopes after `after` (from the first when `None`),
    /// in id order, and the records among them whose envelope cannot be
    /// decoded (with why): one page of a scan that never holds the whole
    /// shard. The next page starts after the largest id in either list.
    pub(crate) fn page(
        &self,
        after: Option<QueueId>,
        limit: usize,
    ) -> Result<(Vec<QueueEntry>, Vec<Damaged>), QueueError> {
        let start = match after.map(|id| id.as_u64().checked_add(1)) {
            None => 0,
            Some(Some(next)) => next,
            // Nothing can come after the largest id.
            Some(None) => return Ok((Vec::new(), Vec::new())),
        };
        self.read(ENVELOPE, |t| {
            let mut entries = Vec::with_capacity(limit.min(1024));
            let mut damaged = Vec::new();
            for row in t.range(start..)?.take(limit) {
                let (k, v) = row?;
                let id = QueueId::from_u64(k.value());
                match record::decode(id, v.value()) {
                    Ok(envelope) => entries.push(QueueEntry { id, envelope }),
                    Err(e) => damaged.push(Damaged {
                        id,
                        reason: e.to_string(),
                    }),
                }
            }
            Ok((entries, damaged))
        })
    }

    /// Calls `f` with each envelope that decodes, in id order, without
    /// collecting them: memory is what `f` keeps. Returns how many records
    /// could not be decoded (`entries` moves those aside).
    pub(crate) fn for_each_envelope(
        &self,
        mut f: impl FnMut(QueueId, Envelope),
    ) -> Result<usize, QueueError> {
        self.read(ENVELOPE, |t| {
            let mut damaged = 0;
            for row in t.iter()? {
                let (k, v) = row?;
                let id = QueueId::from_u64(k.value());
                match record::decode(id, v.value()) {
                    Ok(envelope) => f(id, envelope),
                    Err(_) => damaged += 1,
                }
            }
            Ok(damaged)
        })
    }

    /// The records moved aside, with why their envelope cannot be read
    /// (empty: it can be read now, and [`StoreOp::Restore`] takes it back).
    pub(crate) fn quarantined(&self) -> Result<Vec<Damaged>, QueueError> {
        let raw = self.read(QUARANTINE_ENVELOPE, |t| {
            t.iter()?
                .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(raw
            .into_iter()
            .map(|(k, v)| {
                let id = QueueId::from_u64(k);
                let reason = match record::decode(id, &v) {
                    Ok(_) => String::new(),
                    Err(e) => e.to_string(),
                };
                Damaged { id, reason }
            })
            .map(|mut d| {
                if d.reason.is_empty()
                    && let Ok(Some(sum)) = self.stored_crc(d.id)
                    && let Ok(Some(body)) = self.read(QUARANTINE_CONTENT, |t| {
                        Ok(t.get(d.id.as_u64())?.map(|v| v.value().to_vec()))
                    })
                    && let Err(reason) = check_crc(&body, sum)
                {
                    d.reason = reason;
                }
                d
            })
            .collect())
    }

    /// Puts a record straight into quarantine (tests of the way back).
    #[cfg(test)]
    pub(crate) fn put_quarantined(&self, id: QueueId, envelope: &[u8], content: &[u8]) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(QUARANTINE_ENVELOPE)
            .unwrap()
            .insert(id.as_u64(), envelope)
            .unwrap();
        txn.open_table(QUARANTINE_CONTENT)
            .unwrap()
            .insert(id.as_u64(), content)
            .unwrap();
        txn.commit().unwrap();
    }

    /// Whether the shard holds a message (without decoding it).
    pub(crate) fn contains(&self, id: QueueId) -> Result<bool, QueueError> {
        self.read(ENVELOPE, |t| Ok(t.get(id.as_u64())?.is_some()))
    }

    /// A message's envelope.
    pub(crate) fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        let raw = self.read(ENVELOPE, |t| {
            Ok(t.get(id.as_u64())?.map(|v| v.value().to_vec()))
        })?;
        raw.map(|v| record::decode(id, &v)).transpose()
    }

    /// Gives the space of removed records back to the file system (redb
    /// keeps a file at its peak size otherwise). Crash-safe; the caller
    /// holds the store exclusively. Returns whether the file shrank.
    pub(crate) fn compact(&mut self) -> Result<bool, QueueError> {
        if self.read_only {
            return Ok(false);
        }
        let path = self.path.display().to_string();
        self.db
            .compact()
            .map_err(|e| QueueError::storage(format!("compact {path}"), e))
    }

    /// How many messages the shard holds.
    pub(crate) fn len(&self) -> Result<u64, QueueError> {
        self.read(ENVELOPE, redb::ReadableTableMetadata::len)
    }

    /// A message's content, checked against its CRC-32 when it has one:
    /// `Some(Err(reason))` for a body that does not match.
    pub(crate) fn content(
        &self,
        id: QueueId,
    ) -> Result<Option<Result<Vec<u8>, String>>, QueueError> {
        let body = self.read(CONTENT, |t| {
            Ok(t.get(id.as_u64())?.map(|v| v.value().to_vec()))
        })?;
        let Some(body) = body else {
            // Removal takes envelope and content in one transaction, so an
            // envelope without its content is a damaged page, not mail
            // that is gone: saying None here would have it removed.
            let envelope = self.read(ENVELOPE, |t| Ok(t.get(id.as_u64())?.is_some()))?;
            if envelope {
                return Err(QueueError::damaged(
                    &self.path,
                    format!("{id}: the envelope is there and its content is not"),
                ));
            }
            return Ok(None);
        };
        Ok(Some(match self.stored_crc(id)? {
            Some(sum) => check_crc(&body, sum).map(|()| body),
            None => Ok(body),
        }))
    }

    /// The CRC-32 stored for a content, if any.
    fn stored_crc(&self, id: QueueId) -> Result<Option<u32>, QueueError> {
        self.read(CONTENT_CRC, |t| Ok(t.get(id.as_u64())?.map(|v| v.value())))
    }
}

/// A table of records by queue id.
type RecordTable<'txn> = redb::Table<'txn, u64, &'static [u8]>;

/// Moves a record (its envelope `raw` and its content) from one pair of
/// tables (envelope, content) to another: into quarantine and back.
fn move_record(
    id: u64,
    raw: &[u8],
    [from_envelope, from_content]: [&mut RecordTable<'_>; 2],
    [to_envelope, to_content]: [&mut RecordTable<'_>; 2],
) -> Result<(), redb::StorageError> {
    from_envelope.remove(id)?;
    let body = from_content
        .remove(id)?
        .map(|v| v.value().to_vec())
        .unwrap_or_default();
    to_envelope.insert(id, raw)?;
    to_content.insert(id, body.as_slice())?;
    Ok(())
}

/// Whether a stored envelope names a content file. Only records of
/// format 3 can; an undecodable one is kept (and so is its file).
fn names_content_file(raw: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Spooled {
        #[serde(default)]
        spooled: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Spooled>(raw).is_ok_and(|s| s.spooled.is_some())
}

/// `envelope` with its state set to hold.
fn held_copy(id: QueueId, envelope: &[u8]) -> Result<Vec<u8>, QueueError> {
    let mut new = record::decode(id, envelope)?;
    new.state = QueueState::Hold;
    record::encode(id, &new)
}

/// Whether `body` matches the CRC-32 `sum`; the reason when not.
fn check_crc(body: &[u8], sum: u32) -> Result<(), String> {
    let computed = crc32fast::hash(body);
    if computed == sum {
        Ok(())
    } else {
        Err(format!(
            "content checksum mismatch (CRC-32 stored {sum:08x}, computed {computed:08x})"
        ))
    }
}

/// A damaged record: its envelope cannot be decoded, or its content
/// fails its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damaged {
    pub(crate) id: QueueId,
    pub(crate) reason: String,
}

/// Runs `f`, turning a panic inside the storage engine — which is how
/// redb meets some damaged pages — into an error naming the file, so that
/// a damaged shard costs the operations that touch it and nothing else.
pub(crate) fn contained<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, QueueError>,
) -> Result<T, QueueError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the storage engine panicked".to_owned());
        Err(QueueError::damaged(path, format!("storage engine: {text}")))
    })
}

pub(crate) fn sync_parent_dir(path: &Path) -> Result<(), QueueError> {
    // A relative name's parent is "" (the working directory), not None.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| QueueError::directory(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_of_a_relative_name_is_the_working_directory() {
        // "spool" (the default queue_directory) has parent "", which is
        // not a directory one can open.
        sync_parent_dir(Path::new("spool")).unwrap();
        sync_parent_dir(Path::new("./spool")).unwrap();
    }
}
