//! The innermost service: answers commands and queues messages.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tower::{BoxError, ServiceExt};
use tower_service::Service;
use towerpost_flush::{FlushOrigin, FlushRequest, FlushResponse, FlushService, FlushTarget};
use towerpost_protocol::{Command, EhloCapabilities, EnhancedCode, Reply};
use towerpost_queue::{Envelope, Queue, Recipient};

use crate::request::{ReceivedMessage, RequestKind, SessionInfo, SmtpRequest, Transaction};
use crate::sasl::Mechanism;

/// Settings of [`SmtpCore`].
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// `myhostname`.
    pub myhostname: String,
    /// `smtpd_banner`: the greeting text after `220 `.
    pub banner: String,
    /// `message_size_limit` in octets (0 = unlimited).
    pub message_size_limit: u64,
    /// `smtpd_recipient_limit`.
    pub recipient_limit: usize,
    /// `queue_directory`, whose file system must keep `queue_minfree`.
    pub queue_directory: std::path::PathBuf,
    /// The effective `queue_minfree` in bytes (0: no check).
    pub queue_minfree: u64,
}

/// Answers SMTP commands that passed every policy layer and stores
/// messages in the queue. Sequence errors never reach it: the connection's
/// state machine answers those itself.
#[derive(Debug, Clone)]
pub struct SmtpCore {
    settings: Arc<CoreSettings>,
    queue: Queue,
    flush: Option<FlushService>,
}

impl SmtpCore {
    /// A core storing into `queue`; ETRN goes to `flush` (without one,
    /// ETRN answers `458 Unable to queue messages`).
    pub fn new(settings: CoreSettings, queue: Queue, flush: Option<FlushService>) -> Self {
        Self {
            settings: Arc::new(settings),
            queue,
            flush,
        }
    }

    /// Whether the queue file system keeps `queue_minfree` after `size`
    /// more bytes (Postfix's `smtpd_check_queue`). A file system whose
    /// free space cannot be read is not refused on that account.
    fn has_space_for(&self, size: u64) -> bool {
        let s = &self.settings;
        if s.queue_minfree == 0 && size == 0 {
            return true;
        }
        let Ok(fs) = rustix::fs::statvfs(&s.queue_directory) else {
            return true;
        };
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        let enough = free >= s.queue_minfree.saturating_add(size);
        if !enough {
            tracing::warn!(
                target: "towerpost::smtpd",
                "not enough free space in mail queue: {free} bytes < {} (queue_minfree) + {size} (SIZE)",
                s.queue_minfree
            );
        }
        enough
    }

    fn answer(
        &self,
        session: &SessionInfo,
        transaction: Option<&Transaction>,
        command: &Command,
    ) -> Reply {
        let s = &self.settings;
        let e = EnhancedCode::new;
        match command {
            Command::Helo { .. } => Reply::new(250, s.myhostname.clone()),
            Command::Ehlo { .. } => self.ehlo_reply(session),
            Command::Mail { params, .. } => {
                if s.message_size_limit > 0 && params.size.is_some_and(|n| n > s.message_size_limit)
                {
                    Reply::enhanced(552, e(5, 3, 4), "Message size exceeds fixed limit")
                } else if !self.has_space_for(params.size.unwrap_or(0)) {
                    Reply::enhanced(452, e(4, 3, 1), "Insufficient system storage")
                } else {
                    Reply::enhanced(250, e(2, 1, 0), "Ok")
                }
            }
            Command::Rcpt { .. } => {
                let have = transaction.map_or(0, |t| t.recipients.len());
                if have >= s.recipient_limit {
                    Reply::enhanced(452, e(4, 5, 3), "Error: too many recipients")
                } else {
                    Reply::enhanced(250, e(2, 1, 5), "Ok")
                }
            }
            Command::Data => Reply::new(354, "End data with <CR><LF>.<CR><LF>"),
            Command::Bdat { .. } => Reply::enhanced(250, e(2, 0, 0), "Ok"),
            Command::Rset | Command::Noop => Reply::enhanced(250, e(2, 0, 0), "Ok"),
            Command::Quit => Reply::enhanced(221, e(2, 0, 0), "Bye"),
            Command::Vrfy { arg } => Reply::enhanced(252, e(2, 0, 0), arg.clone()),
            Command::Help => Reply::enhanced(
                214,
                e(2, 0, 0),
                "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY ETRN HELP",
            ),
            // `call` sends ETRN to the flush service; this is not reached.
            Command::Etrn { .. } => Reply::new(458, "Unable to queue messages"),
            Command::StartTls if session.starttls_offered && !session.tls => {
                Reply::enhanced(220, e(2, 0, 0), "Ready to start TLS")
            }
            Command::StartTls => Reply::enhanced(502, e(5, 5, 1), "Error: command not implemented"),
            // An AUTH that passed every layer may go ahead: the connection
            // runs the SASL exchange on a 334 and checks the credentials.
            Command::Auth { .. } if session.auth_offered => Reply::new(334, ""),
            Command::Auth { .. } => {
                Reply::enhanced(503, e(5, 5, 1), "Error: authentication not enabled")
            }
        }
    }

