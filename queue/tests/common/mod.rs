//! What the queue's integration tests share.

use towerpost_queue::{Envelope, QueueState, Recipient};

/// An envelope from `a@example.test` to `rcpt`, in `state`.
pub(crate) fn envelope(rcpt: &str, state: QueueState) -> Envelope {
    Envelope {
        sender: "a@example.test".into(),
        recipients: vec![Recipient::new(rcpt)],
        arrival_time: 1_800_000_000,
        size: 5,
        state,
        next_attempt: 0,
        delay_warned: false,
        client: "localhost[127.0.0.1]".into(),
        helo: "client.test".into(),
        eight_bit_mime: false,
        smtputf8: false,
        ret: None,
        envid: None,
    }
}
