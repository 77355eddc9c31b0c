//! The control socket: how the CLI talks to a running server.
//!
//! A Unix stream socket at `<queue_directory>/control.sock`, mode 0666. The
//! client sends one JSON request line; the server answers with one JSON
//! line and closes. Reading the queue (`list`, `show`) is open to every
//! local user, as Postfix's `mailq` is; changing it (`hold`, `release`,
//! `delete`, `requeue`) is for root and the user the server runs as, as
//! Postfix's `postsuper` is. The peer is identified by SO_PEERCRED, not by
//! anything it says.
//!
//! Every local user can connect, so connections are bounded
//! (`control_limits.rs`): 8 per unprivileged uid and 32 for all of them,
//! the request line within 10 s, a submission within 300 s and within the
//! message memory SMTP sessions share. Root and the server's user are
//! never refused.
//!
//! Why one long file: both ends of the socket (the server's handler and the
//! CLI's client) and the request and response types they share, so a change
//! to the protocol is made in one place.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use towerpost_flush::{
    AuthorizedFlushUsers, FlushEvent, FlushOrigin, FlushProgress, FlushRequest, FlushResponse,
    FlushService, FlushTarget,
};
use towerpost_protocol::MailTime;
use towerpost_queue::{
    Envelope, Quarantined, Queue, QueueEntry, QueueId, QueueState, RecipientStatus,
};

use crate::control_limits::{Admission, REQUEST_TIMEOUT, SUBMIT_TIMEOUT};
use crate::listener::ServeError;
use crate::session::{Load, MemoryHold};
use crate::submit::{Submission, submit};
use crate::sysexits::{EX_UNAVAILABLE, EX_USAGE};
use std::sync::Arc;

/// The socket's file name inside the queue directory.
pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line accepted, so a local client cannot grow memory.
const MAX_REQUEST: u64 = 64 * 1024;

/// A request to the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlRequest {
    /// List the queue.
    List {
        /// Answer a page at a time ([`ControlResponse::Listed`] lines, then
        /// `Entries` with only the damaged records), so that neither side
        /// holds the whole queue. Without it, one `Entries` with every
        /// message, as servers before paging answered.
        #[serde(default)]
        pages: bool,
    },
    /// One message in full: envelope, recipients, next attempt.
    Show {
        /// The queue id.
        id: String,
    },
    /// Flush deferred mail (`postqueue -f`, `-s site`, `-i id`).
    Flush {
        /// What to flush, as the flush service takes it.
        target: FlushTarget,
        /// Answer once every flushed message was attempted.
        #[serde(default)]
        wait: bool,
        /// With `wait`: send a [`ControlResponse::Progress`] line as each
        /// message's attempt ends, before the answer.
        #[serde(default)]
        progress: bool,
    },
    /// Queue a message from a local user (`sendmail`); the content
    /// follows the request line, up to the end of the stream.
    Submit {
        /// `-f`, if given.
        sender: Option<String>,
        /// Recipient arguments.
        recipients: Vec<String>,
        /// `-t`.
        extract: bool,
    },
    /// qshape: recipients (or senders) by domain and age, for the
    /// messages in `states`.
    Shape {
        /// The states to count.
        states: Vec<QueueState>,
        /// By sender domain instead of recipient domain (qshape `-s`).
        #[serde(default)]
        senders: bool,
    },
    /// Change messages (`postsuper -h/-H/-d/-r`); `ids` may be `["ALL"]`.
    Change {
        /// What to do.
        action: QueueAction,
        /// Queue ids, or `ALL`.
        ids: Vec<String>,
    },
}

/// An operator's change to queued messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueAction {
    /// Put on hold: never retried until released (`postsuper -h`).
    Hold,
    /// Release from hold, due now (`postsuper -H`).
    Release,
    /// Delete (`postsuper -d`).
    Delete,
    /// Schedule now, as if new (`postsuper -r`).
    Requeue,
}

