//! The queue's envelope record reader, given what a damaged or foreign
//! shard might hold: no panic, a record it reads writes back to one that
//! reads the same, and an error always names the queue id.

use towerpost_queue::{Envelope, QueueId};

/// What envelope records are made of (JSON, format versions 1 and 2).
pub const TOKENS: &[&[u8]] = &[
    br#"{"v":2,"#,
    br#"{"v":1,"#,
    br#""v":3"#,
    br#""v":18446744073709551616"#,
    br#""sender":"a@b.test","#,
    br#""sender":null"#,
    br#""recipients":[{"address":"c@d.test","status":"pending"}]"#,
    br#""recipients":[]"#,
    br#""state":"deferred""#,
    br#""state":"hold""#,
    br#""size":-1"#,
    br#""arrival_time":1e400"#,
    br#""\u0000""#,
    br#""\ud800""#,
    b"{}",
    b"[]",
    b"null",
    b",",
    b":",
];

/// Panics when an invariant does not hold for `data`.
pub fn check(data: &[u8]) {
    let id = QueueId::from_u64(0x1234_5678_9abc);
    match Envelope::from_record(id, data) {
        Ok(envelope) => {
            let record = envelope.to_record(id).expect("a read envelope writes back");
            let again = Envelope::from_record(id, &record).expect("a written record reads back");
            assert_eq!(again, envelope);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(&id.to_string()),
                "the error names no id: {text}"
            );
        }
    }
}
