//! What flows through the tower stack: one request per SMTP command.

use std::net::SocketAddr;
use std::sync::Arc;

use towerpost_protocol::{Address, Command, MailParams, RcptParams};
use towerpost_queue::QueueId;

/// The connection's state as a request sees it: an immutable snapshot.
///
/// The connection owns the real state and applies each reply to it (a 250
/// to `RCPT` adds the recipient); a layer only ever reads.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The client's address.
    pub client: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// The listener's name from the configuration (`smtp`, `submission`, …).
    pub listener: Arc<str>,
    /// The HELO/EHLO name, once given.
    pub helo: Option<String>,
    /// The client greeted with EHLO.
    pub esmtp: bool,
    /// The connection is encrypted.
    pub tls: bool,
    /// STARTTLS may be offered (the listener has `tls = "starttls"` and
    /// TLS is not active yet, see `tls`).
    pub starttls_offered: bool,
    /// The SASL identity, once authenticated.
    pub auth: Option<String>,
    /// The SASL mechanism that authenticated `auth` (`PLAIN`, `LOGIN`).
    pub sasl_method: Option<String>,
    /// AUTH is offered now: enabled on the listener, and TLS is active
    /// or not required for it.
    pub auth_offered: bool,
    /// The TLS protocol and cipher, in Postfix's form (`TLSv1.3 with
    /// cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`), once TLS is active.
    pub tls_cipher: Option<String>,
}

impl SessionInfo {
    /// A session just connected from `client` to `local` on the listener
    /// named `listener`: no HELO yet, no TLS, not authenticated. Also what
    /// a layer's tests start from.
    pub fn new(client: SocketAddr, local: SocketAddr, listener: &str) -> Self {
        Self {
            client,
            local,
            listener: Arc::from(listener),
            helo: None,
            esmtp: false,
            tls: false,
            starttls_offered: false,
            auth: None,
            sasl_method: None,
            auth_offered: false,
            tls_cipher: None,
        }
    }

    /// The client as Postfix logs it: `name[address]` (`unknown` without
    /// reverse DNS).
    pub fn client_name(&self) -> String {
        format!("unknown[{}]", self.client.ip())
    }
}

/// The mail transaction in progress (from `MAIL` to the end of the data).
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The sender; `None` is the null sender `<>`.
    pub sender: Option<Address>,
    /// The `MAIL` parameters.
    pub params: MailParams,
    /// Accepted recipients, in order.
    pub recipients: Vec<(Address, RcptParams)>,
}

/// A message whose content has been received in full.
#[derive(Debug)]
pub struct ReceivedMessage {
    /// The queue id the message will be stored under (already in its
    /// `Received:` header).
    pub id: QueueId,
    /// The content, CRLF line endings, `Received:` header first; for a
    /// large message, its first
    /// [`INLINE_CONTENT_LIMIT`](towerpost_queue::INLINE_CONTENT_LIMIT)
    /// octets, which hold its header section (a layer that adds a header
    /// changes this part).
    pub content: Vec<u8>,
    /// The rest of a large message, already durable in its content file;
    /// stored with the message, or removed when the message is refused.
    /// A layer must pass it on with `content`: dropping it would queue
    /// the head alone, a truncated message.
    pub rest: Option<towerpost_queue::SpooledContent>,
}

/// What the client asked for.
#[derive(Debug)]
pub enum RequestKind {
    /// A client connected; the reply is the greeting (220), or a refusal
    /// (421, 554) after which the connection closes.
    Connect,
    /// A client whose connection was accepted has gone; the reply is
    /// ignored. Lets layers keep per-client counts.
    Disconnect,
    /// An SMTP command.
    Command(Command),
    /// The end of `DATA` or `BDAT … LAST`: queue this message.
    Message(ReceivedMessage),
}

/// A request through the SMTP service stack. The response is a
/// [`Reply`](towerpost_protocol::Reply); a policy refusal is a reply, and
/// `Service::Error` is reserved for faults.
#[derive(Debug)]
pub struct SmtpRequest {
    /// The session, as it was when the command arrived.
    pub session: Arc<SessionInfo>,
    /// The transaction in progress, if any.
    pub transaction: Option<Arc<Transaction>>,
    /// The command or message.
    pub kind: RequestKind,
}

impl SmtpRequest {
    /// The command, if this request is one.
    pub fn command(&self) -> Option<&Command> {
        match &self.kind {
            RequestKind::Command(c) => Some(c),
            RequestKind::Connect | RequestKind::Disconnect | RequestKind::Message(_) => None,
        }
    }
}
