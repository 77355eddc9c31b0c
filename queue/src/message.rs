//! What the queue stores about a message besides its content.

use serde::{Deserialize, Serialize};

use crate::id::QueueId;

/// Where a message is in its life (Postfix's queue names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueueState {
    /// Accepted, not yet scheduled.
    #[default]
    Incoming,
    /// Being delivered.
    Active,
    /// Waiting for its next attempt.
    Deferred,
    /// Parked by the operator; never retried until released.
    Hold,
}

impl QueueState {
    /// The Postfix queue name (`incoming`, `active`, `deferred`, `hold`).
    pub fn name(self) -> &'static str {
        match self {
            QueueState::Incoming => "incoming",
            QueueState::Active => "active",
            QueueState::Deferred => "deferred",
            QueueState::Hold => "hold",
        }
    }
}

/// Delivery status of a recipient still in the queue. Delivered and
/// bounced recipients leave the envelope (as Postfix marks them done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase", tag = "status")]
pub enum RecipientStatus {
    /// Not yet attempted.
    #[default]
    Pending,
    /// Temporarily failed.
    Deferred {
        /// RFC 3463 status of the failure, such as `4.4.1`.
        dsn: String,
        /// Why, as the log and `queue list` show it.
        reason: String,
    },
}

impl RecipientStatus {
    /// The deferral reason, if deferred.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RecipientStatus::Pending => None,
            RecipientStatus::Deferred { reason, .. } => Some(reason),
        }
    }
}

/// One envelope recipient and what the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address as given in `RCPT TO`.
    pub address: String,
    /// RFC 3461 `ORCPT`, still encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// RFC 3461 `NOTIFY` as given (`SUCCESS,DELAY`, `NEVER`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// Delivery status.
    #[serde(default)]
    pub status: RecipientStatus,
}

impl Recipient {
    /// A pending recipient with no DSN parameters.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            orcpt: None,
            notify: None,
            status: RecipientStatus::Pending,
        }
    }
}

/// The envelope of a queued message: everything but the content.
///
/// Stored as JSON next to the content, so fields can be added later with
/// `#[serde(default)]` without breaking existing queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// The recipients, in `RCPT` order.
    pub recipients: Vec<Recipient>,
    /// Arrival time, seconds since the Unix epoch.
    pub arrival_time: u64,
    /// Content size in octets (headers and body as stored).
    pub size: u64,
    /// Queue state.
    #[serde(default)]
    pub state: QueueState,
    /// When a deferred message is due again, seconds since the Unix epoch.
    #[serde(default)]
    pub next_attempt: u64,
    /// The sender was told the message is delayed (`delay_warning_time`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delay_warned: bool,
    /// The client's address as `name[ip]` (Postfix's `client=` value).
    #[serde(default)]
    pub client: String,
    /// The HELO/EHLO name the client gave.
    #[serde(default)]
    pub helo: String,
    /// `BODY=8BITMIME` was declared.
    #[serde(default)]
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` was declared.
    #[serde(default)]
    pub smtputf8: bool,
    /// RFC 3461 `RET` (`FULL` or `HDRS`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// RFC 3461 `ENVID`, still encoded, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
}

/// The recipient's domain as the fast-flush index keys it: lower-case,
/// without a trailing dot.
pub(crate) fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A queued message as `queue list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The queue id.
    pub id: QueueId,
    /// The envelope.
    pub envelope: Envelope,
}

impl Serialize for QueueId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QueueId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
