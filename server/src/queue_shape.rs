//! `towerpost queue shape`: Postfix's qshape(1) — queued recipients by
//! domain and age, so an operator sees which site is backing up and since
//! when.
//!
//! As qshape: one count per recipient still to deliver (or per message's
//! sender with `--senders`), by the message's age since arrival, in ten
//! buckets whose upper bounds double from 5 minutes (`T 5 10 20 40 80 160
//! 320 640 1280 1280+`), rows sorted by total, widths fitted to 80
//! columns. The shape is built by folding over the queue's envelopes, so
//! memory is one row per domain, never the queue.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use towerpost_queue::{Envelope, QueueState};

/// Age buckets, the last without an upper bound (qshape's `-b 10`).
const BUCKETS: usize = 10;
/// The first bucket's upper bound in minutes (qshape's `-t 5`).
const TICK_MINUTES: u64 = 5;
/// qshape's terminal width and narrowest domain column.
const WIDTH: usize = 80;
const MIN_DOMAIN_WIDTH: usize = 18;

/// Counts by domain and age bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueShape {
    /// The column headings after `T`: `5`, `10`, … `1280`, `1280+`.
    pub buckets: Vec<String>,
    /// The total over all domains: the count, then one per bucket.
    pub total: Vec<u64>,
    /// One row per domain, largest first.
    pub rows: Vec<ShapeRow>,
}

/// One domain's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeRow {
    /// The domain (`MAILER-DAEMON` for the null sender).
    pub domain: String,
    /// The count (qshape's `T`), then one per bucket.
    pub counts: Vec<u64>,
}

/// Folds envelopes into a [`QueueShape`].
#[derive(Debug)]
pub struct ShapeBuilder {
    now: u64,
    states: Vec<QueueState>,
    senders: bool,
    rows: HashMap<String, Vec<u64>>,
}

impl ShapeBuilder {
    /// Counts messages in `states` as of `now` (Unix seconds), by
    /// recipient domain, or by sender domain when `senders`.
    pub fn new(now: u64, states: Vec<QueueState>, senders: bool) -> Self {
        Self {
            now,
            states,
            senders,
            rows: HashMap::new(),
        }
    }

    /// Counts one message, if it is in one of the states asked for.
    pub fn add(&mut self, envelope: &Envelope) {
        if !self.states.contains(&envelope.state) {
            return;
        }
        let bucket = bucket(self.now.saturating_sub(envelope.arrival_time));
        let mut count = |domain: String| {
            let row = self
                .rows
                .entry(domain)
                .or_insert_with(|| vec![0; BUCKETS + 1]);
            row[0] += 1;
            row[bucket] += 1;
        };
        if self.senders {
            count(domain_of(envelope.sender_text()));
        } else {
            for r in &envelope.recipients {
                count(domain_of(r.address.as_str()));
            }
        }
    }

    /// The shape, rows by total (largest first), then shorter names first
    /// as qshape, then by name.
    pub fn finish(self) -> QueueShape {
        let mut total = vec![0; BUCKETS + 1];
        for row in self.rows.values() {
            for (t, n) in total.iter_mut().zip(row) {
                *t += n;
            }
        }
        let mut rows: Vec<(String, Vec<u64>)> = self.rows.into_iter().collect();
        rows.sort_by(|(a, x), (b, y)| {
            y[0].cmp(&x[0])
                .then(a.len().cmp(&b.len()))
                .then_with(|| a.cmp(b))
        });
        QueueShape {
            buckets: headings(),
            total,
            rows: rows
                .into_iter()
                .map(|(domain, counts)| ShapeRow { domain, counts })
                .collect(),
        }
    }
}

/// The bucket (1 to [`BUCKETS`]) of a message `age` seconds old: 1 below
/// 5 minutes, then one per doubling, the last open-ended.
fn bucket(age: u64) -> usize {
    let ticks = age / 60 / TICK_MINUTES;
    if ticks == 0 {
        return 1;
    }
    let doublings = ticks.ilog2() as usize;
    (2 + doublings).min(BUCKETS)
}

fn headings() -> Vec<String> {
    let mut out = Vec::with_capacity(BUCKETS);
    let mut upper = TICK_MINUTES;
    for _ in 1..BUCKETS {
        out.push(upper.to_string());
        upper *= 2;
    }
    out.push(format!("{}+", upper / 2));
    out
}

/// The domain qshape files an address under: lower-case, after the last
/// `@`, without empty labels; the null sender is `MAILER-DAEMON`.
fn domain_of(address: &str) -> String {
    if address.is_empty() {
        return "MAILER-DAEMON".into();
    }
    let domain = address.rsplit_once('@').map_or(address, |(_, d)| d);
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    labels.join(".").to_lowercase()
}

