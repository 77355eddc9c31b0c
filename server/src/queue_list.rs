//! `queue list`: Postfix's `postqueue -p` and `postqueue -j` formats.

use std::fmt::Write as _;

use serde_json::json;
use towerpost_protocol::{Address, MailTime};
use towerpost_queue::{Envelope, QueueEntry, QueueState};

/// A `queue list` written a page at a time, so that a million messages
/// take no more memory than one page: `postqueue -p` (the classic `mailq`
/// listing: header before the first message, totals after the last) or
/// `postqueue -j` (one JSON object per message, one per line).
#[derive(Debug)]
pub struct Listing {
    json: bool,
    requests: u64,
    bytes: u64,
}

impl Listing {
    /// An empty listing; `json` for `postqueue -j`.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            requests: 0,
            bytes: 0,
        }
    }

    /// Appends the lines of `entries`, the next messages in id order.
    pub fn page(&mut self, entries: &[QueueEntry], out: &mut String) {
        for entry in entries {
            if self.json {
                json_line(entry, out);
            } else {
                if self.requests == 0 {
                    out.push_str(
                        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n",
                    );
                }
                classic_lines(entry, out);
            }
            self.requests += 1;
            self.bytes += entry.envelope.size;
        }
    }

    /// Appends what follows the last message.
    pub fn finish(&self, out: &mut String) {
        if self.json {
            return;
        }
        if self.requests == 0 {
            out.push_str("Mail queue is empty\n");
            return;
        }
        let n = self.requests;
        let _ = writeln!(
            out,
            "-- {} Kbytes in {n} Request{}.",
            self.bytes / 1024,
            if n == 1 { "" } else { "s" }
        );
    }
}

/// One message as `postqueue -p` shows it.
fn classic_lines(QueueEntry { id, envelope }: &QueueEntry, out: &mut String) {
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

/// One message as `postqueue -j` shows it.
fn json_line(QueueEntry { id, envelope }: &QueueEntry, out: &mut String) {
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
        assert_eq!(listed(&[entries.as_slice()], false), want);
        assert_eq!(listed(&[], false), "Mail queue is empty\n");
        assert_eq!(listed(&[], true), "");
    }

    #[test]
    fn pages_make_the_listing_of_the_whole() {
        let entry = |id: &str, size| QueueEntry {
            id: id.parse::<QueueId>().unwrap(),
            envelope: Envelope::new(None, vec![], 1_795_881_836, size),
        };
        let (a, b, c) = (
            entry("0DJ4QW7H2KX", 2000),
            entry("0DJ4QW7H2KY", 100),
            entry("0DJ4QW7H2KZ", 20),
        );
        let all = [a, b, c];
        let whole = listed(&[&all], false);
        assert_eq!(listed(&[&all[..1], &[], &all[1..]], false), whole);
        assert_eq!(whole.matches("-Queue ID-").count(), 1);
        assert!(whole.ends_with("\n-- 2 Kbytes in 3 Requests.\n"), "{whole}");
        assert!(whole.contains("0DJ4QW7H2KX     2000 Sat Nov 28 16:03:56  MAILER-DAEMON\n"));
        let json = listed(&[&all[..2], &all[2..]], true);
        assert_eq!(json.lines().count(), 3);
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["queue_id"], "0DJ4QW7H2KX");
        assert_eq!(first["sender"], "MAILER-DAEMON");
    }

    fn listed(pages: &[&[QueueEntry]], json: bool) -> String {
        let mut listing = Listing::new(json);
        let mut out = String::new();
        for page in pages {
            listing.page(page, &mut out);
        }
        listing.finish(&mut out);
        out
    }
}