impl ControlRequest {
    /// Reads one request line as a client sends it (JSON); the error says
    /// what is wrong with it.
    pub fn parse(line: &str) -> Result<ControlRequest, serde_json::Error> {
        serde_json::from_str(line)
    }
}

impl QueueAction {
    /// The per-message line and the summary word, as postsuper prints them.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            QueueAction::Hold => ("placed on hold", "Placed on hold"),
            QueueAction::Release => ("released from hold", "Released from hold"),
            QueueAction::Delete => ("removed", "Deleted"),
            QueueAction::Requeue => ("requeued", "Requeued"),
        }
    }
}

/// The server's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlResponse {
    /// The queue's messages, and the damaged records moved aside.
    Entries {
        /// The messages, in arrival order.
        entries: Vec<QueueEntry>,
        /// Records whose envelope cannot be read.
        #[serde(default)]
        quarantined: Vec<Quarantined>,
    },
    /// One page of a paged listing, in id order; more lines follow, the
    /// last one `Entries`.
    Listed(Vec<QueueEntry>),
    /// One message.
    Message(QueueEntry),
    /// What a change did: ids changed, and ids not found.
    Changed {
        /// Ids that were changed.
        done: Vec<String>,
        /// Ids that are not in the queue (or malformed).
        missing: Vec<String>,
    },
    /// A flush started for this many messages.
    Flushed(usize),
    /// A waited-for flush: each message and what its attempt did.
    FlushedWait(Vec<(String, String)>),
    /// During a waited-for flush that asked for progress: one message's
    /// attempt ended. More lines follow, the last one the answer.
    Progress {
        /// Messages whose attempt ended so far, this one included.
        done: usize,
        /// Messages the flush scheduled.
        total: usize,
        /// Of `done`, those with a recipient deferred or returned.
        failed: usize,
        /// The message.
        id: String,
        /// What its attempt did.
        outcome: String,
    },
    /// A submitted message was queued under this id.
    Queued(String),
    /// The queue's shape.
    Shape(crate::queue_shape::QueueShape),
    /// The flush was refused; the text is postqueue's, the code its exit
    /// status.
    FlushRefused {
        /// The message, as postqueue prints it after `fatal: `.
        text: String,
        /// The sysexits code.
        code: u8,
    },
    /// The request failed; the text says why.
    Error(String),
    /// A temporary refusal (too busy): the client should try again
    /// (`sendmail` exits EX_TEMPFAIL, so the caller keeps the message).
    TryAgain(String),
}

/// The local flush path: `authorized_flush_users`, then the flush service.
pub type LocalFlush = AuthorizedFlushUsers<FlushService>;

/// The listening control socket.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    queue: Queue,
    flush: LocalFlush,
    submit: Arc<SubmitSettings>,
    /// The memory budget submissions share with SMTP sessions.
    load: Arc<Load>,
    admission: Arc<Admission>,
}

/// What local submission needs from the configuration.
#[derive(Debug, Clone)]
pub struct SubmitSettings {
    /// `myhostname`: completes bare local names.
    pub myhostname: String,
    /// `message_size_limit`.
    pub message_size_limit: u64,
}

/// The socket path for a queue directory.
pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join(SOCKET_NAME)
}

