//! `queue list`: Postfix's `postqueue -p` and `postqueue -j` formats.

use std::fmt::Write as _;

use serde_json::json;
use towerpost_protocol::{Address, MailTime};
use towerpost_queue::{Envelope, QueueEntry, QueueState};

/// `postqueue -p`: the classic `mailq` listing.
pub fn format_listing(entries: &[QueueEntry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_owned();
    }
    let mut out =
        String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut total = 0u64;
    for QueueEntry { id, envelope } in entries {
        total += envelope.size;
        let mark = match envelope.state {
            QueueState::Hold => '!',
            QueueState::Active => '*',
            QueueState::Incoming | QueueState::Deferred => ' ',
        };
        let sender = shown_sender(envelope);
        let _ = writeln!(
            out,
            "{id:<11}{mark}{size:>8} {arrival:<20} {sender}",
            size = envelope.size,
            arrival = arrival(envelope.arrival_time)
        );
        for r in &envelope.recipients {
            if let Some(reason) = r.status.reason() {
                let reason = format!("({reason})");
                let pad = 78usize.saturating_sub(reason.len()).max(20);
                let _ = writeln!(out, "{:pad$}{reason}", "");
            }
            let _ = writeln!(out, "{:42}{}", "", r.address);
        }
        out.push('\n');
    }
    let n = entries.len();
    let _ = writeln!(
        out,
        "-- {} Kbytes in {n} Request{}.",
        total / 1024,
        if n == 1 { "" } else { "s" }
    );
    out
}

/// `postqueue -j`: one JSON object per message, one per line.
pub fn format_json(entries: &[QueueEntry]) -> String {
    let mut out = String::new();
    for QueueEntry { id, envelope } in entries {
        let recipients: Vec<_> = envelope
            .recipients
            .iter()
            .map(|r| match r.status.reason() {
                Some(reason) => json!({"address": r.address, "delay_reason": reason}),
                None => json!({"address": r.address}),
            })
            .collect();
        let line = json!({
            "queue_name": envelope.state.name(),
            "queue_id": id.to_string(),
            "arrival_time": envelope.arrival_time,
            "message_size": envelope.size,
            "forced_expire": false,
            "sender": shown_sender(envelope),
            "recipients": recipients,
        });
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The sender as `postqueue` shows it: `MAILER-DAEMON` for `<>`.
pub(crate) fn shown_sender(envelope: &Envelope) -> &str {
    envelope
        .sender
        .as_ref()
        .map_or("MAILER-DAEMON", Address::as_str)
}

/// `Sat Nov 28 16:03:56` (UTC).
fn arrival(secs: u64) -> String {
    MailTime::from_unix(i64::try_from(secs).unwrap_or(i64::MAX))
        .queue_listing()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use towerpost_protocol::Address;
    use towerpost_queue::{Envelope, QueueId, Recipient};

    #[test]
    fn listing_matches_postqueue_layout() {
        let entries = vec![QueueEntry {
            id: "0DJ4QW7H2KX".parse::<QueueId>().unwrap(),
            envelope: Envelope::new(
                Some(Address::parse("sender@example.test").unwrap()),
                vec![Recipient::new(Address::parse("down@direct.test").unwrap())],
                1_795_881_836,
                346,
            ),
        }];
        let want = "\
-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
0DJ4QW7H2KX      346 Sat Nov 28 16:03:56  sender@example.test
                                          down@direct.test

-- 0 Kbytes in 1 Request.
";
        assert_eq!(format_listing(&entries), want);
        assert_eq!(format_listing(&[]), "Mail queue is empty\n");
    }
}
