//! One shard's storage: a redb database with the content and envelope of
//! each message under its queue id.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::QueueError;
use crate::id::QueueId;
use crate::message::{Envelope, QueueEntry, QueueState};

const CONTENT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("content");
/// redb's page cache per shard.
const CACHE_BYTES: usize = 32 << 20;
const ENVELOPE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("envelope");

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
    /// The message is done: remove it.
    Remove { id: QueueId },
}

/// A shard's database file.
#[derive(Debug)]
pub(crate) struct ShardStore {
    path: PathBuf,
    db: Database,
}

impl ShardStore {
    /// Opens (or creates) the shard file and makes sure its tables exist.
    pub(crate) fn open(path: &Path) -> Result<Self, QueueError> {
        let created = !path.exists();
        // redb's page cache would otherwise grow with the queue (about
        // 2.5 KiB per parked message was measured at 200,000); the kernel's
        // page cache serves the rest.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| QueueError::storage(format!("open {}", path.display()), e))?;
        if created {
            // The new file's directory entry must be durable before any
            // message in it is acknowledged.
            sync_parent_dir(path)?;
        }
        let store = Self {
            path: path.to_owned(),
            db,
        };
        // Create the tables up front so readers never see them missing.
        store.commit(&[])?;
        Ok(store)
    }

    /// Applies `batch` in one durable transaction: all or nothing.
    pub(crate) fn commit(&self, batch: &[StoreOp]) -> Result<(), QueueError> {
        let ctx = || format!("commit to {}", self.path.display());
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| QueueError::storage(ctx(), e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| QueueError::storage(ctx(), redb::Error::from(e)))?;
        {
            let mut content = txn
                .open_table(CONTENT)
                .map_err(|e| QueueError::storage(ctx(), e))?;
            let mut envelope = txn
                .open_table(ENVELOPE)
                .map_err(|e| QueueError::storage(ctx(), e))?;
            for op in batch {
                match op {
                    StoreOp::Insert {
                        id,
                        envelope: env,
                        content: body,
                    } => {
                        content
                            .insert(id.as_u64(), body.as_slice())
                            .map_err(|e| QueueError::storage(ctx(), e))?;
                        envelope
                            .insert(id.as_u64(), env.as_slice())
                            .map_err(|e| QueueError::storage(ctx(), e))?;
                    }
                    StoreOp::Update {
                        id,
                        envelope: env,
                        keep_hold,
                    } => {
                        // Only a message that is still there: a concurrent
                        // delete must not be undone by a late update.
                        let held = match envelope
                            .get(id.as_u64())
                            .map_err(|e| QueueError::storage(ctx(), e))?
                        {
                            None => continue,
                            Some(old) => {
                                *keep_hold
                                    && serde_json::from_slice::<Envelope>(old.value())
                                        .is_ok_and(|e| e.state == QueueState::Hold)
                            }
                        };
                        let bytes = if held {
                            let mut new: Envelope = serde_json::from_slice(env)
                                .map_err(|e| QueueError::codec(*id, e))?;
                            new.state = QueueState::Hold;
                            serde_json::to_vec(&new).map_err(|e| QueueError::codec(*id, e))?
                        } else {
                            env.clone()
                        };
                        envelope
                            .insert(id.as_u64(), bytes.as_slice())
                            .map_err(|e| QueueError::storage(ctx(), e))?;
                    }
                    StoreOp::Remove { id } => {
                        content
                            .remove(id.as_u64())
                            .map_err(|e| QueueError::storage(ctx(), e))?;
                        envelope
                            .remove(id.as_u64())
                            .map_err(|e| QueueError::storage(ctx(), e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| QueueError::storage(ctx(), e))
    }

    /// Runs `f` on one table in a read transaction; errors name the file.
    fn read<T>(
        &self,
        table: TableDefinition<'_, u64, &[u8]>,
        f: impl FnOnce(&redb::ReadOnlyTable<u64, &[u8]>) -> Result<T, redb::StorageError>,
    ) -> Result<T, QueueError> {
        let ctx = || format!("read {}", self.path.display());
        let txn = self
            .db
            .begin_read()
            .map_err(|e| QueueError::storage(ctx(), e))?;
        let table = txn
            .open_table(table)
            .map_err(|e| QueueError::storage(ctx(), e))?;
        f(&table).map_err(|e| QueueError::storage(ctx(), e))
    }

    /// The largest queue id in the shard.
    pub(crate) fn last_id(&self) -> Result<Option<QueueId>, QueueError> {
        self.read(ENVELOPE, |t| {
            Ok(t.last()?.map(|(k, _)| QueueId::from_u64(k.value())))
        })
    }

    /// Every message's envelope, in id order.
    pub(crate) fn entries(&self) -> Result<Vec<QueueEntry>, QueueError> {
        let raw = self.read(ENVELOPE, |t| {
            t.iter()?
                .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<Result<Vec<_>, _>>()
        })?;
        raw.into_iter()
            .map(|(k, v)| {
                let id = QueueId::from_u64(k);
                let envelope = serde_json::from_slice(&v).map_err(|e| QueueError::codec(id, e))?;
                Ok(QueueEntry { id, envelope })
            })
            .collect()
    }

    /// A message's envelope.
    pub(crate) fn envelope(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        let raw = self.read(ENVELOPE, |t| {
            Ok(t.get(id.as_u64())?.map(|v| v.value().to_vec()))
        })?;
        raw.map(|v| serde_json::from_slice(&v).map_err(|e| QueueError::codec(id, e)))
            .transpose()
    }

    /// A message's content.
    pub(crate) fn content(&self, id: QueueId) -> Result<Option<Vec<u8>>, QueueError> {
        self.read(CONTENT, |t| {
            Ok(t.get(id.as_u64())?.map(|v| v.value().to_vec()))
        })
    }
}

fn sync_parent_dir(path: &Path) -> Result<(), QueueError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| QueueError::directory(dir, e))
}