impl ControlServer {
    /// Binds the socket, replacing a stale one left by a crashed server.
    pub fn bind(
        queue_directory: &Path,
        queue: Queue,
        flush: LocalFlush,
        submit: SubmitSettings,
        load: Arc<Load>,
    ) -> Result<Self, ServeError> {
        let path = socket_path(queue_directory);
        let err = |source| ServeError::Control {
            path: path.display().to_string(),
            source,
        };
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another towerpost serves this queue directory",
            )));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
        Ok(Self {
            listener,
            path,
            queue,
            flush,
            submit: Arc::new(submit),
            load,
            admission: Arc::default(),
        })
    }

    /// Serves requests until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    let uid = stream.peer_cred().map(|c| c.uid()).ok();
                    let Some(admitted) = self.admission.admit(uid, uid.is_some_and(privileged))
                    else {
                        tracing::warn!(target: "towerpost::control",
                            "too many control connections from uid {}; refused",
                            uid.map_or("unknown".to_owned(), |u| u.to_string()));
                        tokio::spawn(refuse(stream));
                        continue;
                    };
                    let context = Handling {
                        queue: self.queue.clone(),
                        local_flush: self.flush.clone(),
                        submit: self.submit.clone(),
                        load: self.load.clone(),
                    };
                    tokio::spawn(async move {
                        match handle(stream, uid, context).await {
                            // The client went away (`mailq | head`).
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::BrokenPipe
                                        | std::io::ErrorKind::ConnectionReset
                                ) => {}
                            Err(e) => {
                                tracing::warn!(target: "towerpost::control", "control request: {e}");
                            }
                            Ok(()) => {}
                        }
                        drop(admitted);
                    });
                }
                Err(e) => {
                    tracing::warn!(target: "towerpost::control", "accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The uid this process runs as: the owner of `/proc/self` (no unsafe
/// `getuid` call needed).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// Whether a local user may change the queue: root or the server's user.
fn privileged(uid: u32) -> bool {
    uid == 0 || uid == own_uid()
}

/// The login name of `uid`, as the system's user database (NSS: files,
/// LDAP, …) has it, or `unknown` (Postfix's word for a uid without an
/// entry, which `authorized_flush_users` can match). The lookup may block
/// on a directory server, so it runs on the blocking pool.
pub async fn user_name(uid: u32) -> String {
    tokio::task::spawn_blocking(move || {
        uzers::get_user_by_uid(uid).map(|u| u.name().to_string_lossy().into_owned())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| "unknown".to_owned())
}

/// Runs a local flush request through `authorized_flush_users` and the
/// flush service, with postqueue's words and exit codes for refusals
/// (Postfix exits with EX_UNAVAILABLE even for a user who may not flush).
async fn flush(
    mut service: LocalFlush,
    uid: u32,
    target: FlushTarget,
    wait: bool,
    progress: Option<FlushProgress>,
) -> ControlResponse {
    use tower::{Service, ServiceExt};
    let name = match &target {
        FlushTarget::Site(name) | FlushTarget::QueueId(name) => name.clone(),
        FlushTarget::All => String::new(),
    };
    let request = FlushRequest {
        target,
        origin: FlushOrigin::Local {
            uid,
            user: user_name(uid).await,
        },
        wait,
        progress,
    };
    let refused = |text: String, code| ControlResponse::FlushRefused { text, code };
    let result = match service.ready().await {
        Ok(s) => s.call(request).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(FlushResponse::Started { messages }) => ControlResponse::Flushed(messages),
        Ok(FlushResponse::Finished(outcomes)) => ControlResponse::FlushedWait(outcomes),
        Ok(FlushResponse::NotAuthorized { user, uid }) => refused(
            format!("User {user}({uid}) is not allowed to flush the mail queue"),
            EX_UNAVAILABLE,
        ),
        Ok(FlushResponse::NotEligible { site }) => refused(
            format!("Flush service is not configured for destination \"{site}\""),
            EX_UNAVAILABLE,
        ),
        Ok(FlushResponse::InvalidSite) => refused(
            format!("Cannot flush mail queue - invalid destination: \"{name}\""),
            EX_UNAVAILABLE,
        ),
        Ok(FlushResponse::NoSuchMessage) => {
            refused(format!("Invalid request: \"{name}\""), EX_USAGE)
        }
        Err(e) => {
            tracing::warn!(target: "towerpost::control", "{e}");
            refused(
                "Cannot flush mail queue - mail system is down".into(),
                EX_UNAVAILABLE,
            )
        }
    }
}

/// What handling one request needs.
struct Handling {
    queue: Queue,
    local_flush: LocalFlush,
    submit: Arc<SubmitSettings>,
    load: Arc<Load>,
}

/// Answers a connection over the limits with an error, and closes.
async fn refuse(stream: UnixStream) {
    let response =
        ControlResponse::TryAgain("too many control connections; try again later".into());
    let Ok(mut out) = serde_json::to_vec(&response) else {
        return;
    };
    out.push(b'\n');
    let (_, mut write) = stream.into_split();
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        write.write_all(&out).await?;
        write.shutdown().await
    })
    .await;
}

/// Reads a submitted message to the end of the stream: at most `cap`
/// octets, within [`SUBMIT_TIMEOUT`], held against the memory all
/// messages being received share. `None` when that memory is spent.
async fn read_submission(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    cap: u64,
    memory: &mut MemoryHold,
) -> std::io::Result<Option<Vec<u8>>> {
    let read = async {
        let mut content = Vec::new();
        let mut limited = reader.take(cap);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = limited.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Some(content));
            }
            crate::session::make_room(&mut content, n);
            content.extend_from_slice(&chunk[..n]);
            if !memory.cover(content.capacity() as u64) {
                return Ok(None);
            }
        }
    };
    tokio::time::timeout(SUBMIT_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "submission timed out"))?
}

