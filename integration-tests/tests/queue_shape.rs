//! `towerpost queue shape`: qshape's table of a queue holding mail for
//! three sites at different ages, from the running server and from the
//! files when none runs.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use integration_tests::Server;
use towerpost_protocol::Address;
use towerpost_queue::{Envelope, Queue, QueueSettings, QueueState, Recipient};

const MINUTE: u64 = 60;

/// Writes deferred (or held) messages straight into a spool: (domain,
/// recipients, age, state).
fn fill(spool: &Path, messages: &[(&str, usize, u64, QueueState)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let queue = Queue::open(QueueSettings {
            directory: spool.to_owned(),
            shards: 2,
        })
        .await
        .unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for (n, (domain, rcpts, age, state)) in messages.iter().enumerate() {
            let recipients = (0..*rcpts)
                .map(|i| Recipient::new(Address::parse(&format!("u{n}-{i}@{domain}")).unwrap()))
                .collect();
            let sender = Some(Address::parse("sender@src.test").unwrap());
            let mut envelope = Envelope::new(sender, recipients, now - age, 10);
            envelope.state = *state;
            // Not due for a day: the server leaves them where they are.
            envelope.next_attempt = now + 24 * 60 * MINUTE;
            let id = queue.new_id();
            queue
                .enqueue(id, &envelope, b"Subject: x\r\n\r\nx\r\n".to_vec())
                .await
                .unwrap();
        }
        queue.shutdown().await;
    });
}

/// The table's rows: domain → heading → count.
fn table(text: &str) -> HashMap<String, HashMap<String, u64>> {
    let mut lines = text.lines();
    let heads: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        heads,
        [
            "T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"
        ]
    );
    lines
        .map(|l| {
            let mut words = l.split_whitespace();
            let domain = words.next().unwrap().to_owned();
            let counts = heads
                .iter()
                .zip(words)
                .map(|(h, n)| ((*h).to_owned(), n.parse().unwrap()))
                .collect();
            (domain, counts)
        })
        .collect()
}

fn shape(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["queue", "shape"];
    all.extend_from_slice(args);
    let (status, out, err) = server.cli(&all);
    assert!(status.success(), "{err}");
    out
}

fn check_deferred(text: &str) {
    let t = table(text);
    let row = |d: &str| t.get(d).unwrap_or_else(|| panic!("no {d} in\n{text}"));
    let nonzero = |d: &str| {
        let mut cells: Vec<(String, u64)> = row(d)
            .iter()
            .filter(|(h, n)| *h != "T" && **n > 0)
            .map(|(h, n)| (h.clone(), *n))
            .collect();
        cells.sort();
        cells
    };
    assert_eq!(row("TOTAL")["T"], 7, "{text}");
    // a.test: one message of 3 recipients 2 minutes old, one 30 minutes.
    assert_eq!(row("a.test")["T"], 4, "{text}");
    assert_eq!(
        nonzero("a.test"),
        [("40".into(), 1), ("5".into(), 3)],
        "{text}"
    );
    // b.test: two messages three hours old ([160, 320) minutes).
    assert_eq!(nonzero("b.test"), [("320".into(), 2)], "{text}");
    // c.test: two days old.
    assert_eq!(nonzero("c.test"), [("1280+".into(), 1)], "{text}");
    assert_eq!(t.len(), 4, "held mail is not in the deferred view:\n{text}");
    // Largest first.
    let order: Vec<&str> = text
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(order, ["a.test", "b.test", "c.test"], "{text}");
}

#[test]
fn queue_shape_counts_recipients_by_site_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    fill(
        &spool,
        &[
            ("a.test", 3, 2 * MINUTE, QueueState::Deferred),
            ("a.test", 1, 30 * MINUTE, QueueState::Deferred),
            ("b.test", 1, 180 * MINUTE, QueueState::Deferred),
            ("b.test", 1, 181 * MINUTE, QueueState::Deferred),
            ("c.test", 1, 2 * 24 * 60 * MINUTE, QueueState::Deferred),
            ("held.test", 2, 10 * MINUTE, QueueState::Hold),
        ],
    );
    let mut server = Server::start(&format!(
        "queue_directory = \"{}\"\nrelayhost = \"[127.0.0.1]:9\"",
        spool.display()
    ));

    check_deferred(&shape(&server, &["deferred"]));
    let held = table(&shape(&server, &["hold"]));
    assert_eq!(held["held.test"]["T"], 2);
    assert_eq!(held["held.test"]["20"], 2);
    // qshape's default: incoming and active, empty here.
    let default = table(&shape(&server, &[]));
    assert_eq!(default["TOTAL"]["T"], 0);
    assert_eq!(default.len(), 1);
    // By sender: one row per message's sender domain.
    let senders = table(&shape(&server, &["all", "--senders"]));
    assert_eq!(senders["src.test"]["T"], 6);

    let json: serde_json::Value =
        serde_json::from_str(&shape(&server, &["deferred", "hold", "--json"])).unwrap();
    assert_eq!(json["total"][0], 9);
    assert_eq!(json["buckets"][9], "1280+");
    assert_eq!(json["rows"][0]["domain"], "a.test");
    assert_eq!(json["rows"][0]["counts"][1], 3);

    // Without a server, from the files: the same table.
    let running = shape(&server, &["deferred"]);
    server.terminate();
    let stopped = shape(&server, &["deferred"]);
    check_deferred(&stopped);
    assert_eq!(table(&running), table(&stopped));
}

#[test]
fn an_unknown_queue_name_is_a_usage_error() {
    let server = Server::start("");
    let (status, _, err) = server.cli(&["queue", "shape", "maildrop"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("invalid value 'maildrop'"), "{err}");
}
