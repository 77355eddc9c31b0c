//! Damaged shard files: finding one (`towerpost queue check`) and saving
//! what it still holds (`towerpost queue salvage`, and start-up by itself).
//!
//! Postfix moves a queue file it cannot read to its `corrupt` queue and
//! serves the rest. A shard holds many messages, so here the damaged file
//! is moved to `queue/corrupt/` as it is — the evidence, and whatever could
//! not be read — after every record that can still be read was copied
//! into a fresh file under the shard's name. The order makes a crash at
//! any point safe: the fresh file is built beside the damaged one, made
//! durable, and only then do the two renames happen; a start-up that
//! finds the fresh file without a shard file finishes the second rename.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::error::QueueError;
use crate::id::QueueId;
use crate::record;
use crate::store::{
    CONTENT, CONTENT_CRC, ENVELOPE, QUARANTINE_CONTENT, QUARANTINE_ENVELOPE, contained,
    sync_parent_dir,
};

/// Where damaged shard files are moved, inside the queue's `queue/`.
pub const CORRUPT_DIR: &str = "corrupt";
/// Problems listed one by one before the rest are only counted.
const MAX_LISTED: usize = 100;
/// Records copied per write transaction while salvaging.
const BATCH: usize = 256;

/// What `towerpost queue check` found in one shard file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHealth {
    /// The shard file.
    pub path: PathBuf,
    /// Messages whose envelope and content read back intact.
    pub intact: u64,
    /// Records in quarantine.
    pub quarantined: u64,
    /// What is wrong, one line each (empty: the shard is healthy); at most
    /// [`MAX_LISTED`] lines and a count of the rest.
    pub problems: Vec<String>,
    /// The file's pages are damaged (not only single records): salvage it.
    pub damaged: bool,
}

/// What salvaging one shard file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageReport {
    /// The shard file, now a fresh one.
    pub path: PathBuf,
    /// Where the damaged file was moved.
    pub moved_to: PathBuf,
    /// Messages copied intact into the fresh file.
    pub salvaged: u64,
    /// Records copied into the fresh file's quarantine (an envelope that
    /// cannot be decoded, a body that fails its checksum).
    pub quarantined: u64,
    /// What could not be read, one line each; it stays in `moved_to`.
    pub lost: Vec<String>,
}

/// Checks every record of the shard file at `path` without changing it:
/// each table read through, each envelope decoded and each body checked
/// against its CRC-32 — the reads a salvage would do. redb's own
/// `check_integrity` is not used: it needs the file writable and repairs
/// it in place. The server must be stopped (redb locks the file).
pub fn check_shard(path: &Path) -> Result<ShardHealth, QueueError> {
    let mut health = ShardHealth {
        path: path.to_owned(),
        intact: 0,
        quarantined: 0,
        problems: Vec::new(),
        damaged: false,
    };
    let mut problems = Problems::default();
    match open_damaged(path) {
        Ok(db) => walk(path, &*db, &mut problems, |r| {
            if r.quarantine {
                health.quarantined += 1;
            } else {
                health.intact += 1;
            }
            Ok(())
        })?,
        Err(e) if e.is_damaged() => problems.damage(format!("the file cannot be opened: {e}")),
        Err(e) => return Err(e),
    }
    health.damaged = problems.damaged;
    health.problems = problems.finish();
    Ok(health)
}

/// Checks every shard file in `dir` (the queue's `queue/` directory).
pub fn check_queue(dir: &Path) -> Result<Vec<ShardHealth>, QueueError> {
    shard_files(dir)?.iter().map(|p| check_shard(p)).collect()
}

/// The shard files in `dir`, in index order.
pub(crate) fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, QueueError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| QueueError::directory(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| shard_index(p).is_some())
        .collect();
    files.sort();
    Ok(files)
}

/// The index in a shard file's name (`shard-007.redb` is 7).
pub(crate) fn shard_index(path: &Path) -> Option<usize> {
    path.file_name()?
        .to_str()?
        .strip_prefix("shard-")?
        .strip_suffix(".redb")?
        .parse()
        .ok()
}