async fn handle(stream: UnixStream, uid: Option<u32>, context: Handling) -> std::io::Result<()> {
    let Handling {
        queue,
        local_flush,
        submit: submit_settings,
        load,
    } = context;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        (&mut reader).take(MAX_REQUEST).read_line(&mut line),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))??;
    let response = match ControlRequest::parse(&line) {
        Ok(ControlRequest::Change { action, .. }) if !uid.is_some_and(privileged) => {
            ControlResponse::Error(format!(
                "permission denied: only root and the queue owner may {} messages",
                format!("{action:?}").to_ascii_lowercase()
            ))
        }
        Ok(ControlRequest::Submit {
            sender,
            recipients,
            extract,
        }) => {
            // The message follows; one octet past the limit is enough to
            // know it is too big.
            let limit = submit_settings.message_size_limit;
            let cap = if limit == 0 { u64::MAX } else { limit + 1 };
            let mut memory = MemoryHold::new(&load);
            let Some(content) = read_submission(&mut reader, cap, &mut memory).await? else {
                let response = ControlResponse::TryAgain(
                    "insufficient system storage: too much mail is being received; try again later"
                        .into(),
                );
                let mut out = serde_json::to_vec(&response)?;
                out.push(b'\n');
                write.write_all(&out).await?;
                return write.shutdown().await;
            };
            let uid = uid.unwrap_or(u32::MAX);
            let submission = Submission {
                sender,
                recipients,
                extract,
                content,
            };
            match submit(
                &queue,
                submission,
                uid,
                &user_name(uid).await,
                &submit_settings.myhostname,
                limit,
            )
            .await
            {
                Ok(id) => ControlResponse::Queued(id.to_string()),
                Err(e) => ControlResponse::Error(e.to_string()),
            }
        }
        Ok(ControlRequest::Flush {
            target,
            wait,
            progress,
        }) => match uid {
            Some(uid) if wait && progress => {
                flush_with_progress(local_flush, uid, target, &mut write).await?
            }
            Some(uid) => flush(local_flush, uid, target, wait, None).await,
            None => ControlResponse::Error("cannot identify the requesting user".into()),
        },
        Ok(ControlRequest::List { pages: true }) => list_pages(&queue, &mut write).await?,
        Ok(request) => execute(&queue, request).await,
        Err(e) => ControlResponse::Error(format!("bad request: {e}")),
    };
    send_line(&mut write, &response).await?;
    tokio::time::timeout(SUBMIT_TIMEOUT, write.shutdown())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "reply not read in time"))?
}

/// Writes one response line; a reader that never reads must not keep its
/// place.
async fn send_line(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &ControlResponse,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(response)?;
    out.push(b'\n');
    tokio::time::timeout(SUBMIT_TIMEOUT, write.write_all(&out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "reply not read in time"))?
}

