//! One mail transaction on an open session, in RFC 5321's order: MAIL,
//! RCPT for each recipient, DATA, the content (pipelined when the server
//! offers PIPELINING), with the parameters the server supports.

use std::borrow::Cow;
use std::time::Duration;

use towerpost_protocol::{Address, DataEncoder, EhloCapabilities};
use towerpost_queue::{Content, DeliveryRecipient, DeliveryRequest, Outcome};

use super::SmtpClient;
use super::session::{Failure, Session, read_reply, reply_failure, send};

impl SmtpClient {
    /// One mail transaction. Returns the outcomes and whether the session
    /// can be reused.
    pub(super) async fn transaction(
        &self,
        session: &mut Session,
        req: &DeliveryRequest,
    ) -> (Vec<Outcome>, bool) {
        let n = req.recipients.len();
        let host = format!("{}[{}]", session.host, session.peer.ip());
        let content = match self.content_for(&session.features, &host, req).await {
            Ok(content) => content,
            Err(refused) => return (vec![refused.outcome(); n], true),
        };
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        match self.exchange(session, req, &content, &mut outcomes).await {
            Ok(sent) => {
                let out = outcomes
                    .into_iter()
                    .map(|o| o.unwrap_or_else(|| sent.clone()))
                    .collect();
                (out, true)
            }
            Err(Abort { failure, reusable }) => (fill(outcomes, &failure), reusable),
        }
    }

    /// The content as this server can take it, or why it cannot.
    ///
    /// RFC 6531 §3.4: mail that needs SMTPUTF8 (non-ASCII addresses, or
    /// submitted with SMTPUTF8 and carrying UTF-8 headers) cannot go to a
    /// server without it; Postfix bounces it so, and so do we (no RFC 6857
    /// downgrade). RFC 6152 §3: 8-bit content for a server without
    /// 8BITMIME is converted to 7-bit, or bounced when that cannot be done.
    /// Only that conversion reads a large message whole; anything else is
    /// streamed from the queue.
    async fn content_for(
        &self,
        offered: &EhloCapabilities,
        host: &str,
        req: &DeliveryRequest,
    ) -> Result<Content, Failure> {
        // A large message's head holds its header section.
        let non_ascii = !req.sender.as_ref().is_none_or(Address::is_ascii)
            || req.recipients.iter().any(|r| !r.address.is_ascii())
            || (req.smtputf8 && !header_section(req.content.head()).is_ascii());
        if non_ascii && !offered.smtputf8 {
            return Err(Failure::hard(
                "5.6.7",
                format!("SMTPUTF8 is required, but was not offered by host {host}"),
            ));
        }
        if offered.eight_bit_mime || !self.settings.mime_output_conversion {
            return Ok(req.content.clone());
        }
        let whole;
        let all: &[u8] = if req.content.is_whole() {
            req.content.head()
        } else {
            whole = req.content.to_vec().await.map_err(unreadable)?;
            &whole
        };
        match crate::delivery::downgrade::to_7bit(all) {
            Ok(Cow::Borrowed(_)) => Ok(req.content.clone()),
            Ok(Cow::Owned(converted)) => Ok(Content::from_bytes(converted)),
            Err(crate::delivery::downgrade::Impossible(why)) => Err(Failure::hard(
                "5.6.3",
                format!(
                    "host {host} does not offer 8BITMIME, and the message cannot be \
                     converted to 7-bit: {why}"
                ),
            )),
        }
    }