/// The fresh file a salvage builds beside the shard file.
fn salvaged_path(path: &Path) -> PathBuf {
    path.with_extension("salvaged")
}

/// Completes a salvage that a crash interrupted between its two renames:
/// the fresh file is there and the shard file is not.
pub(crate) fn finish_interrupted(path: &Path) -> Result<(), QueueError> {
    let fresh = salvaged_path(path);
    if fresh.exists() && !path.exists() {
        std::fs::rename(&fresh, path).map_err(|e| QueueError::directory(path, e))?;
        sync_parent_dir(path)?;
        tracing::warn!(target: "towerpost::queue",
            "queue shard {}: finished an interrupted salvage", path.display());
    }
    Ok(())
}

/// Salvages the shard file at `path`: every record that can be read is
/// copied into a fresh file that takes the shard's name, and the damaged
/// file is moved to `queue/corrupt/`. Needs the file to itself.
pub fn salvage_shard(path: &Path) -> Result<SalvageReport, QueueError> {
    let fresh_path = salvaged_path(path);
    if fresh_path.exists() {
        std::fs::remove_file(&fresh_path).map_err(|e| QueueError::directory(&fresh_path, e))?;
    }
    let mut report = SalvageReport {
        path: path.to_owned(),
        moved_to: PathBuf::new(),
        salvaged: 0,
        quarantined: 0,
        lost: Vec::new(),
    };
    let fresh = Database::create(&fresh_path)
        .map_err(|e| QueueError::storage(format!("create {}", fresh_path.display()), e))?;
    let mut problems = Problems::default();
    match open_damaged(path) {
        Ok(old) => copy_records(path, &*old, &fresh, &mut report, &mut problems)?,
        Err(e) => problems.damage(format!("nothing could be read: {e}")),
    }
    // Every table exists in the fresh file, as ShardStore::open expects.
    commit(&fresh, &fresh_path, &[])?;
    drop(fresh);
    sync_parent_dir(&fresh_path)?;

    let dir = path.parent().unwrap_or(Path::new("."));
    let corrupt = dir.join(CORRUPT_DIR);
    if !corrupt.exists() {
        std::fs::create_dir(&corrupt).map_err(|e| QueueError::directory(&corrupt, e))?;
        sync_parent_dir(&corrupt)?;
    }
    report.moved_to = unused_name(&corrupt, path);
    std::fs::rename(path, &report.moved_to).map_err(|e| QueueError::directory(path, e))?;
    sync_parent_dir(&report.moved_to)?;
    std::fs::rename(&fresh_path, path).map_err(|e| QueueError::directory(path, e))?;
    sync_parent_dir(path)?;
    let marker = marker_path(path);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(|e| QueueError::directory(&marker, e))?;
    }
    report.lost = problems.finish();
    Ok(report)
}

/// The file that says a shard met damage while it was served.
fn marker_path(path: &Path) -> PathBuf {
    path.with_extension("damaged")
}

/// Whether the shard file at `path` was marked damaged while served.
pub(crate) fn is_marked(path: &Path) -> bool {
    marker_path(path).exists()
}

/// Marks the shard file at `path` for salvage at the next start: a damaged
/// page met while serving (a body, say) is not in the pages that start-up
/// reads, so without the mark the damage would wait for its next reader.
pub(crate) fn mark_damaged(path: &Path) {
    let marker = marker_path(path);
    if let Err(e) = std::fs::write(&marker, b"") {
        tracing::error!(target: "towerpost::queue",
            "cannot mark {} for salvage: {e}", path.display());
    }
}

/// Opens a damaged file for reading: read-only if redb allows, else with
/// redb's own repair (of the damaged file, which is moved aside anyway).
fn open_damaged(path: &Path) -> Result<Box<dyn ReadableDatabase>, QueueError> {
    let open = |what| move |e| QueueError::storage(format!("{what} {}", path.display()), e);
    contained(path, || match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => Ok(Box::new(db) as Box<dyn ReadableDatabase>),
        Err(_) => Database::open(path)
            .map(|db| Box::new(db) as Box<dyn ReadableDatabase>)
            .map_err(open("open")),
    })
}