/// A waited-for flush that reports each message as its attempt ends, then
/// answers as [`flush`] does.
async fn flush_with_progress(
    service: LocalFlush,
    uid: u32,
    target: FlushTarget,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<ControlResponse> {
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let run = flush(service, uid, target, true, Some(FlushProgress(tx)));
    tokio::pin!(run);
    let (mut done, mut failed) = (0, 0);
    let mut report = |event: FlushEvent| {
        done += 1;
        if event.outcome.contains("deferred") || event.outcome.contains("bounced") {
            failed += 1;
        }
        ControlResponse::Progress {
            done,
            total: event.total,
            failed,
            id: event.id,
            outcome: event.outcome,
        }
    };
    let response = loop {
        tokio::select! {
            biased;
            Some(event) = events.recv() => send_line(write, &report(event)).await?,
            response = &mut run => break response,
        }
    };
    // Attempts that ended just before the answer.
    while let Ok(event) = events.try_recv() {
        send_line(write, &report(event)).await?;
    }
    Ok(response)
}

/// A paged listing: each page of the queue's walk as a
/// [`ControlResponse::Listed`] line, written as the client reads them, then
/// the answer with the damaged records.
async fn list_pages(
    queue: &Queue,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<ControlResponse> {
    let mut scan = queue.scan();
    loop {
        match scan.next_page().await {
            Ok(Some(page)) => send_line(write, &ControlResponse::Listed(page)).await?,
            Ok(None) => break,
            Err(e) => return Ok(ControlResponse::Error(e.to_string())),
        }
    }
    Ok(match queue.quarantined().await {
        Ok(quarantined) => ControlResponse::Entries {
            entries: Vec::new(),
            quarantined,
        },
        Err(e) => ControlResponse::Error(e.to_string()),
    })
}

/// Carries out a request on `queue`: by the server for the socket, and by
/// the CLI directly when no server runs.
pub async fn execute(queue: &Queue, request: ControlRequest) -> ControlResponse {
    match run_request(queue, request).await {
        Ok(r) => r,
        Err(e) => ControlResponse::Error(e.to_string()),
    }
}

async fn run_request(
    queue: &Queue,
    request: ControlRequest,
) -> Result<ControlResponse, towerpost_queue::QueueError> {
    Ok(match request {
        ControlRequest::List { .. } => ControlResponse::Entries {
            entries: queue.entries().await?,
            quarantined: queue.quarantined().await?,
        },
        ControlRequest::Submit { .. } => {
            ControlResponse::Error("submission needs the running server".into())
        }
        ControlRequest::Shape { states, senders } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let start = crate::queue_shape::ShapeBuilder::new(now, states, senders);
            let (shape, _damaged) = queue.fold(start, |b, _, e| b.add(&e)).await?;
            ControlResponse::Shape(shape.finish())
        }
        ControlRequest::Flush { .. } => ControlResponse::FlushRefused {
            text: "Cannot flush mail queue - mail system is down".into(),
            code: EX_UNAVAILABLE,
        },
        ControlRequest::Show { id } => match id.parse::<QueueId>() {
            Ok(qid) => match queue.envelope(qid).await? {
                Some(envelope) => ControlResponse::Message(QueueEntry { id: qid, envelope }),
                None => ControlResponse::Changed {
                    done: vec![],
                    missing: vec![id],
                },
            },
            Err(_) => ControlResponse::Changed {
                done: vec![],
                missing: vec![id],
            },
        },
        ControlRequest::Change { action, ids } => {
            let targets: Vec<String> = if ids.iter().any(|i| i.eq_ignore_ascii_case("ALL")) {
                // Ids only: a million envelopes need not be held at once.
                // The scan moves damaged records aside as it meets them.
                let mut ids = Vec::new();
                let mut scan = queue.scan();
                while let Some(page) = scan.next_page().await? {
                    ids.extend(page.iter().map(|e| e.id.to_string()));
                }
                ids
            } else {
                ids
            };
            let mut done = Vec::new();
            let mut missing = Vec::new();
            for text in targets {
                let Ok(id) = text.parse::<QueueId>() else {
                    missing.push(text);
                    continue;
                };
                let found = match action {
                    QueueAction::Delete => queue.delete(id).await?,
                    QueueAction::Hold => queue.modify(id, |e| e.state = QueueState::Hold).await?,
                    QueueAction::Release => {
                        queue
                            .modify(id, |e| {
                                if e.state == QueueState::Hold {
                                    e.state = QueueState::Deferred;
                                    e.next_attempt = 0;
                                }
                            })
                            .await?
                    }
                    QueueAction::Requeue => queue.modify(id, requeue).await?,
                };
                if found {
                    done.push(text);
                } else {
                    missing.push(text);
                }
            }
            ControlResponse::Changed { done, missing }
        }
    })
}

/// `postsuper -r`: due now, as if it had just arrived (a held message
/// stays held, as with Postfix).
fn requeue(e: &mut Envelope) {
    if e.state != QueueState::Hold {
        e.state = QueueState::Incoming;
        e.next_attempt = 0;
    }
}

/// Sends one request to a running server. `Ok(None)` means no server
/// listens on the socket.
pub async fn request(
    queue_directory: &Path,
    request: &ControlRequest,
) -> std::io::Result<Option<ControlResponse>> {
    request_with_body(queue_directory, request, &[]).await
}

/// Like [`request`], with `body` sent after the request line (a submitted
/// message).
pub async fn request_with_body(
    queue_directory: &Path,
    request: &ControlRequest,
    body: &[u8],
) -> std::io::Result<Option<ControlResponse>> {
    exchange(queue_directory, request, body, |_| Ok(())).await
}

/// Like [`request`], calling `on_interim` with each line that comes before
/// the answer ([`ControlResponse::Progress`], [`ControlResponse::Listed`]);
/// an error it returns ends the exchange with that error.
pub async fn request_with_progress(
    queue_directory: &Path,
    request: &ControlRequest,
    on_interim: impl FnMut(ControlResponse) -> std::io::Result<()>,
) -> std::io::Result<Option<ControlResponse>> {
    exchange(queue_directory, request, &[], on_interim).await
}

async fn exchange(
    queue_directory: &Path,
    request: &ControlRequest,
    body: &[u8],
    mut on_interim: impl FnMut(ControlResponse) -> std::io::Result<()>,
) -> std::io::Result<Option<ControlResponse>> {
    let path = socket_path(queue_directory);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.write_all(body).await?;
    write.shutdown().await?;
    let mut reader = BufReader::new(read);
    loop {
        let mut answer = String::new();
        if reader.read_line(&mut answer).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection without an answer",
            ));
        }
        let response: ControlResponse = serde_json::from_str(&answer)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        match response {
            ControlResponse::Progress { .. } | ControlResponse::Listed(_) => {
                on_interim(response)?;
            }
            answer => return Ok(Some(answer)),
        }
    }
}

