//! Message content on its way out: the part stored with the envelope, and
//! for a large message the rest, read from its content file as it is sent
//! (see [`content_file`](crate::content_file) for how that file is
//! written).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// How much of a content file one read takes.
const READ_CHUNK: usize = 256 * 1024;

/// A message's content as a delivery agent gets it: cheap to clone.
///
/// A small message is all in memory ([`head`](Self::head)). A large one
/// has its first [`INLINE_CONTENT_LIMIT`](crate::INLINE_CONTENT_LIMIT)
/// octets there — the `Received:` header and the header section — and the
/// rest in its content file, which [`reader`](Self::reader) streams without
/// holding it.
#[derive(Debug, Clone)]
pub struct Content {
    head: Arc<Vec<u8>>,
    rest: Option<Arc<RestFile>>,
}

/// The part of a large message in its content file.
#[derive(Debug)]
struct RestFile {
    path: PathBuf,
    size: u64,
    crc32: u32,
}

impl Content {
    /// Content held in memory in full.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            head: Arc::new(bytes.into()),
            rest: None,
        }
    }

    /// The head as stored, and the rest in `path` (`size` octets whose
    /// CRC-32 is `crc32`).
    pub(crate) fn spooled(head: Vec<u8>, path: PathBuf, size: u64, crc32: u32) -> Self {
        Self {
            head: Arc::new(head),
            rest: Some(Arc::new(RestFile { path, size, crc32 })),
        }
    }

    /// The size in octets, as stored.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.rest.as_ref().map_or(0, |r| r.size)
    }

    /// Whether there is no content at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part in memory: everything, unless [`is_whole`](Self::is_whole)
    /// says otherwise; for a large message, its first octets, which hold
    /// its header section.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Whether [`head`](Self::head) is the whole content.
    pub fn is_whole(&self) -> bool {
        self.rest.is_none()
    }

    /// The whole content in memory, for the rare transformation that needs
    /// all of it at once (an 8BITMIME downgrade). Bounded by the message's
    /// size, which `message_size_limit` bounded on receipt.
    pub async fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut reader = self.reader();
        let mut all = Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// Reads the content from its start, one chunk at a time.
    pub fn reader(&self) -> ContentReader {
        ContentReader {
            content: self.clone(),
            state: ReadState::Head,
        }
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Self::from_bytes(bytes)
    }
}

/// Reads a [`Content`] in chunks: the head, then the content file in
/// reads of 256 KiB, each on the blocking pool. The file's CRC-32 is
/// checked as it is read: the chunk that ends it comes back as an error
/// if the file does not match, so a sender that writes the end of the
/// message only after `next_chunk` returned `None` never sends a damaged
/// one as complete.
#[derive(Debug)]
pub struct ContentReader {
    content: Content,
    state: ReadState,
}

#[derive(Debug)]
enum ReadState {
    Head,
    File {
        file: Option<std::fs::File>,
        left: u64,
        crc: crc32fast::Hasher,
    },
    Done,
    /// An error was returned: every later call returns it again, so no
    /// caller can take a failed read for the end of the content.
    Failed(std::io::ErrorKind, String),
}

impl ContentReader {
    /// The next chunk; `None` at the end.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Arc<Vec<u8>>>> {
        let read = self.read_chunk().await;
        if let Err(e) = &read {
            self.state = ReadState::Failed(e.kind(), e.to_string());
        }
        read
    }

    async fn read_chunk(&mut self) -> std::io::Result<Option<Arc<Vec<u8>>>> {
        loop {
            match &mut self.state {
                ReadState::Head => {
                    self.state = match &self.content.rest {
                        None => ReadState::Done,
                        Some(rest) => ReadState::File {
                            file: None,
                            left: rest.size,
                            crc: crc32fast::Hasher::new(),
                        },
                    };
                    if !self.content.head.is_empty() {
                        return Ok(Some(self.content.head.clone()));
                    }
                }
                ReadState::Done => return Ok(None),
                ReadState::Failed(kind, text) => {
                    return Err(std::io::Error::new(*kind, text.clone()));
                }
                ReadState::File { file, left, crc } => {
                    let rest = self.content.rest.clone().expect("a file state has a file");
                    if *left == 0 {
                        let computed = std::mem::take(crc).finalize();
                        self.state = ReadState::Done;
                        if computed != rest.crc32 {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "content file {}: checksum mismatch (CRC-32 stored {:08x}, \
                                     computed {computed:08x})",
                                    rest.path.display(),
                                    rest.crc32
                                ),
                            ));
                        }
                        return Ok(None);
                    }
                    let want = usize::try_from(*left).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                    let open = file.take();
                    let path = rest.path.clone();
                    let (opened, chunk) = tokio::task::spawn_blocking(move || {
                        let mut f = match open {
                            Some(f) => f,
                            None => std::fs::File::open(&path)?,
                        };
                        let mut chunk = vec![0; want];
                        f.read_exact(&mut chunk).map_err(|e| {
                            std::io::Error::new(
                                e.kind(),
                                format!("content file {}: {e}", path.display()),
                            )
                        })?;
                        Ok::<_, std::io::Error>((f, chunk))
                    })
                    .await
                    .map_err(std::io::Error::other)??;
                    *file = Some(opened);
                    *left -= want as u64;
                    crc.update(&chunk);
                    return Ok(Some(Arc::new(chunk)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spooled_content_reads_head_then_file_and_checks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rest");
        let rest: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &rest).unwrap();
        let content = Content::spooled(
            b"head".to_vec(),
            path.clone(),
            rest.len() as u64,
            crc32fast::hash(&rest),
        );
        assert_eq!(content.len(), 4 + rest.len() as u64);
        assert!(!content.is_whole());
        let all = content.to_vec().await.unwrap();
        assert_eq!(&all[..4], b"head");
        assert_eq!(&all[4..], &rest[..]);

        // A damaged file fails at its end, not before.
        let mut damaged = rest.clone();
        damaged[300_000] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let mut reader = content.reader();
        let mut chunks = 0;
        let err = loop {
            match reader.next_chunk().await {
                Ok(Some(_)) => chunks += 1,
                Ok(None) => panic!("a damaged file read as complete"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            chunks, 4,
            "head and three file chunks came before the error"
        );
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(reader.next_chunk().await.is_err(), "the failure sticks");

        // A file cut short is an error too.
        std::fs::write(&path, &rest[..1000]).unwrap();
        assert!(content.to_vec().await.is_err());
    }
}
