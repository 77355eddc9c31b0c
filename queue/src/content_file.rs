//! Content files: the part of a large message beyond its first
//! [`INLINE_CONTENT_LIMIT`] octets, written to a file of its own as it
//! arrives, so that no session ever holds a large body in memory.
//!
//! The file is `queue/content/<queue id>`. Its life:
//!
//! 1. The session writes it as the content arrives ([`ContentWriter`]).
//! 2. At the end of the data, [`ContentWriter::finish`] makes it durable
//!    (fdatasync of the file, fsync of the directory) before anything
//!    refers to it.
//! 3. The envelope commit that follows names it (`spooled` in the record):
//!    only then is the message queued, and only then is the 250 sent.
//! 4. The shard removes the file after the commit that removes the
//!    message.
//!
//! A crash between 1 and 3 leaves a file that no envelope names, and one
//! between the removal's commit and the unlink leaves the same: start-up
//! removes every such orphan ([`sweep_orphans`]) before the queue serves,
//! so an orphan is never delivered.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::QueueError;
use crate::id::QueueId;
use crate::store::sync_parent_dir;

/// The most content a message keeps in its shard record; the rest of a
/// larger one goes to its content file. Small messages — nearly all mail —
/// stay one record in one commit, as fast as before; 256 KiB bounds what a
/// session or a delivery holds in memory per message.
pub const INLINE_CONTENT_LIMIT: usize = 256 * 1024;

/// The directory of content files under the queue's `queue/` directory.
pub(crate) fn content_dir(queue_dir: &Path) -> PathBuf {
    queue_dir.join("content")
}

/// A message's content file.
pub(crate) fn content_path(content_dir: &Path, id: QueueId) -> PathBuf {
    content_dir.join(id.to_string())
}

/// Writes the rest of a large message to its content file as it arrives.
/// Dropped before [`finish`](Self::finish), it removes the file.
#[derive(Debug)]
pub struct ContentWriter {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    crc: crc32fast::Hasher,
    /// The file exists (it is created at the first write).
    created: bool,
}

impl ContentWriter {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            size: 0,
            crc: crc32fast::Hasher::new(),
            created: false,
        }
    }

    /// Appends `buf` to the file and empties it (keeping its capacity).
    /// A full disk is an error that [`QueueError::is_storage_full`] knows.
    pub async fn append(&mut self, buf: &mut Vec<u8>) -> Result<(), QueueError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.crc.update(buf);
        self.size += buf.len() as u64;
        let bytes = std::mem::take(buf);
        let file = self.file.take();
        let path = self.path.clone();
        self.created = true;
        let (file, mut bytes) = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(f) => f,
                None => std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| QueueError::directory(&path, e))?,
            };
            file.write_all(&bytes)
                .map_err(|e| QueueError::directory(&path, e))?;
            Ok::<_, QueueError>((file, bytes))
        })
        .await
        .map_err(|_| QueueError::closed())??;
        self.file = Some(file);
        bytes.clear();
        *buf = bytes;
        Ok(())
    }

    /// Octets written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the file durable — its data, and its name in the directory —
    /// and hands it over for the envelope commit that will name it.
    pub async fn finish(mut self) -> Result<SpooledContent, QueueError> {
        let file = self.file.take();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(file) = file {
                file.sync_data()
                    .map_err(|e| QueueError::directory(&path, e))?;
            }
            sync_parent_dir(&path)
        })
        .await
        .map_err(|_| QueueError::closed())??;
        let spooled = SpooledContent {
            path: std::mem::take(&mut self.path),
            size: self.size,
            crc32: std::mem::take(&mut self.crc).finalize(),
            stored: false,
        };
        self.created = false; // the file is the SpooledContent's now
        Ok(spooled)
    }
}

impl Drop for ContentWriter {
    fn drop(&mut self) {
        if self.created {
            // An unlink is one metadata operation: done in place rather
            // than handed to a thread, so that it is done before the
            // session answers.
            remove_quietly(&self.path);
        }
    }
}

/// A durable content file that an envelope commit is about to name.
/// Dropped without having been stored (the commit failed, or the message
/// was refused), it removes the file.
#[derive(Debug)]
pub struct SpooledContent {
    path: PathBuf,
    size: u64,
    crc32: u32,
    stored: bool,
}

impl SpooledContent {
    /// The file's size in octets.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's CRC-32.
    pub(crate) fn crc32(&self) -> u32 {
        self.crc32
    }

    /// The envelope commit that names the file is under way: the file is
    /// the queue's now, and dropping this no longer removes it.
    pub(crate) fn hand_over(mut self) -> PathBuf {
        self.stored = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for SpooledContent {
    fn drop(&mut self) {
        if !self.stored {
            remove_quietly(&self.path);
        }
    }
}

/// Removes a file; one that is gone already is no error, any other
/// failure is logged (the file is an orphan, and the next start removes
/// it).
pub(crate) fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(target: "towerpost::queue",
            "cannot remove content file {}: {e}; it is removed at the next start", path.display());
    }
}

/// Removes the content files that no stored or quarantined record names:
/// left by a crash during a large DATA, or between a removal and its
/// unlink. Run at start-up, before the queue serves. `referenced` says
/// whether a record (envelope or quarantined envelope) exists for an id.
/// Returns how many were removed.
pub(crate) fn sweep_orphans(
    dir: &Path,
    mut referenced: impl FnMut(QueueId) -> Result<bool, QueueError>,
) -> Result<usize, QueueError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(QueueError::directory(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| QueueError::directory(dir, e))?;
        let name = entry.file_name();
        let keep = match name.to_str().and_then(|n| n.parse::<QueueId>().ok()) {
            Some(id) => referenced(id)?,
            // Not a content file (an editor's backup, a stray file): not
            // ours to remove.
            None => true,
        };
        if !keep {
            // One file that cannot be removed is no reason not to serve
            // the queue: it is named in the log, and tried again next time.
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::warn!(target: "towerpost::queue",
                        "{}: removed orphaned content file {} (no queued message names it)",
                        name.to_string_lossy(), entry.path().display());
                    removed += 1;
                }
                Err(e) => tracing::error!(target: "towerpost::queue",
                    "{}: cannot remove orphaned content file {}: {e}",
                    name.to_string_lossy(), entry.path().display()),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use crate::{Envelope, Queue, QueueSettings};

    /// A failed envelope commit leaves no content file behind, whether it
    /// failed before writing or after (and was undone).
    #[tokio::test]
    async fn a_failed_commit_removes_the_file_it_would_have_named() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(QueueSettings {
            directory: dir.path().to_owned(),
            shards: 1,
        })
        .await
        .unwrap();
        let files = || {
            std::fs::read_dir(dir.path().join("queue/content"))
                .unwrap()
                .count()
        };
        for fail_after_writing in [false, true] {
            if fail_after_writing {
                queue.faults().fail_after(1);
            } else {
                queue.faults().fail_before(1);
            }
            let id = queue.new_id();
            let mut writer = queue.content_writer(id);
            writer.append(&mut vec![b'x'; 1000]).await.unwrap();
            let spooled = writer.finish().await.unwrap();
            assert_eq!(files(), 1);
            let envelope = Envelope::new(None, vec![], 0, 1004);
            let stored = queue
                .enqueue_spooled(id, &envelope, b"h\r\n\r\n".to_vec(), spooled)
                .await;
            assert!(stored.is_err(), "the injected fault");
            assert!(queue.envelope(id).await.unwrap().is_none());
            assert_eq!(files(), 0, "fail_after_writing={fail_after_writing}");
        }
        queue.shutdown().await;
    }
}