    /// MAIL, RCPT, DATA and the content, in that order; with PIPELINING the
    /// commands up to DATA go in one write (RFC 2920 §3.1) and their
    /// replies are read in order. Refused recipients get their outcome in
    /// `outcomes`; the others get the returned one.
    async fn exchange(
        &self,
        session: &mut Session,
        req: &DeliveryRequest,
        content: &Content,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<Outcome, Abort> {
        let s = &self.settings;
        let pipelining = session.features.pipelining;
        let mail = mail_command(req, &session.features, content.len());
        let rcpts: Vec<String> = req
            .recipients
            .iter()
            .map(|r| rcpt_command(r, &session.features))
            .collect();
        if pipelining {
            let mut batch = mail.into_bytes();
            for line in &rcpts {
                batch.extend_from_slice(line.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            session.write(&batch, s.mail_timeout, "MAIL FROM").await?;
        } else {
            session
                .write(mail.as_bytes(), s.mail_timeout, "MAIL FROM")
                .await?;
        }
        let reply = session.reply(s.mail_timeout, "MAIL FROM").await?;
        let refused_mail = (!reply.is_positive())
            .then(|| reply_failure(session, &reply, "MAIL FROM command", true));
        let mut accepted = 0;
        for (line, outcome) in rcpts.iter().zip(outcomes.iter_mut()) {
            if !pipelining {
                if refused_mail.is_some() {
                    break;
                }
                session
                    .write(line.as_bytes(), s.rcpt_timeout, "RCPT TO")
                    .await?;
            }
            let reply = session.reply(s.rcpt_timeout, "RCPT TO").await?;
            if refused_mail.is_some() {
                continue; // pipelined RCPTs after a refused MAIL
            }
            if reply.is_positive() {
                accepted += 1;
            } else {
                *outcome = Some(reply_failure(session, &reply, "RCPT TO command", true).outcome());
            }
        }
        if let Some(failure) = refused_mail {
            if pipelining {
                let _ = read_reply(session, s.data_init_timeout).await; // the DATA reply
            }
            return Err(self.abandon(session, failure).await);
        }
        if accepted == 0 {
            if pipelining {
                self.end_unwanted_data(session).await?;
            }
            let none = Failure::soft("4.0.0", "no recipient accepted".into());
            return Err(self.abandon(session, none).await);
        }
        if !pipelining {
            session
                .write(b"DATA\r\n", s.data_init_timeout, "DATA")
                .await?;
        }
        let reply = session.reply(s.data_init_timeout, "DATA").await?;
        if reply.code() != 354 {
            let failure = reply_failure(session, &reply, "DATA command", true);
            return Err(self.abandon(session, failure).await);
        }
        send_content(session, content, s.data_xfer_timeout).await?;
        let reply = session.reply(s.data_done_timeout, "end of data").await?;
        if !reply.is_positive() {
            return Err(Abort {
                failure: reply_failure(session, &reply, "end of DATA command", true),
                reusable: true,
            });
        }
        let dsn = reply
            .enhanced_code()
            .map_or_else(|| "2.0.0".to_owned(), |c| c.to_string());
        Ok(Outcome::Sent {
            dsn,
            reply: reply.to_string(),
        })
    }

    /// With no recipient accepted, the pipelined DATA still gets a reply.
    /// A server that answers it with 354 anyway (against RFC 2920 §3.1)
    /// now reads content: end it empty, or the RSET would be content.
    async fn end_unwanted_data(&self, session: &mut Session) -> Result<(), Abort> {
        let s = &self.settings;
        let reply = session.reply(s.data_init_timeout, "DATA").await?;
        if reply.code() != 354 {
            return Ok(());
        }
        let ended = send(session, b".\r\n", s.data_xfer_timeout).await.is_ok()
            && read_reply(session, s.data_done_timeout).await.is_ok();
        if ended {
            Ok(())
        } else {
            Err(Failure::soft("4.0.0", "no recipient accepted".into()).into())
        }
    }

    /// Gives up the transaction with `failure`, keeping the session when it
    /// answers RSET.
    async fn abandon(&self, session: &mut Session, failure: Failure) -> Abort {
        let reusable = reset(session, self.settings.helo_timeout).await;
        Abort { failure, reusable }
    }
}

/// A transaction that ended before the content was accepted: the failure
/// for every recipient not yet decided, and whether the session is still
/// usable. A lost connection (a [`Failure`] from a step) is not.
struct Abort {
    failure: Failure,
    reusable: bool,
}

impl From<Failure> for Abort {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            reusable: false,
        }
    }
}

/// `MAIL FROM` with the parameters the server offers to take: SIZE
/// (RFC 1870) of what is sent, BODY=8BITMIME (RFC 6152) and SMTPUTF8
/// (RFC 6531) as received, RET and ENVID (RFC 3461).
fn mail_command(req: &DeliveryRequest, offered: &EhloCapabilities, size: u64) -> String {
    let sender = req.sender.as_ref().map_or("", Address::as_str);
    let mut line = format!("MAIL FROM:<{sender}>");
    if offered.size.is_some() {
        line.push_str(&format!(" SIZE={size}"));
    }
    if offered.eight_bit_mime && req.eight_bit_mime {
        line.push_str(" BODY=8BITMIME");
    }
    if offered.smtputf8 && req.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if offered.dsn {
        if let Some(ret) = req.ret {
            line.push_str(&format!(" RET={ret}"));
        }
        if let Some(envid) = &req.envid {
            line.push_str(&format!(" ENVID={envid}"));
        }
    }
    line.push_str("\r\n");
    line
}

/// `RCPT TO` with NOTIFY and ORCPT (RFC 3461) when the server offers DSN.
fn rcpt_command(recipient: &DeliveryRecipient, offered: &EhloCapabilities) -> String {
    let mut line = format!("RCPT TO:<{}>", recipient.address);
    if offered.dsn {
        if let Some(notify) = &recipient.notify {
            line.push_str(&format!(" NOTIFY={notify}"));
        }
        if let Some(orcpt) = &recipient.orcpt {
            line.push_str(&format!(" ORCPT={orcpt}"));
        }
    }
    line.push_str("\r\n");
    line
}

/// Outcomes not yet decided get `f`.
fn fill(outcomes: Vec<Option<Outcome>>, f: &Failure) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| f.outcome()))
        .collect()
}

