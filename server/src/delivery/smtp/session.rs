//! One open SMTP session to a next hop: the stream, what the server
//! offered, and the command/response step every stage of the client uses,
//! with Postfix's wording when a step fails.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use towerpost_protocol::{EhloCapabilities, Reply, ReplyParser};
use towerpost_queue::Outcome;

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open session, ready for MAIL.
pub(in crate::delivery) struct Session {
    pub(super) stream: BufReader<Box<dyn Io>>,
    pub(in crate::delivery) host: String,
    pub(in crate::delivery) peer: SocketAddr,
    /// What the last EHLO reply offered (nothing after HELO).
    pub(in crate::delivery) features: EhloCapabilities,
    pub(super) idle_since: Instant,
    /// TLS is active.
    pub(in crate::delivery) tls: bool,
    /// Counted in `towerpost_smtp_sessions_open` while it lives.
    _open: towerpost_metrics::Open,
}

impl Session {
    /// A session on `stream`, before the greeting.
    pub(super) fn new(stream: Box<dyn Io>, host: String, peer: SocketAddr, tls: bool) -> Self {
        Self {
            stream: BufReader::new(stream),
            host,
            peer,
            features: EhloCapabilities::default(),
            idle_since: Instant::now(),
            tls,
            _open: towerpost_metrics::Open::new(
                &towerpost_metrics::metrics().outbound_sessions_open,
            ),
        }
    }

    /// Sends `command` (one or more lines) and reads the reply; a failure
    /// names the step as Postfix does ("sending RCPT TO", "receiving the
    /// RCPT TO reply").
    pub(super) async fn command(
        &mut self,
        command: &[u8],
        timeout: Duration,
        name: &str,
    ) -> Result<Reply, Failure> {
        self.write(command, timeout, name).await?;
        self.reply(timeout, name).await
    }

    /// Sends `bytes` without waiting for a reply (a pipelined command, the
    /// content).
    pub(super) async fn write(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
        name: &str,
    ) -> Result<(), Failure> {
        match send(self, bytes, timeout).await {
            Ok(()) => Ok(()),
            Err(e) => Err(stage_failure(self, e, &format!("sending {name}"))),
        }
    }

    /// Reads the reply to `name`.
    pub(super) async fn reply(&mut self, timeout: Duration, name: &str) -> Result<Reply, Failure> {
        match read_reply(self, timeout).await {
            Ok(reply) => Ok(reply),
            Err(e) => Err(stage_failure(
                self,
                e,
                &format!("receiving the {name} reply"),
            )),
        }
    }
}

/// A failure that ends the session; `reason` is Postfix-worded.
pub(in crate::delivery) struct Failure {
    pub(in crate::delivery) dsn: String,
    pub(in crate::delivery) reason: String,
    /// Permanent: bounce rather than defer.
    pub(in crate::delivery) permanent: bool,
    pub(in crate::delivery) diagnostic: Option<String>,
}

impl Failure {
    pub(in crate::delivery) fn soft(dsn: &str, reason: String) -> Self {
        Self {
            dsn: dsn.into(),
            reason,
            permanent: false,
            diagnostic: None,
        }
    }

    /// A permanent failure (the mail bounces), without a server reply.
    pub(super) fn hard(dsn: &str, reason: String) -> Self {
        Self {
            dsn: dsn.into(),
            reason,
            permanent: true,
            diagnostic: None,
        }
    }

    pub(super) fn outcome(&self) -> Outcome {
        if self.permanent {
            Outcome::Bounced {
                dsn: self.dsn.clone(),
                reason: self.reason.clone(),
                diagnostic: self.diagnostic.clone(),
            }
        } else {
            Outcome::Deferred {
                dsn: self.dsn.clone(),
                reason: self.reason.clone(),
            }
        }
    }
}

pub(in crate::delivery) async fn send(
    session: &mut Session,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let stream = session.stream.get_mut();
    match tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

pub(in crate::delivery) async fn read_reply(
    session: &mut Session,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let mut parser = ReplyParser::new();
    let read = async {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut session.stream)
                .take(towerpost_protocol::MAX_REPLY_LINE as u64 + 2)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            match parser.line(text) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

pub(super) fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Connection timed out".into(),
        _ => e.to_string(),
    }
}

/// Postfix's wording for a lost or stalled session.
pub(in crate::delivery) fn stage_failure(
    session: &Session,
    e: std::io::Error,
    stage: &str,
) -> Failure {
    let host = format!("{}[{}]", session.host, session.peer.ip());
    if e.kind() == std::io::ErrorKind::TimedOut {
        Failure::soft(
            "4.4.2",
            format!("conversation with {host} timed out while {stage}"),
        )
    } else {
        Failure::soft(
            "4.4.2",
            format!("lost connection with {host} while {stage}"),
        )
    }
}

/// A negative reply: 4xx defers, 5xx bounces (when `may_bounce`).
pub(in crate::delivery) fn reply_failure(
    session: &Session,
    reply: &Reply,
    command: &str,
    may_bounce: bool,
) -> Failure {
    let permanent = may_bounce && reply.code() >= 500;
    let dsn = reply
        .enhanced_code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("{}.0.0", reply.code() / 100));
    let text = reply.to_string();
    Failure {
        dsn,
        reason: format!(
            "host {}[{}] said: {text} (in reply to {command})",
            session.host,
            session.peer.ip()
        ),
        permanent,
        diagnostic: Some(text),
    }
}