/// `queue show`: the envelope and each recipient's state, readable.
pub fn format_show(entry: &QueueEntry) -> String {
    let e = &entry.envelope;
    let when = |secs: u64| MailTime::from_unix(i64::try_from(secs).unwrap_or(i64::MAX)).rfc5322();
    let mut out = format!(
        "queue_id: {}\nqueue_name: {}\narrival_time: {}\nsize: {}\nsender: {}\nclient: {}\nhelo: {}\n",
        entry.id,
        e.state.name(),
        when(e.arrival_time),
        e.size,
        crate::queue_list::shown_sender(e),
        e.client,
        e.helo,
    );
    if e.state == QueueState::Deferred {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        out.push_str(&format!(
            "next_attempt: {} (in {}s)\n",
            when(e.next_attempt),
            e.next_attempt.saturating_sub(now)
        ));
    }
    for r in &e.recipients {
        match &r.status {
            RecipientStatus::Pending => {
                out.push_str(&format!("recipient: {} (pending)\n", r.address))
            }
            RecipientStatus::Deferred { dsn, reason } => {
                out.push_str(&format!(
                    "recipient: {} (deferred, dsn={dsn}: {reason})\n",
                    r.address
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn user_names_come_from_the_user_database() {
        assert_eq!(user_name(0).await, "root");
        assert_eq!(user_name(4_000_000_000).await, "unknown");
    }
}
