//! What the queue stores about a message besides its content.

use serde::{Deserialize, Serialize};
use towerpost_protocol::{Address, Notify, Ret};

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
    pub address: Address,
    /// RFC 3461 `ORCPT`, still encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// RFC 3461 `NOTIFY`, if given (stored as `SUCCESS,DELAY`, `NEVER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// Delivery status.
    #[serde(default)]
    pub status: RecipientStatus,
}

impl Recipient {
    /// A pending recipient with no DSN parameters.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            orcpt: None,
            notify: None,
            status: RecipientStatus::Pending,
        }
    }
}

/// The envelope of a queued message: everything but the content.
///
/// Stored as a JSON record with a format version next to the content (see
/// `record.rs`), so fields can be added later with `#[serde(default)]`
/// without breaking existing queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The envelope sender; `None` for the null sender `<>` (stored as the
    /// empty string).
    #[serde(with = "reverse_path")]
    pub sender: Option<Address>,
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
    /// RFC 3461 `RET`, if given (stored as `FULL` or `HDRS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// RFC 3461 `ENVID`, still encoded, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// A large message: the part of its content beyond the first
    /// [`INLINE_CONTENT_LIMIT`](crate::INLINE_CONTENT_LIMIT) octets is in
    /// its content file (record format 3). Set by the queue when it stores
    /// the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spooled: Option<SpooledPart>,
}

/// The part of a message's content in its content file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledPart {
    /// Octets in the file.
    pub size: u64,
    /// The file's CRC-32, checked as it is read.
    pub crc32: u32,
}

impl Envelope {
    /// Decodes an envelope record as a shard stores it, in any format
    /// version up to this binary's; the error names `id` and what is wrong.
    pub fn from_record(id: QueueId, bytes: &[u8]) -> Result<Envelope, crate::QueueError> {
        crate::record::decode(id, bytes)
    }

    /// The record [`Envelope::from_record`] reads back, in this binary's
    /// format.
    pub fn to_record(&self, id: QueueId) -> Result<Vec<u8>, crate::QueueError> {
        crate::record::encode(id, self)
    }

    /// A new message from `sender` (`None` for `<>`) to `recipients`,
    /// `size` octets, arrived at `arrival_time` (Unix seconds): incoming,
    /// with no client, no HELO name and no ESMTP parameters.
    pub fn new(
        sender: Option<Address>,
        recipients: Vec<Recipient>,
        arrival_time: u64,
        size: u64,
    ) -> Self {
        Self {
            sender,
            recipients,
            arrival_time,
            size,
            state: QueueState::Incoming,
            next_attempt: 0,
            delay_warned: false,
            client: String::new(),
            helo: String::new(),
            eight_bit_mime: false,
            smtputf8: false,
            ret: None,
            envid: None,
            spooled: None,
        }
    }

    /// The sender as logs and `queue list` write it: the address, or the
    /// empty string for `<>`.
    pub fn sender_text(&self) -> &str {
        self.sender.as_ref().map_or("", Address::as_str)
    }
}

/// The null sender `<>` is stored as the empty string, as every record
/// before typed addresses has it.
mod reverse_path {
    use serde::{Deserialize, Deserializer, Serializer};
    use towerpost_protocol::Address;

    pub(super) fn serialize<S: Serializer>(
        sender: &Option<Address>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(sender.as_ref().map_or("", Address::as_str))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Address>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        Address::parse(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format_args!("sender {text:?}: {e:?}")))
    }
}

/// The recipient's domain as the fast-flush index keys it: lower-case,
/// without a trailing dot (empty for bare `postmaster`).
pub(crate) fn domain_of(address: &Address) -> String {
    address
        .domain()
        .unwrap_or("")
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
