//! The contract between the queue manager and delivery agents.
//!
//! A delivery agent (SMTP client, discard, error, or a test double) is a
//! `tower::Service<DeliveryRequest, Response = DeliveryReport>`. It answers
//! for every recipient of the request; `Err` means the agent itself failed
//! (a bug, a resource problem), and every recipient is deferred.

use std::time::Duration;

use tower::BoxError;
use tower::util::BoxCloneSyncService;
use towerpost_protocol::{Address, Nexthop, Notify, Ret};

use crate::content::Content;
use crate::id::QueueId;

/// One delivery attempt: one message, one destination, one or more of its
/// recipients (all that share the destination, up to the recipient limit).
#[derive(Debug, Clone)]
pub struct DeliveryRequest {
    /// The message's queue id (for logs).
    pub queue_id: QueueId,
    /// The transport name (`smtp`, `relay`, `etrn-only`, …).
    pub transport: String,
    /// Where to deliver: the MX hosts of a domain, or a host.
    pub nexthop: Nexthop,
    /// The envelope sender; `None` for `<>`.
    pub sender: Option<Address>,
    /// The recipients of this attempt.
    pub recipients: Vec<DeliveryRecipient>,
    /// The message content, CRLF line ends: in memory, or for a large
    /// message partly in its content file, read as it is sent.
    pub content: Content,
    /// `BODY=8BITMIME` was declared on receipt.
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` was declared on receipt.
    pub smtputf8: bool,
    /// RFC 3461 `RET`, if given.
    pub ret: Option<Ret>,
    /// RFC 3461 `ENVID`, if given.
    pub envid: Option<String>,
}

/// A recipient of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecipient {
    /// The address.
    pub address: Address,
    /// RFC 3461 `NOTIFY`, if given.
    pub notify: Option<Notify>,
    /// RFC 3461 `ORCPT`, as given.
    pub orcpt: Option<String>,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; `reply` is the next hop's answer (`250 2.0.0 Ok`).
    Sent {
        /// RFC 3463 status, usually `2.0.0`.
        dsn: String,
        /// The reply, for the log.
        reply: String,
    },
    /// Temporary failure: retry later.
    Deferred {
        /// RFC 3463 status (`4.4.1`).
        dsn: String,
        /// Why (`connect to …: Connection refused`).
        reason: String,
    },
    /// Permanent failure: return to sender.
    Bounced {
        /// RFC 3463 status (`5.1.1`).
        dsn: String,
        /// Why, in Postfix's words (`host … said: 550 … (in reply to RCPT TO command)`).
        reason: String,
        /// The remote reply for the DSN's `Diagnostic-Code`, if a server said it.
        diagnostic: Option<String>,
    },
}

/// The agent's answer.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    /// The host that was talked to, as logged (`mx[192.0.2.1]:25`), or `none`.
    pub relay: String,
    /// One outcome per recipient, in request order.
    pub outcomes: Vec<Outcome>,
    /// Connection setup time (DNS, connect, greeting, EHLO, TLS).
    pub setup: Duration,
    /// Transmission time.
    pub transmission: Duration,
    /// What towerpost itself must report to a sender that asked for
    /// `NOTIFY=SUCCESS` (RFC 3461 §4.2) for the recipients delivered here:
    /// `Relayed` when the next hop did not offer DSN (so it will not
    /// report), `Delivered` for a final delivery, `None` when the next hop
    /// took the DSN parameters and reports itself.
    pub success_action: Option<crate::dsn::DsnAction>,
    /// The next hop could not be reached or refused the session (connect
    /// failure or timeout, a 4xx greeting): negative feedback for the
    /// destination's concurrency window, as Postfix counts it.
    pub site_failure: bool,
}

impl DeliveryReport {
    /// The same outcome for every recipient, with no remote host involved.
    pub fn all(n: usize, outcome: Outcome) -> Self {
        Self {
            relay: "none".to_owned(),
            outcomes: vec![outcome; n],
            setup: Duration::ZERO,
            transmission: Duration::ZERO,
            success_action: None,
            site_failure: false,
        }
    }
}

/// A boxed delivery agent.
pub type DeliveryService = BoxCloneSyncService<DeliveryRequest, DeliveryReport, BoxError>;