    /// The EHLO keywords, in Postfix's order.
    fn ehlo_reply(&self, session: &SessionInfo) -> Reply {
        let s = &self.settings;
        let auth = if session.auth_offered {
            Mechanism::ALL.iter().map(|m| m.name().to_owned()).collect()
        } else {
            Vec::new()
        };
        EhloCapabilities {
            pipelining: true,
            size: Some(s.message_size_limit),
            vrfy: true,
            etrn: true,
            starttls: session.starttls_offered && !session.tls,
            auth,
            enhanced_status_codes: true,
            eight_bit_mime: true,
            dsn: true,
            smtputf8: true,
            chunking: true,
        }
        .reply(&s.myhostname)
    }

    /// ETRN, byte-compatible with Postfix: `250 Queuing started`, `459
    /// <site>: service unavailable` for a site not in fast_flush_domains,
    /// `501 Error: invalid parameter syntax`, `458 Unable to queue
    /// messages` when the flush fails. No enhanced status codes (Postfix
    /// sends none on ETRN replies).
    async fn etrn(flush: Option<FlushService>, session: &SessionInfo, node: String) -> Reply {
        let Some(mut flush) = flush else {
            return Reply::new(458, "Unable to queue messages");
        };
        let request = FlushRequest {
            progress: None,
            target: FlushTarget::Site(node.clone()),
            origin: FlushOrigin::Smtp {
                client: session.client.ip(),
            },
            wait: false,
        };
        let result = match flush.ready().await {
            Ok(s) => s.call(request).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(FlushResponse::Started { messages }) => {
                tracing::info!(
                    target: "towerpost::smtpd",
                    "ETRN {node} from {}: {messages} messages scheduled",
                    session.client_name()
                );
                Reply::new(250, "Queuing started")
            }
            Ok(FlushResponse::NotEligible { site }) => {
                tracing::info!(
                    target: "towerpost::smtpd",
                    "reject: ETRN {site}... from {}",
                    session.client_name()
                );
                Reply::new(459, format!("<{site}>: service unavailable"))
            }
            Ok(FlushResponse::InvalidSite) => Reply::new(501, "Error: invalid parameter syntax"),
            Ok(other) => {
                tracing::warn!(target: "towerpost::smtpd", "ETRN {node}: unexpected {other:?}");
                Reply::new(458, "Unable to queue messages")
            }
            Err(e) => {
                tracing::warn!(target: "towerpost::smtpd", "unable to talk to fast flush service: {e}");
                Reply::new(458, "Unable to queue messages")
            }
        }
    }

    async fn store(
        queue: Queue,
        session: Arc<SessionInfo>,
        transaction: Option<Arc<Transaction>>,
        message: ReceivedMessage,
    ) -> Result<Reply, BoxError> {
        let Some(txn) = transaction.as_deref() else {
            return Err("message without a transaction".into());
        };
        let ReceivedMessage { id, content, rest } = message;
        let envelope = Envelope {
            client: session.client_name(),
            helo: session.helo.clone().unwrap_or_default(),
            eight_bit_mime: txn.params.body == towerpost_protocol::Body::EightBitMime,
            smtputf8: txn.params.smtputf8,
            ret: txn.params.ret,
            envid: txn.params.envid.clone(),
            ..Envelope::new(
                txn.sender.clone(),
                txn.recipients
                    .iter()
                    .map(|(addr, params)| Recipient {
                        orcpt: params.orcpt.clone(),
                        notify: params.notify,
                        ..Recipient::new(addr.clone())
                    })
                    .collect(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                content.len() as u64 + rest.as_ref().map_or(0, |r| r.size()),
            )
        };
        match rest {
            None => queue.enqueue(id, &envelope, content).await?,
            Some(rest) => queue.enqueue_spooled(id, &envelope, content, rest).await?,
        }
        Ok(Reply::enhanced(
            250,
            EnhancedCode::new(2, 0, 0),
            format!("Ok: queued as {id}"),
        ))
    }
}

impl Service<SmtpRequest> for SmtpCore {
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: SmtpRequest) -> Self::Future {
        let SmtpRequest {
            session,
            transaction,
            kind,
        } = req;
        match kind {
            RequestKind::Connect => {
                let reply = Reply::new(220, self.settings.banner.clone());
                Box::pin(async move { Ok(reply) })
            }
            RequestKind::Disconnect => {
                let reply = Reply::enhanced(221, EnhancedCode::new(2, 0, 0), "Bye");
                Box::pin(async move { Ok(reply) })
            }
            RequestKind::Command(Command::Etrn { node }) => {
                let flush = self.flush.clone();
                Box::pin(async move { Ok(Self::etrn(flush, &session, node).await) })
            }
            RequestKind::Command(command) => {
                let reply = self.answer(&session, transaction.as_deref(), &command);
                Box::pin(async move { Ok(reply) })
            }
            RequestKind::Message(message) => Box::pin(Self::store(
                self.queue.clone(),
                session,
                transaction,
                message,
            )),
        }
    }
}
