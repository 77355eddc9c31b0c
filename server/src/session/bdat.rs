//! RFC 3030 BDAT: a transfer's state between chunks, and one chunk.
//!
//! A chunk's octets are always read, whatever the answer, so the command
//! stream stays in step. A transfer receives chunks until `LAST`, or
//! discards the rest after a refused chunk (Postfix's "Discarded N bytes
//! after earlier error") until `LAST` ends the transaction.

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite};
use towerpost_protocol::{BdatDecoder, Command, EnhancedCode, Reply};

use super::incoming::IncomingContent;
use super::{Close, Connection};

/// Where a BDAT transfer is, once its first chunk was accepted.
pub(super) enum BdatTransfer {
    /// Chunks are stored.
    Receiving(Box<BdatContent>),
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
    content: IncomingContent,
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
                Ok(content) => BdatTransfer::Receiving(Box::new(content)),
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
            BdatTransfer::Receiving(content) if !null => Some(&mut **content),
            _ => None,
        };
        if let Err(close) = self.read_chunk(size, into).await {
            return Some(close);
        }
        let discarded = match &transfer {
            BdatTransfer::Discarding { discarded } => *discarded,
            BdatTransfer::Receiving(_) => 0,
        };
        let refused = match &mut transfer {
            // Whatever state the transfer was in, its content is dropped.
            _ if null => Some(Reply::enhanced(551, e(5, 7, 1), "Null BDAT request")),
            BdatTransfer::Receiving(c) => c
                .content
                .take_failure()
                .map(|(why, received)| self.content_refusal(&why, received)),
            BdatTransfer::Discarding { .. } => None,
        };
        let reply = if let Some(refusal) = refused {
            // The rest is discarded: nothing more is held for it. BDAT
            // LAST ends the transaction, whatever the answer.
            if last {
                self.reset_transaction();
            } else {
                self.bdat = Some(BdatTransfer::Discarding { discarded });
            }
            refusal
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
                    content.decoder.finish(content.content.buffer(2));
                    content.content.settle().await;
                    let issues = content.decoder.issues();
                    self.end_of_content(content.content, issues).await
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
        let (id, head) = self.begin_content();
        Ok(BdatContent {
            decoder: BdatDecoder::new(
                self.settings.message_size_limit,
                self.settings.text_line_limit,
            ),
            content: self.incoming(id, head),
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
    /// dropping them. Content that cannot be kept (the memory budget is
    /// spent, its file cannot be written) is read on and dropped; the
    /// caller sees it failed.
    async fn read_chunk(
        &mut self,
        size: u64,
        mut into: Option<&mut BdatContent>,
    ) -> Result<(), Close> {
        let mut skipper = BdatDecoder::new(0, usize::MAX);
        skipper.start_chunk(size);
        if let Some(content) = into.as_deref_mut() {
            content.decoder.start_chunk(size);
        }
        self.start_transfer();
        loop {
            let (used, remaining) = match into.as_deref_mut() {
                Some(c) => {
                    let buffer = c.content.buffer(self.inbuf.len());
                    let used = c.decoder.feed(&self.inbuf, Some(buffer));
                    c.content.settle().await;
                    (used, c.decoder.remaining())
                }
                None => {
                    let used = skipper.feed(&self.inbuf, None);
                    (used, skipper.remaining())
                }
            };
            self.inbuf.advance(used);
            self.credit_transfer(used);
            if remaining == 0 {
                break;
            }
            self.read_more(false).await?;
        }
        self.deadline = None;
        Ok(())
    }
}