/// One record on its way into the fresh file.
struct Record {
    id: u64,
    envelope: Vec<u8>,
    content: Vec<u8>,
    crc: Option<u32>,
    quarantine: bool,
}

/// Calls `visit` with every record of `old` that can be read (intact or
/// for quarantine), and notes in `problems` what cannot be.
fn walk(
    path: &Path,
    old: &dyn ReadableDatabase,
    problems: &mut Problems,
    mut visit: impl FnMut(Record) -> Result<(), QueueError>,
) -> Result<(), QueueError> {
    let mut ids = BTreeSet::new();
    for table in [ENVELOPE, CONTENT, QUARANTINE_ENVELOPE, QUARANTINE_CONTENT] {
        ids.extend(keys(path, old, table, problems));
    }
    for id in ids {
        match read_record(path, old, id) {
            Ok(Some(r)) => visit(r)?,
            Ok(None) => {}
            Err(why) => problems.damage(format!("{}: {why}", QueueId::from_u64(id))),
        }
    }
    Ok(())
}

/// Copies every readable record of `old` into `fresh`, in batches.
fn copy_records(
    path: &Path,
    old: &dyn ReadableDatabase,
    fresh: &Database,
    report: &mut SalvageReport,
    problems: &mut Problems,
) -> Result<(), QueueError> {
    let mut batch = Vec::with_capacity(BATCH);
    walk(path, old, problems, |r| {
        if r.quarantine {
            report.quarantined += 1;
        } else {
            report.salvaged += 1;
        }
        batch.push(r);
        if batch.len() == BATCH {
            commit(fresh, path, &batch)?;
            batch.clear();
        }
        Ok(())
    })?;
    commit(fresh, path, &batch)
}

/// A record as it can be read back; `Err` says what could not be.
fn read_record(path: &Path, old: &dyn ReadableDatabase, id: u64) -> Result<Option<Record>, String> {
    let qid = QueueId::from_u64(id);
    let crc = get(path, old, CONTENT_CRC, id, |sum| sum).ok().flatten();
    for (envelope_table, content_table, quarantined) in [
        (ENVELOPE, CONTENT, false),
        (QUARANTINE_ENVELOPE, QUARANTINE_CONTENT, true),
    ] {
        let envelope = bytes(path, old, envelope_table, id)
            .map_err(|e| format!("the envelope cannot be read ({e}); left in the damaged file"))?;
        let content = bytes(path, old, content_table, id);
        let (Some(envelope), content) = (envelope, content) else {
            continue;
        };
        let content = match content {
            Ok(Some(body)) => body,
            Ok(None) => return Err("the content is missing; left in the damaged file".into()),
            Err(e) => {
                return Err(format!(
                    "the content cannot be read ({e}); left in the damaged file"
                ));
            }
        };
        let intact = record::decode(qid, &envelope).is_ok()
            && crc.is_none_or(|s| s == crc32fast::hash(&content));
        return Ok(Some(Record {
            id,
            envelope,
            content,
            crc,
            quarantine: quarantined || !intact,
        }));
    }
    // A body without its envelope cannot be delivered anywhere.
    match bytes(path, old, CONTENT, id) {
        Ok(Some(_)) => Err("a body without an envelope; left in the damaged file".into()),
        _ => Ok(None),
    }
}

