//! Message content as it arrives (DATA or BDAT): in memory up to
//! [`INLINE_CONTENT_LIMIT`], and beyond that written to the message's
//! content file as it comes, so a session holds at most about twice that
//! much, whatever `message_size_limit` says (0 included).
//!
//! The head — the first [`INLINE_CONTENT_LIMIT`] octets, with the
//! `Received:` header and the header section — stays in memory, where
//! the service stack's layers can read and change it; the rest is on disk
//! before the stack sees the message.

use std::sync::Arc;

use towerpost_queue::{
    ContentWriter, INLINE_CONTENT_LIMIT, Queue, QueueError, QueueId, SpooledContent,
};

use super::MemoryHold;
use super::load::Load;

/// How much of the rest is gathered before one write to the file.
const WRITE_CHUNK: usize = 256 * 1024;

/// The most memory a message of `size` octets (its `SIZE=`, if declared)
/// holds while it is received: all of it in memory without content files,
/// else at most its head and one write's worth beyond (with the slack of
/// a buffer's growth).
pub(super) fn memory_for(size: Option<u64>, content_files: bool) -> u64 {
    let size = size.unwrap_or(0);
    if content_files {
        size.min((INLINE_CONTENT_LIMIT + WRITE_CHUNK + WRITE_CHUNK / 2) as u64)
    } else {
        size
    }
}

/// Content being received.
pub(super) struct IncomingContent {
    id: QueueId,
    head: Vec<u8>,
    /// Octets beyond the head, not yet written.
    spill: Vec<u8>,
    /// The content file, once the content outgrew the head.
    writer: Option<ContentWriter>,
    /// Where content files are made; without (tests of the session
    /// alone), all content stays in memory.
    files: Option<Queue>,
    memory: MemoryHold,
    load: Arc<Load>,
    /// Why the rest is read and dropped, once it is.
    failed: Option<Failed>,
    /// Octets written to the file or dropped (the rest is in `head` and
    /// `spill`).
    received: u64,
}

/// Why content could not be kept.
pub(super) enum Failed {
    /// The sessions' memory budget (`smtpd_message_memory_limit`) is spent.
    Memory,
    /// The content file could not be written.
    Storage(QueueError),
}

impl IncomingContent {
    /// Content of message `id`, starting with `head` (its `Received:`
    /// header).
    pub(super) fn new(id: QueueId, head: Vec<u8>, files: Option<Queue>, load: &Arc<Load>) -> Self {
        Self {
            id,
            received: 0,
            head,
            spill: Vec::new(),
            writer: None,
            files,
            memory: MemoryHold::new(load),
            load: load.clone(),
            failed: None,
        }
    }

    /// The queue id the content will be stored under.
    pub(super) fn id(&self) -> QueueId {
        self.id
    }

    /// Where the decoder writes next, with room for `incoming` octets.
    pub(super) fn buffer(&mut self, incoming: usize) -> &mut Vec<u8> {
        let buffer = if self.writer.is_some() {
            &mut self.spill
        } else {
            &mut self.head
        };
        if self.failed.is_none() {
            super::make_room(buffer, incoming);
        }
        buffer
    }

    /// After the decoder wrote to [`buffer`](Self::buffer): moves what
    /// outgrew the head to the content file, and checks the memory budget.
    pub(super) async fn settle(&mut self) {
        if self.failed.is_some() {
            let dropped = self.head.len() + self.spill.len();
            self.received += dropped as u64;
            self.head.clear();
            self.spill.clear();
            return;
        }
        if self.writer.is_none()
            && self.head.len() > INLINE_CONTENT_LIMIT
            && let Some(queue) = &self.files
        {
            self.writer = Some(queue.content_writer(self.id));
            self.spill
                .extend_from_slice(&self.head[INLINE_CONTENT_LIMIT..]);
            self.head.truncate(INLINE_CONTENT_LIMIT);
        }
        if self.spill.len() >= WRITE_CHUNK
            && let Some(writer) = &mut self.writer
        {
            let written = self.spill.len() as u64;
            if let Err(e) = writer.append(&mut self.spill).await {
                self.fail(Failed::Storage(e));
                return;
            }
            self.received += written;
        }
        let held = (self.head.capacity() + self.spill.capacity()) as u64;
        if !self.memory.cover(held) {
            self.fail(Failed::Memory);
        }
    }

    /// Gives up keeping the content: frees it, removes its file.
    fn fail(&mut self, why: Failed) {
        self.received += (self.head.len() + self.spill.len()) as u64;
        self.head = Vec::new();
        self.spill = Vec::new();
        self.writer = None;
        // Give the memory back now, not at the end of the data.
        self.memory = MemoryHold::new(&self.load);
        self.failed = Some(why);
    }

    /// Octets received so far, kept or not.
    pub(super) fn received(&self) -> u64 {
        self.received + (self.head.len() + self.spill.len()) as u64
    }

    /// Why the content is being dropped, and the octets received, once
    /// it is.
    pub(super) fn take_failure(&mut self) -> Option<(Failed, u64)> {
        let received = self.received();
        self.failed.take().map(|why| (why, received))
    }

    /// The end of the content: the head, and the durable content file of
    /// a large message; or why it was not kept. The memory hold comes
    /// back too, to be kept until the message is queued or refused.
    pub(super) async fn finish(
        mut self,
    ) -> Result<(Vec<u8>, Option<SpooledContent>, MemoryHold), (Failed, u64)> {
        let received = self.received();
        if let Some(why) = self.failed.take() {
            return Err((why, received));
        }
        let rest = match self.writer.take() {
            None => None,
            Some(mut writer) => {
                let done = match writer.append(&mut self.spill).await {
                    Ok(()) => writer.finish().await,
                    Err(e) => Err(e),
                };
                match done {
                    Ok(spooled) => Some(spooled),
                    Err(e) => return Err((Failed::Storage(e), received)),
                }
            }
        };
        Ok((self.head, rest, self.memory))
    }
}
