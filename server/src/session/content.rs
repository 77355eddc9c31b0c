//! Message content: whether it may start, the queue id and `Received:`
//! header it starts with, DATA up to the end-of-data line, and the end
//! of content, which refuses it or queues it.

use std::time::SystemTime;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite};
use towerpost_protocol::{ContentIssues, DataDecoder, EnhancedCode, Reply};
use towerpost_queue::QueueId;

use super::incoming::{Failed, IncomingContent};
use super::{Close, Connection, insufficient_resources, write_received};
use crate::request::{ReceivedMessage, RequestKind};

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Checks that message content may start (DATA, or the first BDAT).
    pub(super) fn content_precondition(&self, bdat: bool) -> Option<Reply> {
        let e = EnhancedCode::new;
        let Some(txn) = &self.txn else {
            return Some(Reply::enhanced(503, e(5, 5, 1), "Error: need MAIL command"));
        };
        if !bdat && self.bdat.is_some() {
            return Some(Reply::enhanced(503, e(5, 5, 1), "Error: DATA after BDAT"));
        }
        if txn.recipients.is_empty() {
            return Some(if self.rcpt_attempts == 0 {
                Reply::enhanced(503, e(5, 5, 1), "Error: need RCPT command")
            } else {
                Reply::enhanced(554, e(5, 5, 1), "Error: no valid recipients")
            });
        }
        None
    }

    /// Starts the message content: a queue id, and the `Received:` header.
    pub(super) fn begin_content(&self) -> (QueueId, Vec<u8>) {
        let id = (self.ids)();
        let txn = self.txn.as_ref().expect("checked by content_precondition");
        let mut content = Vec::with_capacity(8192);
        write_received(
            &mut content,
            &self.info,
            txn,
            &self.settings.myhostname,
            id,
            SystemTime::now(),
        );
        let sasl = match (&self.info.sasl_method, &self.info.auth) {
            (Some(method), Some(user)) => {
                format!(", sasl_method={method}, sasl_username={user}")
            }
            _ => String::new(),
        };
        tracing::info!(
            target: "towerpost::smtpd",
            "{id}: client={}{sasl}",
            self.info.client_name()
        );
        (id, content)
    }

    /// Reads DATA content up to the end-of-data line and queues it.
    pub(super) async fn receive_data(&mut self) -> Result<Reply, Close> {
        let (id, head) = self.begin_content();
        let mut content = self.incoming(id, head);
        let mut decoder = DataDecoder::new(
            self.settings.message_size_limit,
            self.settings.text_line_limit,
        );
        self.start_transfer();
        loop {
            let progress = decoder.feed(&self.inbuf, content.buffer(self.inbuf.len()));
            self.inbuf.advance(progress.consumed);
            self.credit_transfer(progress.consumed);
            content.settle().await;
            if progress.done {
                break;
            }
            self.read_more(false).await?;
        }
        self.deadline = None;
        Ok(self.end_of_content(content, decoder.issues()).await)
    }

    /// Content of message `id` as it arrives, starting with `head`.
    pub(super) fn incoming(&self, id: QueueId, head: Vec<u8>) -> IncomingContent {
        IncomingContent::new(id, head, self.content_files.clone(), &self.load)
    }

    /// The answer for content that could not be kept, logged as a reject.
    pub(super) fn content_refusal(&self, why: &Failed, received: u64) -> Reply {
        let reply = match why {
            // A message bigger than all the memory there is will never
            // fit: that is permanent, not a reason to retry for days.
            Failed::Memory
                if self.load.beyond_budget(super::incoming::memory_for(
                    Some(received),
                    self.content_files.is_some(),
                )) =>
            {
                Reply::enhanced(
                    552,
                    EnhancedCode::new(5, 3, 4),
                    "Message size exceeds fixed limit",
                )
            }
            Failed::Memory => insufficient_resources(),
            Failed::Storage(e) => {
                let reply = if e.is_storage_full() {
                    insufficient_resources()
                } else {
                    Reply::enhanced(
                        451,
                        EnhancedCode::new(4, 3, 0),
                        "Error: queue file write error",
                    )
                };
                tracing::warn!(target: "towerpost::smtpd", "{e}; replied {reply}");
                reply
            }
        };
        self.log_reject("END-OF-MESSAGE", &reply, None);
        reply
    }

    /// The end of DATA or `BDAT … LAST`: refuse the content or queue it.
    pub(super) async fn end_of_content(
        &mut self,
        content: IncomingContent,
        issues: ContentIssues,
    ) -> Reply {
        let id = content.id();
        let s = &self.settings;
        let reply = match issues.rejection(s.bare_newline, s.text_line_limit, &s.myhostname) {
            Some(reply) => {
                tracing::info!(
                    target: "towerpost::smtpd",
                    "{id}: reject: END-OF-MESSAGE from {}: {reply}",
                    self.info.client_name()
                );
                reply
            }
            None => match content.finish().await {
                Err((why, received)) => self.content_refusal(&why, received),
                Ok((content, rest, memory)) => {
                    // cleanup(8)'s line, which log readers join on.
                    tracing::info!(
                        target: "towerpost::cleanup",
                        "{id}: message-id=<{}>",
                        message_id(&content).unwrap_or_default()
                    );
                    let message = RequestKind::Message(ReceivedMessage { id, content, rest });
                    let reply = self.call_kind(message).await;
                    drop(memory); // held until the message is queued or refused
                    reply
                }
            },
        };
        if reply.is_positive() {
            let metrics = towerpost_metrics::metrics();
            metrics.messages_accepted.inc();
            let recipients = self.txn.as_ref().map_or(0, |t| t.recipients.len());
            metrics.recipients_accepted.inc_by(recipients as u64);
            // Postfix: "Forgive any previous client errors when a message
            // was received successfully."
            self.junk = 0;
            self.errors = 0;
        }
        self.reset_transaction();
        reply
    }
}

/// The first `Message-ID:` header's value without its angle brackets, as
/// log-safe text (printable ASCII, at most 250 characters); `None` without
/// one. Only the header section is read.
fn message_id(content: &[u8]) -> Option<String> {
    let mut lines = content.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // the end of the header section
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii_end()
            .eq_ignore_ascii_case(b"message-id")
        {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        // Folded onto continuation lines.
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
        {
            value.extend_from_slice(next.strip_suffix(b"\r").unwrap_or(next));
        }
        let value = value.trim_ascii();
        let value = value
            .strip_prefix(b"<")
            .and_then(|v| v.strip_suffix(b">"))
            .unwrap_or(value);
        return Some(
            value
                .iter()
                .take(250)
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_id_of_the_header_section_only() {
        let m = b"Received: from x\r\n\tby y\r\nMessage-ID: <1@example.test>\r\n\r\nbody\r\n";
        assert_eq!(message_id(m).as_deref(), Some("1@example.test"));
        let folded = b"message-id:\r\n <2@example.test>\r\n\r\n";
        assert_eq!(message_id(folded).as_deref(), Some("2@example.test"));
        let in_body = b"Subject: x\r\n\r\nMessage-ID: <3@example.test>\r\n";
        assert_eq!(message_id(in_body), None);
        let hostile = b"Message-ID: <a\x1b[31mb c>\r\n\r\n";
        assert_eq!(message_id(hostile).as_deref(), Some("a?[31mb?c"));
    }
}