impl QueueShape {
    /// qshape's table: right-aligned columns sized to the totals, the
    /// domain column filling 80 columns (at least 18), a too-long domain
    /// shown as `+` and its last characters.
    pub fn to_text(&self) -> String {
        let heads: Vec<String> = std::iter::once("T".to_owned())
            .chain(self.buckets.iter().cloned())
            .collect();
        let widths: Vec<usize> = heads
            .iter()
            .zip(&self.total)
            .map(|(h, t)| {
                let w = t.to_string().len().max(h.len());
                if w > 2 { w + 1 } else { 3 }
            })
            .collect();
        let domain_width = WIDTH
            .saturating_sub(widths.iter().sum())
            .max(MIN_DOMAIN_WIDTH);
        let mut out = String::new();
        let mut line = |name: &str, cells: &[String]| {
            let chars: Vec<char> = name.chars().collect();
            if chars.len() > domain_width {
                let tail: String = chars[chars.len() - (domain_width - 1)..].iter().collect();
                out.push('+');
                out.push_str(&tail);
            } else {
                let _ = write!(out, "{name:>domain_width$}");
            }
            for (cell, w) in cells.iter().zip(&widths) {
                let _ = write!(out, "{cell:>w$}");
            }
            out.push('\n');
        };
        line("", &heads);
        let cells = |row: &[u64]| row.iter().map(u64::to_string).collect::<Vec<_>>();
        line("TOTAL", &cells(&self.total));
        for row in &self.rows {
            line(&row.domain, &cells(&row.counts));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use towerpost_queue::Recipient;

    const MIN: u64 = 60;

    fn envelope(state: QueueState, arrived: u64, to: &[&str]) -> Envelope {
        let mut e = Envelope::new(
            None,
            to.iter()
                .map(|a| Recipient::new(towerpost_protocol::Address::parse(a).unwrap()))
                .collect(),
            arrived,
            100,
        );
        e.state = state;
        e
    }

    #[test]
    fn buckets_double_from_five_minutes() {
        assert_eq!(headings().join(" "), "5 10 20 40 80 160 320 640 1280 1280+");
        let cases = [
            (0, 1),
            (5 * MIN - 1, 1),
            (5 * MIN, 2),
            (10 * MIN - 1, 2),
            (10 * MIN, 3),
            // Each column is headed by its upper bound.
            (639 * MIN, 8),
            (640 * MIN, 9),
            (1279 * MIN, 9),
            (1280 * MIN, 10),
            (90 * 24 * 60 * MIN, 10),
        ];
        for (age, want) in cases {
            assert_eq!(bucket(age), want, "age {} min", age / MIN);
        }
    }

    #[test]
    fn domains_as_qshape_files_them() {
        assert_eq!(domain_of("User@Example.COM"), "example.com");
        assert_eq!(domain_of("a@b@x..y."), "x.y");
        assert_eq!(domain_of(""), "MAILER-DAEMON");
    }

    #[test]
    fn recipients_are_counted_by_domain_and_age_in_the_states_asked_for() {
        let now = 1_000_000;
        let mut b = ShapeBuilder::new(now, vec![QueueState::Deferred], false);
        b.add(&envelope(
            QueueState::Deferred,
            now - 2 * MIN,
            &["a@big.test", "b@big.test", "c@small.test"],
        ));
        b.add(&envelope(
            QueueState::Deferred,
            now - 50 * MIN,
            &["d@big.test"],
        ));
        b.add(&envelope(QueueState::Hold, now, &["e@held.test"]));
        let shape = b.finish();
        assert_eq!(shape.total, [4, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(shape.rows[0].domain, "big.test");
        assert_eq!(shape.rows[0].counts, [3, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(shape.rows[1].domain, "small.test");
        assert_eq!(shape.rows.len(), 2, "held mail is not in the deferred view");
        let text = shape.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "                                         T  5 10 20 40 80 160 320 640 1280 1280+"
        );
        assert_eq!(
            lines[1],
            "                                  TOTAL  4  3  0  0  0  1   0   0   0    0     0"
        );
        assert_eq!(
            lines[2],
            "                               big.test  3  2  0  0  0  1   0   0   0    0     0"
        );
        assert!(lines.iter().all(|l| l.len() == 80), "{text}");
    }

    #[test]
    fn long_domains_keep_their_end() {
        let now = 1_000_000;
        let mut b = ShapeBuilder::new(now, vec![QueueState::Deferred], false);
        let long = format!("x@{}.example.test", "a".repeat(60));
        b.add(&envelope(QueueState::Deferred, now, &[long.as_str()]));
        let text = b.finish().to_text();
        let row = text.lines().nth(2).unwrap();
        assert!(row.starts_with('+'), "{row}");
        assert!(row.contains("aaaa.example.test "), "{row}");
        assert_eq!(row.len(), 80);
    }
}