/// Writes `batch` into the fresh file in one durable transaction.
fn commit(db: &Database, path: &Path, batch: &[Record]) -> Result<(), QueueError> {
    let ctx = || format!("salvage into {}", path.display());
    let err = |e: redb::Error| QueueError::storage(ctx(), e);
    let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| err(e.into()))?;
    {
        let mut envelope = txn.open_table(ENVELOPE).map_err(|e| err(e.into()))?;
        let mut content = txn.open_table(CONTENT).map_err(|e| err(e.into()))?;
        let mut q_envelope = txn
            .open_table(QUARANTINE_ENVELOPE)
            .map_err(|e| err(e.into()))?;
        let mut q_content = txn
            .open_table(QUARANTINE_CONTENT)
            .map_err(|e| err(e.into()))?;
        let mut crc = txn.open_table(CONTENT_CRC).map_err(|e| err(e.into()))?;
        for r in batch {
            let (e, c) = if r.quarantine {
                (&mut q_envelope, &mut q_content)
            } else {
                (&mut envelope, &mut content)
            };
            e.insert(r.id, r.envelope.as_slice())
                .map_err(|e| err(e.into()))?;
            c.insert(r.id, r.content.as_slice())
                .map_err(|e| err(e.into()))?;
            if let Some(sum) = r.crc {
                crc.insert(r.id, sum).map_err(|e| err(e.into()))?;
            }
        }
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// Every key of `table` that can be read; where reading stops, why.
fn keys(
    path: &Path,
    db: &dyn ReadableDatabase,
    table: TableDefinition<'_, u64, &[u8]>,
    problems: &mut Problems,
) -> Vec<u64> {
    let mut found = Vec::new();
    let result = contained(path, || {
        let ctx = || format!("read {} of {}", table.name(), path.display());
        let txn = db.begin_read().map_err(|e| QueueError::storage(ctx(), e))?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(QueueError::storage(ctx(), e)),
        };
        for row in t.iter().map_err(|e| QueueError::storage(ctx(), e))? {
            let (k, _) = row.map_err(|e| QueueError::storage(ctx(), e))?;
            found.push(k.value());
        }
        Ok(())
    });
    if let Err(e) = result {
        let after = found.last().map_or("at its start".to_owned(), |k| {
            format!("after {}", QueueId::from_u64(*k))
        });
        problems.damage(format!(
            "table {}: reading stopped {after}: {e}",
            table.name()
        ));
    }
    found
}

/// One value of `table`, turned into an owned `R` by `owned`.
fn get<V: redb::Value + 'static, R>(
    path: &Path,
    db: &dyn ReadableDatabase,
    table: TableDefinition<'_, u64, V>,
    id: u64,
    owned: impl FnOnce(V::SelfType<'_>) -> R,
) -> Result<Option<R>, QueueError> {
    contained(path, || {
        let ctx = || format!("read {} of {}", table.name(), path.display());
        let txn = db.begin_read().map_err(|e| QueueError::storage(ctx(), e))?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(QueueError::storage(ctx(), e)),
        };
        t.get(id)
            .map(|v| v.map(|v| owned(v.value())))
            .map_err(|e| QueueError::storage(ctx(), e))
    })
}

/// One record's bytes from `table`.
fn bytes(
    path: &Path,
    db: &dyn ReadableDatabase,
    table: TableDefinition<'_, u64, &[u8]>,
    id: u64,
) -> Result<Option<Vec<u8>>, QueueError> {
    get(path, db, table, id, <[u8]>::to_vec)
}

/// `corrupt/<shard file>.<unix seconds>`, with a suffix if that is taken.
fn unused_name(corrupt: &Path, path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "shard".into(), |n| n.to_string_lossy().into_owned());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut candidate = corrupt.join(format!("{name}.{secs}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = corrupt.join(format!("{name}.{secs}.{n}"));
        n += 1;
    }
    candidate
}

/// Problem lines, bounded, and whether any was damage to the file itself.
#[derive(Default)]
struct Problems {
    lines: Vec<String>,
    more: usize,
    damaged: bool,
}

impl Problems {
    /// A problem that a salvage would leave behind.
    fn damage(&mut self, line: String) {
        self.damaged = true;
        self.push(line);
    }

    fn push(&mut self, line: String) {
        if self.lines.len() < MAX_LISTED {
            self.lines.push(line);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.lines.push(format!("… and {} more", self.more));
        }
        self.lines
    }
}
