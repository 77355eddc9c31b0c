//! Queue errors.

use std::fmt;

/// A queue operation failed. These are faults (disk, bug, shutdown), never
/// policy: the SMTP server turns them into a 4xx reply.
#[derive(Debug)]
pub struct QueueError {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The storage layer failed (I/O, corruption, full disk).
    Storage {
        context: String,
        source: redb::Error,
    },
    /// The shard task is gone (shutdown in progress).
    Closed,
    /// An envelope could not be encoded or decoded.
    Codec {
        id: String,
        source: serde_json::Error,
    },
    /// The queue directory could not be prepared.
    Directory {
        path: String,
        source: std::io::Error,
    },
    /// An update or removal named a message that no shard holds.
    NotFound { id: String },
    /// A shard's writer panicked while committing (a bug); the batch was
    /// not acknowledged and the writer carries on with a reopened store.
    Panicked { shard: String },
    /// A shard file is damaged: the storage engine panicked or found its
    /// pages inconsistent while reading.
    Damaged { shard: String, detail: String },
}

impl QueueError {
    pub(crate) fn storage(context: impl Into<String>, source: impl Into<redb::Error>) -> Self {
        Self {
            kind: Kind::Storage {
                context: context.into(),
                source: source.into(),
            },
        }
    }

    /// A write refused because the shard's file system is read-only.
    pub(crate) fn read_only(shard: &std::path::Path) -> Self {
        Self::storage(
            format!("reopen {}", shard.display()),
            redb::StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::ReadOnlyFilesystem,
                "the file system is mounted read-only",
            )),
        )
    }

    /// A content file could not be read (its error names the file).
    pub(crate) fn content_file(source: std::io::Error) -> Self {
        Self::storage("content file", redb::Error::Io(source))
    }

    pub(crate) fn closed() -> Self {
        Self { kind: Kind::Closed }
    }

    pub(crate) fn codec(id: impl fmt::Display, source: serde_json::Error) -> Self {
        Self {
            kind: Kind::Codec {
                id: id.to_string(),
                source,
            },
        }
    }

    pub(crate) fn directory(path: &std::path::Path, source: std::io::Error) -> Self {
        Self {
            kind: Kind::Directory {
                path: path.display().to_string(),
                source,
            },
        }
    }

    pub(crate) fn not_found(id: impl fmt::Display) -> Self {
        Self {
            kind: Kind::NotFound { id: id.to_string() },
        }
    }

    pub(crate) fn panicked(shard: &std::path::Path) -> Self {
        Self {
            kind: Kind::Panicked {
                shard: shard.display().to_string(),
            },
        }
    }

    pub(crate) fn damaged(shard: &std::path::Path, detail: impl Into<String>) -> Self {
        Self {
            kind: Kind::Damaged {
                shard: shard.display().to_string(),
                detail: detail.into(),
            },
        }
    }

    /// A shard file is damaged (its pages are inconsistent), as opposed to
    /// a disk that is full, missing or in use: `towerpost queue salvage`
    /// is the way out, and start-up salvages such a shard by itself.
    pub fn is_damaged(&self) -> bool {
        match &self.kind {
            Kind::Damaged { .. } => true,
            Kind::Storage { source, .. } => match source {
                redb::Error::Corrupted(_) => true,
                // How redb reports a file whose header is not its own.
                redb::Error::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
                _ => false,
            },
            _ => false,
        }
    }

    /// The message is not in the queue (delivered, bounced or deleted
    /// meanwhile). An update that matches nothing is this error, never a
    /// silent success.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, Kind::NotFound { .. })
    }

    /// The failure is a lack of disk space: the SMTP answer is
    /// `452 4.3.1 Insufficient system storage`.
    pub fn is_storage_full(&self) -> bool {
        let io = match &self.kind {
            Kind::Storage {
                source: redb::Error::Io(e),
                ..
            } => Some(e),
            Kind::Directory { source, .. } => Some(source),
            _ => None,
        };
        io.is_some_and(|e| {
            e.kind() == std::io::ErrorKind::StorageFull
                || e.kind() == std::io::ErrorKind::QuotaExceeded
                || e.raw_os_error() == Some(28)
        })
    }

    /// An envelope could not be decoded (a damaged record).
    pub(crate) fn is_codec(&self) -> bool {
        matches!(self.kind, Kind::Codec { .. })
    }

    /// The queue is shutting down.
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, Kind::Closed)
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Storage { context, source } => write!(f, "queue storage: {context}: {source}"),
            Kind::Closed => f.write_str("queue is shut down"),
            Kind::Codec { id, source } => write!(f, "queue file {id}: bad envelope: {source}"),
            Kind::Directory { path, source } => write!(f, "queue directory {path}: {source}"),
            Kind::NotFound { id } => write!(f, "queue file {id}: no such message"),
            Kind::Panicked { shard } => write!(f, "queue shard {shard}: writer panicked"),
            Kind::Damaged { shard, detail } => {
                write!(f, "queue shard {shard} is damaged: {detail}")
            }
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Storage { source, .. } => Some(source),
            Kind::Codec { source, .. } => Some(source),
            Kind::Directory { source, .. } => Some(source),
            Kind::Closed | Kind::NotFound { .. } | Kind::Panicked { .. } | Kind::Damaged { .. } => {
                None
            }
        }
    }
}

impl QueueError {
    /// A copy of a batch's error for each of its messages. redb's errors
    /// are not `Clone`, so the copy keeps the text and whether the disk was
    /// full.
    pub(crate) fn from_shared(e: &QueueError) -> Self {
        let io = std::io::Error::new(
            if e.is_storage_full() {
                std::io::ErrorKind::StorageFull
            } else {
                std::io::ErrorKind::Other
            },
            e.to_string(),
        );
        Self::storage("batch commit", redb::Error::Io(io))
    }
}
