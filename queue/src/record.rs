//! The stored form of an envelope: a JSON object that says its format
//! version in `v` (Postfix's queue files tag every record for the same
//! reason: a reader knows what it holds, and skips what it does not know).
//!
//! | `v` | written by | what changed |
//! |---|---|---|
//! | absent (1) | 7b39c7e … 9cc85ce | the first format |
//! | 2 | d576540 … today | the tag; addresses, `NOTIFY` and `RET` are typed, so a reader checks their syntax, but they are stored as the same text |
//! | 3 | today, for large messages only | `spooled`: the content continues in a content file; a binary that reads only 2 leaves such a record in quarantine rather than send half a message |
//!
//! A reader opens every version up to its own and refuses a newer one (a
//! binary rolled back past a format change) with an error naming it,
//! rather than guessing at fields it does not know.

use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::id::QueueId;
use crate::message::Envelope;

/// The newest format this code reads, and writes for a large message.
pub(crate) const FORMAT: u32 = 3;

/// The format written for a message whose content is all in its record:
/// still 2, so that such records stay readable by binaries before 3.
const INLINE_FORMAT: u32 = 2;

/// Records written before the tag existed.
const UNTAGGED: u32 = 1;

#[derive(Serialize)]
struct Tagged<'a> {
    v: u32,
    #[serde(flatten)]
    envelope: &'a Envelope,
}

/// The tag alone: read first, skipping the rest without building it, so
/// the envelope is then read straight from the bytes (a flattened read
/// would buffer every field first) and a newer format is refused before
/// its fields are looked at.
#[derive(Deserialize)]
struct Version {
    #[serde(default = "untagged")]
    v: u32,
}

fn untagged() -> u32 {
    UNTAGGED
}

/// The bytes stored for `envelope`.
pub(crate) fn encode(id: QueueId, envelope: &Envelope) -> Result<Vec<u8>, QueueError> {
    let v = if envelope.spooled.is_some() {
        FORMAT
    } else {
        INLINE_FORMAT
    };
    serde_json::to_vec(&Tagged { v, envelope }).map_err(|e| QueueError::codec(id, e))
}

/// The envelope stored as `bytes`, in any format up to [`FORMAT`].
pub(crate) fn decode(id: QueueId, bytes: &[u8]) -> Result<Envelope, QueueError> {
    let Version { v } = serde_json::from_slice(bytes).map_err(|e| QueueError::codec(id, e))?;
    if v > FORMAT {
        return Err(QueueError::codec(
            id,
            serde::de::Error::custom(format_args!(
                "envelope record format {v} is newer than this binary reads ({FORMAT})"
            )),
        ));
    }
    // Envelope ignores the `v` it does not declare.
    serde_json::from_slice(bytes).map_err(|e| QueueError::codec(id, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Recipient;
    use towerpost_protocol::{Address, Notify, Ret};

    fn id() -> QueueId {
        QueueId::from_u64(42)
    }

    #[test]
    fn a_record_says_its_format_and_reads_back_the_same() {
        let mut envelope = Envelope::new(
            Some(Address::parse("a@example.test").unwrap()),
            vec![Recipient {
                notify: Some("SUCCESS,DELAY".parse::<Notify>().unwrap()),
                ..Recipient::new(Address::parse("b@example.test").unwrap())
            }],
            1_800_000_000,
            5,
        );
        envelope.ret = Some(Ret::Headers);
        let bytes = encode(id(), &envelope).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"v":2,"sender":"a@example.test""#),
            "{text}"
        );
        assert!(text.contains(r#""notify":"SUCCESS,DELAY""#), "{text}");
        assert!(text.contains(r#""ret":"HDRS""#), "{text}");
        assert_eq!(decode(id(), &bytes).unwrap(), envelope);
    }

    #[test]
    fn only_a_record_that_names_a_content_file_is_format_3() {
        let mut envelope = Envelope::new(None, vec![], 1_800_000_000, 300_000);
        let inline = String::from_utf8(encode(id(), &envelope).unwrap()).unwrap();
        assert!(inline.starts_with(r#"{"v":2,"#), "{inline}");
        assert!(!inline.contains("spooled"), "{inline}");
        envelope.spooled = Some(crate::message::SpooledPart {
            size: 40_000,
            crc32: 7,
        });
        let bytes = encode(id(), &envelope).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"v":3,"#), "{text}");
        assert!(
            text.contains(r#""spooled":{"size":40000,"crc32":7}"#),
            "{text}"
        );
        assert_eq!(decode(id(), &bytes).unwrap(), envelope);
    }

    #[test]
    fn an_untagged_record_of_the_first_format_is_read() {
        let old = br#"{"sender":"","recipients":[{"address":"three@other.example.test","notify":"NEVER","status":{"status":"deferred","dsn":"4.4.1","reason":"connect to 127.0.0.1[127.0.0.1]:9: Connection refused"}}],"arrival_time":1796202766,"size":219,"state":"deferred","next_attempt":1796203091,"client":"unknown[127.0.0.1]","helo":"client.old.test","eight_bit_mime":true,"smtputf8":false,"ret":"FULL"}"#;
        let envelope = decode(id(), old).unwrap();
        assert_eq!(envelope.sender, None);
        assert_eq!(envelope.ret, Some(Ret::Full));
        assert!(envelope.recipients[0].notify.unwrap().is_never());
        assert_eq!(
            envelope.recipients[0].status.reason(),
            Some("connect to 127.0.0.1[127.0.0.1]:9: Connection refused")
        );
    }

    #[test]
    fn a_newer_format_or_a_bad_address_is_refused_with_the_reason() {
        let newer = br#"{"v":4,"sender":"","recipients":[],"arrival_time":0,"size":0}"#;
        let e = decode(id(), newer).unwrap_err().to_string();
        assert!(
            e.contains("format 4 is newer than this binary reads (3)"),
            "{e}"
        );
        let bad = br#"{"v":2,"sender":"no at sign","recipients":[],"arrival_time":0,"size":0}"#;
        let e = decode(id(), bad).unwrap_err().to_string();
        assert!(e.contains("no at sign"), "{e}");
    }
}
