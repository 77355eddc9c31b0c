//! One SMTP connection: reads commands, keeps the session state machine,
//! sends each command through the service stack, and writes the replies.
//!
//! The state machine answers protocol sequence errors itself (`503 … need
//! MAIL command`), so policy layers only ever see commands that make sense
//! where they are. Everything a client controls is bounded: line lengths by
//! the protocol crate, message size by `message_size_limit`, time by
//! `smtpd_timeout` (per read, or per record with `smtpd_per_record_deadline`
//! and under stress), errors by `smtpd_hard_error_limit`; what all sessions
//! together hold by [`Load`].
//!
//! Why it is long: `dispatch` is the state machine, kept whole so every
//! command's sequence rule reads in one place; AUTH, STARTTLS, content and
//! BDAT are in their own files.

mod auth;
mod bdat;
mod content;
mod incoming;
mod load;
mod received;
mod starttls;
mod stats;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::util::BoxCloneService;
use tower::{Service, ServiceExt};
use towerpost_metrics::{CommandLabels, RefusedLabels, ResultLabels, class_label, verb_label};
use towerpost_protocol::{
    BareNewline, Command, CommandError, CommandReceiver, EnhancedCode, Frame, Reply,
};
use towerpost_queue::QueueId;

use crate::request::{RequestKind, SessionInfo, SmtpRequest, Transaction};
use crate::sasl::SharedAuthenticator;
use crate::tls::{ListenerTls, MaybeTls};
pub(crate) use load::MemoryHold;

use bdat::BdatTransfer;
pub use load::{Load, SessionSlot};
pub(crate) use received::rfc5322_date;
use received::write_received;
use stats::CommandStats;

/// The boxed service stack a connection talks to.
pub type SmtpService = BoxCloneService<SmtpRequest, Reply, Infallible>;

/// Where queue ids come from (the queue, or a test's counter).
pub type IdSource = Arc<dyn Fn() -> QueueId + Send + Sync>;

/// `smtpd_timeout` under stress (Postfix's `${stress?{10}:{300}}s`).
const STRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a connection needs besides its socket.
pub struct ConnectionParts {
    /// Whether STARTTLS is offered or TLS starts with the first byte.
    pub tls: Option<ListenerTls>,
    /// The client and listener.
    pub info: SessionInfo,
    /// The service stack every command goes through.
    pub service: SmtpService,
    /// The listener's settings.
    pub settings: Arc<SessionSettings>,
    /// Queue ids for accepted messages.
    pub ids: IdSource,
    /// Where a large message's content beyond its first
    /// [`INLINE_CONTENT_LIMIT`](towerpost_queue::INLINE_CONTENT_LIMIT)
    /// octets is written as it arrives: the queue's content files. Without
    /// (a session tested on its own), all of it is held in memory.
    pub content_files: Option<towerpost_queue::Queue>,
    /// What all sessions share: their count and their message memory.
    pub load: Arc<Load>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}

/// Session settings (built from the configuration).
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `myhostname`.
    pub myhostname: String,
    /// `smtpd_timeout`.
    pub timeout: Duration,
    /// `smtpd_helo_required`.
    pub helo_required: bool,
    /// `smtpd_hard_error_limit`.
    pub hard_error_limit: u32,
    /// `smtpd_soft_error_limit`.
    pub soft_error_limit: u32,
    /// `smtpd_error_sleep_time`.
    pub error_sleep_time: Duration,
    /// `smtpd_junk_command_limit`.
    pub junk_command_limit: u32,
    /// `smtpd_forbid_bare_newline`.
    pub bare_newline: BareNewline,
    /// `smtpd_forbid_unauth_pipelining`.
    pub forbid_unauth_pipelining: bool,
    /// `smtpd_command_line_limit`.
    pub command_line_limit: usize,
    /// `smtpd_text_line_limit`.
    pub text_line_limit: usize,
    /// `message_size_limit` (0 = unlimited).
    pub message_size_limit: u64,
    /// The password check when AUTH is enabled on this listener
    /// (`smtpd_sasl_auth_enable`); `None`: AUTH is not offered.
    pub sasl: Option<SharedAuthenticator>,
    /// `smtpd_tls_auth_only`: AUTH only under TLS.
    pub tls_auth_only: bool,
    /// `smtpd_tls_security_level = encrypt`: mail commands need TLS first.
    pub tls_required: bool,
    /// `smtpd_per_record_deadline`: `timeout` bounds a whole command line
    /// or DATA/BDAT transfer, not each read (always so under stress).
    pub per_record_deadline: bool,
    /// `smtpd_min_data_rate`: with deadlines, each byte of DATA or BDAT
    /// content extends the transfer's deadline by 1/rate seconds.
    pub min_data_rate: u64,
}

