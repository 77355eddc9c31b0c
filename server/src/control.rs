//! The control socket: how the CLI talks to a running server.
//!
//! A Unix stream socket at `<queue_directory>/control.sock`, mode 0666. The
//! client sends one JSON request line; the server answers with one JSON
//! line and closes. Reading the queue (`list`, `show`) is open to every
//! local user, as Postfix's `mailq` is; changing it (`hold`, `release`,
//! `delete`, `requeue`) is for root and the user the server runs as, as
//! Postfix's `postsuper` is. The peer is identified by SO_PEERCRED, not by
//! anything it says.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use towerpost_flush::{
    AuthorizedFlushUsers, FlushOrigin, FlushRequest, FlushResponse, FlushService, FlushTarget,
};
use towerpost_queue::{
    Envelope, Quarantined, Queue, QueueEntry, QueueId, QueueState, RecipientStatus,
};

use crate::listener::ServeError;
use crate::submit::{Submission, submit};
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
    List,
    /// One message in full: envelope, recipients, next attempt.
    Show {
        /// The queue id.
        id: String,
    },
    /// Flush deferred mail (`postqueue -f`, `-s site`, `-i id`).
    Flush {
        /// `all`, `site` or `queue_id`.
        scope: String,
        /// The site or queue id (empty for `all`).
        #[serde(default)]
        name: String,
        /// Answer once every flushed message was attempted.
        #[serde(default)]
        wait: bool,
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
    /// A submitted message was queued under this id.
    Queued(String),
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
                    let queue = self.queue.clone();
                    let flush = self.flush.clone();
                    let submit = self.submit.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, queue, flush, submit).await {
                            tracing::warn!(target: "towerpost::control", "control request: {e}");
                        }
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
    scope: &str,
    name: String,
    wait: bool,
) -> ControlResponse {
    use tower::{Service, ServiceExt};
    const EX_USAGE: u8 = 64;
    const EX_UNAVAILABLE: u8 = 69;
    let target = match scope {
        "all" => FlushTarget::All,
        "site" => FlushTarget::Site(name.clone()),
        "queue_id" => FlushTarget::QueueId(name.clone()),
        other => return ControlResponse::Error(format!("unknown flush scope {other:?}")),
    };
    let request = FlushRequest {
        target,
        origin: FlushOrigin::Local {
            uid,
            user: user_name(uid).await,
        },
        wait,
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

async fn handle(
    stream: UnixStream,
    queue: Queue,
    local_flush: LocalFlush,
    submit_settings: Arc<SubmitSettings>,
) -> std::io::Result<()> {
    let uid = stream.peer_cred().map(|c| c.uid()).ok();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    (&mut reader).take(MAX_REQUEST).read_line(&mut line).await?;
    let response = match serde_json::from_str::<ControlRequest>(&line) {
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
            let mut content = Vec::new();
            (&mut reader).take(cap).read_to_end(&mut content).await?;
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
        Ok(ControlRequest::Flush { scope, name, wait }) => match uid {
            Some(uid) => flush(local_flush, uid, &scope, name, wait).await,
            None => ControlResponse::Error("cannot identify the requesting user".into()),
        },
        Ok(request) => execute(&queue, request).await,
        Err(e) => ControlResponse::Error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
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
        ControlRequest::List => ControlResponse::Entries {
            entries: queue.entries().await?,
            quarantined: queue.quarantined().await?,
        },
        ControlRequest::Submit { .. } => {
            ControlResponse::Error("submission needs the running server".into())
        }
        ControlRequest::Flush { .. } => ControlResponse::FlushRefused {
            text: "Cannot flush mail queue - mail system is down".into(),
            code: 69,
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
                queue
                    .entries()
                    .await?
                    .into_iter()
                    .map(|e| e.id.to_string())
                    .collect()
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
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// `queue show`: the envelope and each recipient's state, readable.
pub fn format_show(entry: &QueueEntry) -> String {
    let e = &entry.envelope;
    let when =
        |secs: u64| httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let mut out = format!(
        "queue_id: {}\nqueue_name: {}\narrival_time: {}\nsize: {}\nsender: {}\nclient: {}\nhelo: {}\n",
        entry.id,
        e.state.name(),
        when(e.arrival_time),
        e.size,
        if e.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            &e.sender
        },
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