/// RSET after a failed transaction; the session is reusable if it answers.
async fn reset(session: &mut Session, timeout: Duration) -> bool {
    send(session, b"RSET\r\n", timeout).await.is_ok()
        && read_reply(session, timeout)
            .await
            .is_ok_and(|r| r.is_positive())
}

/// Sends the content dot-stuffed, in writes of about [`SEND_CHUNK`], and
/// the end of data only once all of it was read and found intact: a
/// content file that cannot be read, or fails its checksum, ends the
/// session without the final dot, so the server never takes part of a
/// message for the whole.
async fn send_content(
    session: &mut Session,
    content: &Content,
    timeout: Duration,
) -> Result<(), Abort> {
    let mut reader = content.reader();
    let mut encoder = DataEncoder::new();
    let mut out = Vec::with_capacity(SEND_CHUNK + SEND_CHUNK / 32);
    loop {
        let chunk = reader.next_chunk().await.map_err(|e| Abort {
            failure: unreadable(e),
            reusable: false,
        })?;
        let Some(chunk) = chunk else { break };
        for piece in chunk.chunks(SEND_CHUNK) {
            encoder.encode(piece, &mut out);
            if out.len() >= SEND_CHUNK {
                session.write(&out, timeout, "message body").await?;
                out.clear();
            }
        }
    }
    encoder.finish(&mut out);
    session.write(&out, timeout, "message body").await?;
    Ok(())
}

/// How much dot-stuffed content one write sends.
const SEND_CHUNK: usize = 64 * 1024;

/// A queued message that cannot be read: deferred, and the error logged.
fn unreadable(e: std::io::Error) -> Failure {
    tracing::error!(target: "towerpost::smtp", "cannot read queued content: {e}");
    Failure::soft("4.3.0", format!("cannot read the queued message: {e}"))
}

/// The header section of stored content: up to the first empty line (none
/// when the content starts with one).
fn header_section(content: &[u8]) -> &[u8] {
    if content.starts_with(b"\r\n") {
        return b"";
    }
    memchr::memmem::find(content, b"\r\n\r\n").map_or(content, |i| &content[..i + 2])
}

#[cfg(test)]
mod tests {

    use towerpost_protocol::{Nexthop, Ret};
    use towerpost_queue::QueueId;

    use super::*;

    fn request(sender: Option<&str>) -> DeliveryRequest {
        DeliveryRequest {
            queue_id: QueueId::from_u64(1),
            transport: "smtp".into(),
            nexthop: Nexthop::domain("example.test"),
            sender: sender.map(|s| Address::parse(s).unwrap()),
            recipients: vec![DeliveryRecipient {
                address: Address::parse("rcpt@example.test").unwrap(),
                notify: Some("SUCCESS,DELAY".parse().unwrap()),
                orcpt: Some("rfc822;orig@example.test".into()),
            }],
            content: towerpost_queue::Content::from_bytes(b"Subject: t\r\n\r\nbody\r\n".to_vec()),
            eight_bit_mime: true,
            smtputf8: true,
            ret: Some(Ret::Headers),
            envid: Some("env+2Bid".into()),
        }
    }

    #[test]
    fn commands_carry_only_what_the_server_offers() {
        let req = request(Some("from@example.test"));
        let bare = EhloCapabilities::default();
        assert_eq!(
            mail_command(&req, &bare, 123),
            "MAIL FROM:<from@example.test>\r\n"
        );
        assert_eq!(
            rcpt_command(&req.recipients[0], &bare),
            "RCPT TO:<rcpt@example.test>\r\n"
        );
        let full = EhloCapabilities {
            size: Some(0),
            eight_bit_mime: true,
            smtputf8: true,
            dsn: true,
            ..EhloCapabilities::default()
        };
        assert_eq!(
            mail_command(&req, &full, 123),
            "MAIL FROM:<from@example.test> SIZE=123 BODY=8BITMIME SMTPUTF8 RET=HDRS \
             ENVID=env+2Bid\r\n"
        );
        assert_eq!(
            rcpt_command(&req.recipients[0], &full),
            "RCPT TO:<rcpt@example.test> NOTIFY=SUCCESS,DELAY \
             ORCPT=rfc822;orig@example.test\r\n"
        );
    }

    #[test]
    fn the_null_sender_is_sent_as_empty_brackets() {
        let req = request(None);
        assert_eq!(
            mail_command(&req, &EhloCapabilities::default(), 1),
            "MAIL FROM:<>\r\n"
        );
    }
}