/// Why the connection ends.
enum Close {
    /// The client went away (EOF or I/O error).
    Lost,
    /// We sent a final reply (221, 421, 521, 554 synchronization).
    Done,
}

/// What the reader produced.
enum Input {
    Line(Vec<u8>, bool),
    TooLong,
}

/// A client connection.
pub struct Connection<IO> {
    io: MaybeTls<IO>,
    tls: Option<ListenerTls>,
    service: SmtpService,
    settings: Arc<SessionSettings>,
    ids: IdSource,
    content_files: Option<towerpost_queue::Queue>,
    load: Arc<Load>,
    shutdown: CancellationToken,
    /// The deadline of the record being read, when deadlines apply.
    deadline: Option<Instant>,
    /// Where the session is, for "timeout after EHLO" and "lost
    /// connection after DATA" as Postfix logs them.
    stage: &'static str,
    inbuf: BytesMut,
    out: Vec<u8>,
    receiver: CommandReceiver,
    info: Arc<SessionInfo>,
    txn: Option<Arc<Transaction>>,
    rcpt_attempts: usize,
    /// The BDAT transfer of this transaction, once one has started.
    bdat: Option<BdatTransfer>,
    errors: u32,
    junk: u32,
    stats: CommandStats,
    /// The stack accepted the connection (so it is told of its end).
    connected: bool,
}

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// A connection over `io`, served by `parts.service`.
    pub fn new(io: IO, parts: ConnectionParts) -> Self {
        let ConnectionParts {
            tls,
            mut info,
            service,
            settings,
            ids,
            content_files,
            load,
            shutdown,
        } = parts;
        info.starttls_offered = matches!(tls, Some(ListenerTls::StartTls(_)));
        info.auth_offered = settings.sasl.is_some() && !settings.tls_auth_only;
        Self {
            io: MaybeTls::Plain(io),
            tls,
            service,
            receiver: CommandReceiver::new(settings.command_line_limit),
            settings,
            ids,
            content_files,
            load,
            shutdown,
            deadline: None,
            stage: "connect",
            inbuf: BytesMut::with_capacity(4096),
            out: Vec::with_capacity(1024),
            info: Arc::new(info),
            txn: None,
            rcpt_attempts: 0,
            bdat: None,
            errors: 0,
            junk: 0,
            stats: CommandStats::default(),
            connected: false,
        }
    }

    /// Runs the session to its end.
    pub async fn run(mut self) {
        let metrics = towerpost_metrics::metrics();
        metrics.connections.inc();
        let _open = towerpost_metrics::Open::new(&metrics.connections_open);
        let client = self.info.client_name();
        tracing::info!(target: "towerpost::smtpd", "connect from {client}");
        let close = self.session().await;
        if let Close::Lost = close {
            tracing::info!(
                target: "towerpost::smtpd",
                "lost connection after {} from {client}",
                self.stage.to_ascii_uppercase()
            );
        }
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        if self.connected {
            let _ = self.call_kind(RequestKind::Disconnect).await;
        }
        tracing::info!(target: "towerpost::smtpd", "disconnect from {client}{}", self.stats);
    }

    async fn session(&mut self) -> Close {
        if let Some(ListenerTls::Implicit(acceptor)) = self.tls.clone()
            && let Err(close) = self.handshake(&acceptor).await
        {
            return close;
        }
        if self.settings.forbid_unauth_pipelining && self.talks_before_greeting() {
            tracing::info!(
                target: "towerpost::smtpd",
                "improper command pipelining before greeting from {}",
                self.info.client_name()
            );
            self.push(&sync_error());
            return Close::Done;
        }
        // The stack answers the connection: the banner, or a refusal from
        // a policy layer (too many connections).
        let greeting = self.call_kind(RequestKind::Connect).await;
        self.push(&greeting);
        if greeting.code() != 220 {
            towerpost_metrics::metrics()
                .connections_refused
                .get_or_create(&RefusedLabels {
                    reason: "client_limit",
                })
                .inc();
            return Close::Done;
        }
        self.connected = true;
        loop {
            if self.errors >= self.settings.hard_error_limit {
                let text = format!("{} Error: too many errors", self.settings.myhostname);
                self.push(&Reply::enhanced(421, EnhancedCode::new(4, 7, 0), text));
                return Close::Done;
            }
            let input = match self.next_line().await {
                Ok(input) => input,
                Err(close) => return close,
            };
            let close = match input {
                Input::TooLong => {
                    self.stats.record("unknown", false);
                    self.reply(CommandError::LineTooLong.reply()).await
                }
                Input::Line(line, bare_lf) => self.handle_line(&line, bare_lf).await,
            };
            if let Some(close) = close {
                return close;
            }
        }
    }

    /// Postfix's pre-greeting check: a client that talks before the
    /// banner is a spambot that does not wait for replies.
    fn talks_before_greeting(&mut self) -> bool {
        // One poll of the read, no waiting: "is anything here already?".
        // (A zero-length `tokio::time::timeout` would wait for the next
        // timer tick, a millisecond on every connection.) Dropping a
        // pending `read_buf` loses no data.
        use futures::FutureExt;
        matches!(
            self.io.read_buf(&mut self.inbuf).now_or_never(),
            Some(Ok(n)) if n > 0
        )
    }

    async fn handle_line(&mut self, line: &[u8], bare_lf: bool) -> Option<Close> {
        if bare_lf && self.settings.bare_newline == BareNewline::Reject {
            self.stats.record("unknown", false);
            let text = format!("{} Error: bare <LF> received", self.settings.myhostname);
            return self
                .reply(Reply::enhanced(550, EnhancedCode::new(5, 5, 2), text))
                .await;
        }
        let command = match Command::parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.stats.record("unknown", false);
                count_command("unknown", &e.reply());
                let close = matches!(e, CommandError::BdatSyntax);
                let r = self.reply(e.reply()).await;
                return if close { Some(Close::Done) } else { r };
            }
        };
        if self.settings.forbid_unauth_pipelining
            && !self.inbuf.is_empty()
            && (command.must_end_pipeline_group() || !self.info.esmtp)
            && !matches!(command, Command::Bdat { .. })
        {
            tracing::info!(
                target: "towerpost::smtpd",
                "improper command pipelining after {} from {}",
                command.verb().to_ascii_uppercase(),
                self.info.client_name()
            );
            self.stats.record(command.verb(), false);
            self.push(&sync_error());
            return Some(Close::Done);
        }
        self.dispatch(command).await
    }

    /// The state machine: one arm per verb.
    async fn dispatch(&mut self, command: Command) -> Option<Close> {
        let verb = command.verb();
        let e = EnhancedCode::new;
        let sequence_error = |text: &'static str| Reply::enhanced(503, e(5, 5, 1), text);
        // smtpd_tls_security_level = encrypt: Postfix's PRE_TLS commands
        // only, until the handshake.
        if self.settings.tls_required
            && !self.info.tls
            && !matches!(
                command,
                Command::Helo { .. }
                    | Command::Ehlo { .. }
                    | Command::StartTls
                    | Command::Noop
                    | Command::Quit
                    // Its octets must be read; MAIL was refused, so
                    // bdat_chunk discards them with 503.
                    | Command::Bdat { .. }
            )
        {
            let reply = Reply::enhanced(530, e(5, 7, 0), "Must issue a STARTTLS command first");
            return self.finish(verb, reply).await;
        }
        match &command {
            Command::Helo { host } | Command::Ehlo { host } => {
                self.count_junk();
                let esmtp = matches!(command, Command::Ehlo { .. });
                let host = host.clone();
                let reply = self.call(command).await;
                if reply.is_positive() {
                    // RFC 5321 §4.1.4: a new EHLO resets the transaction.
                    self.reset_transaction();
                    let info = Arc::make_mut(&mut self.info);
                    info.helo = Some(host);
                    info.esmtp = esmtp;
                }
                self.finish(verb, reply).await
            }
            Command::Mail { .. } => {
                if self.settings.helo_required && self.info.helo.is_none() {
                    return self
                        .finish(verb, sequence_error("Error: send HELO/EHLO first"))
                        .await;
                }
                if self.txn.is_some() {
                    return self
                        .finish(verb, sequence_error("Error: nested MAIL command"))
                        .await;
                }
                let Command::Mail { from, params } = command.clone() else {
                    unreachable!("matched above")
                };
                // What the session itself can tell: no room for the message
                // among those being received.
                let held = incoming::memory_for(params.size, self.content_files.is_some());
                if !self.load.has_room_for(held.max(1)) {
                    let reply = if self.load.beyond_budget(held) {
                        Reply::enhanced(552, e(5, 3, 4), "Message size exceeds fixed limit")
                    } else {
                        insufficient_resources()
                    };
                    self.log_reject("MAIL", &reply, None);
                    return self.finish(verb, reply).await;
                }
                let reply = self.call(command).await;
                if reply.is_positive() {
                    self.txn = Some(Arc::new(Transaction {
                        sender: from,
                        params,
                        recipients: Vec::new(),
                    }));
                    self.rcpt_attempts = 0;
                } else {
                    self.log_reject("MAIL", &reply, None);
                }
                self.finish(verb, reply).await
            }
            Command::Rcpt { to, params } => {
                let Some(txn) = &self.txn else {
                    return self
                        .finish(verb, sequence_error("Error: need MAIL command"))
                        .await;
                };
                if self.bdat.is_some() {
                    return self
                        .finish(verb, sequence_error("Error: RCPT after BDAT"))
                        .await;
                }
                if !to.is_ascii() && !txn.params.smtputf8 {
                    return self
                        .finish(verb, CommandError::Utf8Undeclared.reply())
                        .await;
                }
                self.rcpt_attempts += 1;
                let (to, params) = (to.clone(), params.clone());
                let reply = self.call(command).await;
                if reply.is_positive() {
                    if let Some(txn) = self.txn.as_mut() {
                        Arc::make_mut(txn).recipients.push((to, params));
                    }
                } else {
                    self.log_reject("RCPT", &reply, Some(to.as_str()));
                }
                self.finish(verb, reply).await
            }
            Command::Data => {
                if let Some(reply) = self.content_precondition(false) {
                    return self.finish(verb, reply).await;
                }
                let reply = self.call(command).await;
                if !reply.is_intermediate() {
                    return self.finish(verb, reply).await;
                }
                self.stats.record(verb, true);
                self.push(&reply);
                self.stage = "data";
                match self.receive_data().await {
                    Ok(reply) => {
                        self.stage = "end-of-message";
                        // Counted once, by the reply after the content.
                        count_command(verb, &reply);
                        self.reply(reply).await
                    }
                    Err(close) => Some(close),
                }
            }
            Command::Bdat { size, last } => {
                let (size, last) = (*size, *last);
                self.bdat_chunk(size, last).await
            }
            Command::Rset => {
                self.count_junk();
                self.reset_transaction();
                let reply = self.call(command).await;
                self.finish(verb, reply).await
            }
            Command::Noop | Command::Vrfy { .. } => {
                self.count_junk();
                let reply = self.call(command).await;
                self.finish(verb, reply).await
            }
            Command::Etrn { node } => {
                self.count_junk();
                // Postfix's order and replies (its ETRN errors carry no
                // enhanced code); the argument's syntax is checked before
                // any layer sees it, so layers get the bare site.
                if self.settings.helo_required && self.info.helo.is_none() {
                    return self
                        .finish(verb, Reply::new(503, "Error: send HELO/EHLO first"))
                        .await;
                }
                if self.txn.is_some() {
                    return self
                        .finish(verb, Reply::new(503, "Error: MAIL transaction in progress"))
                        .await;
                }
                let site = match towerpost_protocol::etrn_site(node) {
                    Ok(site) => site.to_owned(),
                    Err(e) => return self.finish(verb, e.reply()).await,
                };
                let reply = self.call(Command::Etrn { node: site }).await;
                self.finish(verb, reply).await
            }
            Command::Quit => {
                let reply = self.call(command).await;
                self.stats.record(verb, true);
                self.push(&reply);
                Some(Close::Done)
            }
            Command::StartTls => self.starttls(command).await,
            Command::Auth { .. } => self.auth(command).await,
            Command::Help => {
                let reply = self.call(command).await;
                self.finish(verb, reply).await
            }
        }
    }

    /// A DATA or BDAT transfer starts: with deadlines, it has
    /// `smtpd_timeout` plus what its bytes earn at `smtpd_min_data_rate`.
    fn start_transfer(&mut self) {
        self.deadline = self
            .deadlines()
            .then(|| Instant::now() + self.effective_timeout());
    }

    /// `bytes` of content arrived: the transfer's deadline moves on.
    fn credit_transfer(&mut self, bytes: usize) {
        let rate = self.settings.min_data_rate;
        if let Some(deadline) = self.deadline.as_mut()
            && rate > 0
            && bytes > 0
        {
            *deadline += Duration::from_secs_f64(bytes as f64 / rate as f64);
        }
    }

    /// Whether reads are bounded per record rather than per read.
    fn deadlines(&self) -> bool {
        self.settings.per_record_deadline || self.load.stressed()
    }

    /// `smtpd_timeout`, shortened under stress.
    fn effective_timeout(&self) -> Duration {
        if self.load.stressed() {
            self.settings.timeout.min(STRESS_TIMEOUT)
        } else {
            self.settings.timeout
        }
    }

    fn reset_transaction(&mut self) {
        self.txn = None;
        self.bdat = None;
        self.rcpt_attempts = 0;
    }

    /// Postfix: NOOP, VRFY, ETRN, RSET, HELO and EHLO beyond
    /// `smtpd_junk_command_limit` count as errors.
    fn count_junk(&mut self) {
        self.junk += 1;
        if self.junk > self.settings.junk_command_limit {
            self.errors += 1;
        }
    }

    fn log_reject(&self, verb: &str, reply: &Reply, rcpt: Option<&str>) {
        let from = self
            .txn
            .as_ref()
            .and_then(|t| t.sender.as_ref().map(|a| a.to_string()))
            .unwrap_or_default();
        let to = rcpt.map(|r| format!(" to=<{r}>")).unwrap_or_default();
        tracing::info!(
            target: "towerpost::smtpd",
            "NOQUEUE: reject: {verb} from {}: {reply}; from=<{from}>{to} proto={} helo=<{}>",
            self.info.client_name(),
            if self.info.esmtp { "ESMTP" } else { "SMTP" },
            self.info.helo.as_deref().unwrap_or(""),
        );
    }

    async fn call(&mut self, command: Command) -> Reply {
        self.call_kind(RequestKind::Command(command)).await
    }

    async fn call_kind(&mut self, kind: RequestKind) -> Reply {
        let request = SmtpRequest {
            session: self.info.clone(),
            transaction: self.txn.clone(),
            kind,
        };
        let Ok(service) = self.service.ready().await;
        let Ok(reply) = service.call(request).await;
        reply
    }

    /// Records the outcome of a command and queues its reply.
    async fn finish(&mut self, verb: &'static str, reply: Reply) -> Option<Close> {
        self.stage = verb;
        count_command(verb, &reply);
        self.stats
            .record(verb, reply.is_positive() || reply.is_intermediate());
        self.reply(reply).await
    }

    /// Queues a reply, applying the error count and the tarpit. As
    /// Postfix's "sleep-on-anything", once the errors (junk commands past
    /// `smtpd_junk_command_limit` among them) reach
    /// `smtpd_soft_error_limit`, every reply waits `smtpd_error_sleep_time`.
    async fn reply(&mut self, reply: Reply) -> Option<Close> {
        if reply.is_error() && !reply.closes_connection() {
            self.errors += 1;
        }
        if !reply.closes_connection()
            && self.errors >= self.settings.soft_error_limit
            && !self.settings.error_sleep_time.is_zero()
        {
            // Flush first, so the delay is felt before the next command
            // rather than hiding earlier replies.
            if self.flush().await.is_err() {
                return Some(Close::Lost);
            }
            tokio::time::sleep(self.settings.error_sleep_time).await;
        }
        self.push(&reply);
        reply.closes_connection().then_some(Close::Done)
    }

    fn push(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    /// Sends every pending reply (RFC 2920: before blocking on a read).
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.effective_timeout();
        let write = async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        };
        let r = tokio::time::timeout(timeout, write).await;
        self.out.clear();
        match r {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    async fn next_line(&mut self) -> Result<Input, Close> {
        // A command line is a record: its deadline starts when we begin
        // waiting for it.
        self.deadline = None;
        loop {
            match self.receiver.frame(&self.inbuf) {
                Frame::Line {
                    len,
                    consumed,
                    bare_lf,
                } => {
                    let line = self.inbuf[..len].to_vec();
                    self.inbuf.advance(consumed);
                    return Ok(Input::Line(line, bare_lf));
                }
                Frame::TooLong { consumed } => {
                    self.inbuf.advance(consumed);
                    return Ok(Input::TooLong);
                }
                Frame::Incomplete { consumed } => {
                    self.inbuf.advance(consumed);
                    let idle = self.txn.is_none() && !self.receiver.is_discarding();
                    self.read_more(idle).await?;
                }
            }
        }
    }

    /// Flushes pending replies, then reads more input. An idle session
    /// (no transaction) is told `421` when the server shuts down.
    async fn read_more(&mut self, idle: bool) -> Result<(), Close> {
        if self.flush().await.is_err() {
            return Err(Close::Lost);
        }
        if !self.deadlines() {
            // A deadline from a stress period that has passed must not
            // cut the record short when stress comes back.
            self.deadline = None;
        }
        let timeout = if self.deadlines() {
            let fresh = Instant::now() + self.effective_timeout();
            let deadline = *self.deadline.get_or_insert(fresh);
            deadline.saturating_duration_since(Instant::now())
        } else {
            self.settings.timeout
        };
        let shutdown = self.shutdown.clone();
        let read = tokio::time::timeout(timeout, self.io.read_buf(&mut self.inbuf));
        tokio::select! {
            r = read => match r {
                Ok(Ok(0)) | Ok(Err(_)) => Err(Close::Lost),
                Ok(Ok(_)) => Ok(()),
                Err(_) => {
                    let text = format!("{} Error: timeout exceeded", self.settings.myhostname);
                    tracing::info!(
                        target: "towerpost::smtpd",
                        "timeout after {} from {}",
                        self.stage.to_ascii_uppercase(),
                        self.info.client_name()
                    );
                    self.push(&Reply::enhanced(421, EnhancedCode::new(4, 4, 2), text));
                    Err(Close::Done)
                }
            },
            _ = shutdown.cancelled(), if idle => {
                let text = format!("{} Error: service shutting down", self.settings.myhostname);
                self.push(&Reply::enhanced(421, EnhancedCode::new(4, 3, 2), text));
                Err(Close::Done)
            }
        }
    }
}

