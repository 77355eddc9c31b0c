//! What the queue's integration tests share.

use towerpost_protocol::Address;
use towerpost_queue::{Envelope, QueueState, Recipient};

/// An envelope from `a@example.test` to `rcpt`, in `state`.
pub(crate) fn envelope(rcpt: &str, state: QueueState) -> Envelope {
    Envelope {
        state,
        client: "localhost[127.0.0.1]".into(),
        helo: "client.test".into(),
        ..Envelope::new(
            Some(Address::parse("a@example.test").unwrap()),
            vec![Recipient::new(Address::parse(rcpt).unwrap())],
            1_800_000_000,
            5,
        )
    }
}
