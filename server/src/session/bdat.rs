//! RFC 3030 BDAT: a transfer's state between chunks, and one chunk.
//!
//! A chunk's octets are always read, whatever the answer, so the command
//! stream stays in step. A transfer receives chunks until `LAST`, or
//! discards the rest after a refused chunk (Postfix's "Discarded N bytes
//! after earlier error") until `LAST` ends the transaction.

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite};
use towerpost_protocol::{BdatDecoder, Command, EnhancedCode, Reply};
use towerpost_queue::QueueId;

use super::{Close, Connection, MemoryHold, insufficient_resources, make_room};

/// Where a BDAT transfer is, once its first chunk was accepted.
pub(super) enum BdatTransfer {
    /// Chunks are stored.
    Receiving(BdatContent),
    /// A chunk was refused; the octets since then are counted and dropped.
    Discarding {
        /// Octets discarded since the refusal (not counting the refused
        /// chunk).
        discarded: u64,
    },
}

/// The message a transfer is receiving.
pub(super) struct BdatContent {
    decoder: BdatDecoder,
    id: QueueId,
    content: Vec<u8>,
    /// The memory `content` holds.
    memory: MemoryHold,
}

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// One BDAT chunk: always consumes its octets, whatever the answer.
    pub(super) async fn bdat_chunk(&mut self, size: u64, last: bool) -> Option<Close> {
        let e = EnhancedCode::new;
        self.stage = "bdat";
        let mut transfer = match self.bdat.take() {
            Some(transfer) => transfer,
            None => match self.begin_bdat(size, last).await {
                Ok(content) => BdatTransfer::Receiving(content),
                Err(refusal) => {
                    if let Err(close) = self.read_chunk(size, None).await {
                        return Some(close);
                    }
                    return self.finish("bdat", refusal).await;
                }
            },
        };
        let null = size == 0 && !last;
        let into = match &mut transfer {
            BdatTransfer::Receiving(content) if !null => Some(content),
            _ => None,
        };
        let out_of_memory = match self.read_chunk(size, into).await {
            Ok(out_of_memory) => out_of_memory,
            Err(close) => return Some(close),
        };
        let discarded = match transfer {
            BdatTransfer::Discarding { discarded } => discarded,
            BdatTransfer::Receiving(_) => 0,
        };
        let reply = if null || out_of_memory {
            // The rest is discarded: nothing more is held for it. BDAT
            // LAST ends the transaction, whatever the answer.
            if last {
                self.reset_transaction();
            } else {
                self.bdat = Some(BdatTransfer::Discarding { discarded });
            }
            if out_of_memory {
                insufficient_resources()
            } else {
                Reply::enhanced(551, e(5, 7, 1), "Null BDAT request")
            }
        } else {
            match transfer {
                BdatTransfer::Discarding { discarded } => {
                    let discarded = discarded + size;
                    self.after_refused_chunk(last, discarded);
                    let text = format!("Discarded {discarded} bytes after earlier error");
                    Reply::enhanced(551, e(5, 0, 0), text)
                }
                BdatTransfer::Receiving(content) if content.decoder.issues().too_big => {
                    self.after_refused_chunk(last, 0);
                    Reply::enhanced(552, e(5, 3, 4), "Chunk exceeds message size limit")
                }
                BdatTransfer::Receiving(content) if !last => {
                    self.bdat = Some(BdatTransfer::Receiving(content));
                    Reply::enhanced(250, e(2, 0, 0), format!("Ok: {size} bytes"))
                }
                BdatTransfer::Receiving(mut content) => {
                    content.decoder.finish(&mut content.content);
                    let issues = content.decoder.issues();
                    self.end_of_content(content.id, content.content, issues)
                        .await
                }
            }
        };
        self.finish("bdat", reply).await
    }

    /// The first chunk of a transfer: the transaction must be ready for
    /// content and the stack must accept the BDAT; the refusal otherwise.
    async fn begin_bdat(&mut self, size: u64, last: bool) -> Result<BdatContent, Reply> {
        if let Some(refusal) = self.content_precondition(true) {
            return Err(refusal);
        }
        let reply = self.call(Command::Bdat { size, last }).await;
        if !reply.is_positive() {
            return Err(reply);
        }
        let (id, content) = self.begin_content();
        Ok(BdatContent {
            decoder: BdatDecoder::new(
                self.settings.message_size_limit,
                self.settings.text_line_limit,
            ),
            id,
            content,
            memory: MemoryHold::new(&self.load),
        })
    }

    /// After a refused chunk, the transfer discards until `LAST`, which
    /// ends the transaction.
    fn after_refused_chunk(&mut self, last: bool, discarded: u64) {
        if last {
            self.reset_transaction();
        } else {
            self.bdat = Some(BdatTransfer::Discarding { discarded });
        }
    }

    /// Reads a chunk's `size` octets, into `into` when given, else
    /// dropping them. When the message outgrows the memory budget, its
    /// content is freed, the rest of the chunk dropped, and the answer is
    /// `true`.
    async fn read_chunk(
        &mut self,
        size: u64,
        mut into: Option<&mut BdatContent>,
    ) -> Result<bool, Close> {
        let mut skipper = BdatDecoder::new(0, usize::MAX);
        skipper.start_chunk(size);
        if let Some(content) = into.as_deref_mut() {
            content.decoder.start_chunk(size);
        }
        self.start_transfer();
        let mut out_of_memory = false;
        loop {
            let used = match into.as_deref_mut() {
                Some(c) => {
                    make_room(&mut c.content, self.inbuf.len());
                    let used = c.decoder.feed(&self.inbuf, Some(&mut c.content));
                    if !c.memory.cover(c.content.capacity() as u64) {
                        out_of_memory = true;
                        skipper = BdatDecoder::new(0, usize::MAX);
                        skipper.start_chunk(c.decoder.remaining());
                        c.content = Vec::new();
                        c.memory = MemoryHold::new(&self.load);
                        into = None;
                    }
                    used
                }
                None => skipper.feed(&self.inbuf, None),
            };
            self.inbuf.advance(used);
            self.credit_transfer(used);
            let remaining = match into.as_deref() {
                Some(c) => c.decoder.remaining(),
                None => skipper.remaining(),
            };
            if remaining == 0 {
                break;
            }
            self.read_more(false).await?;
        }
        self.deadline = None;
        Ok(out_of_memory)
    }
}