/// Counts a command by verb and reply class, and an AUTH by result.
fn count_command(verb: &str, reply: &Reply) {
    let metrics = towerpost_metrics::metrics();
    metrics
        .commands
        .get_or_create(&CommandLabels {
            verb: verb_label(verb),
            class: class_label(reply.code()),
        })
        .inc();
    if verb == "auth" {
        let result = match reply.code() {
            235 => "success",
            535 => "failure",
            454 => "unavailable",
            _ => return, // out of sequence, not enabled: not an attempt
        };
        metrics
            .sasl_authentications
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

/// Client text made safe for a log line, as Postfix's `printable()`:
/// anything but printable ASCII (a newline could forge a whole line that
/// fail2ban believes) becomes `?`; at most 100 characters.
fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Grows `content` for `incoming` more octets by a quarter of its size at
/// a time (at least 64 KiB), so that its capacity, which the memory budget
/// counts, stays within a quarter of its length, without copying a large
/// message over and over.
pub(crate) fn make_room(content: &mut Vec<u8>, incoming: usize) {
    if content.capacity() - content.len() < incoming {
        let step = (content.len() / 4).max(64 * 1024).max(incoming);
        content.reserve_exact(step);
    }
}

/// Postfix's answer when resources run short (here: the memory that all
/// sessions' messages may hold, `smtpd_message_memory_limit`).
fn insufficient_resources() -> Reply {
    Reply::enhanced(
        452,
        EnhancedCode::new(4, 3, 1),
        "Insufficient system storage",
    )
}

fn sync_error() -> Reply {
    Reply::enhanced(
        554,
        EnhancedCode::new(5, 5, 0),
        "Error: SMTP protocol synchronization",
    )
}
