//! Fills a queue directory with parked (deferred) mail, for benchmarks of
//! a large queue (`deploy/loadtest/million-bench.sh`):
//!
//! ```text
//! fill_queue QUEUE_DIRECTORY SHARDS MESSAGES DOMAINS [SITE SITE_MESSAGES]
//! ```
//!
//! Writes MESSAGES messages of about 1 KiB, each to `x@dN.test` for N in
//! 0..DOMAINS in turn, then SITE_MESSAGES to `x@SITE`, through the queue's
//! own API with the server stopped: each is stored as the server stores a
//! message whose attempt was deferred (`deferred transport`, due again in
//! ten days), so a server started on the directory finds a parked queue.
//! SHARDS must be the server's `queue_shard_count`. Run it again to add to
//! the queue.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use towerpost_protocol::Address;
use towerpost_queue::{Envelope, Queue, QueueSettings, QueueState, Recipient, RecipientStatus};

/// Messages in flight at once: enough that each shard's group commit
/// takes hundreds per fsync.
const IN_FLIGHT: usize = 2048;

struct Plan {
    directory: std::path::PathBuf,
    shards: usize,
    messages: u64,
    domains: u64,
    site: Option<(String, u64)>,
}

fn plan() -> Result<Plan, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, what: &str| -> Result<u64, String> {
        args[i]
            .parse()
            .map_err(|_| format!("{what} must be a number, not {:?}", args[i]))
    };
    if args.len() != 4 && args.len() != 6 {
        return Err(
            "usage: fill_queue QUEUE_DIRECTORY SHARDS MESSAGES DOMAINS [SITE SITE_MESSAGES]".into(),
        );
    }
    let shards = usize::try_from(number(1, "SHARDS")?).map_err(|e| e.to_string())?;
    let domains = number(3, "DOMAINS")?.max(1);
    let site = if args.len() == 6 {
        Some((args[4].clone(), number(5, "SITE_MESSAGES")?))
    } else {
        None
    };
    Ok(Plan {
        directory: args[0].clone().into(),
        shards,
        messages: number(2, "MESSAGES")?,
        domains,
        site,
    })
}

fn parked(recipient: &str, now: u64) -> Result<(Envelope, Vec<u8>), String> {
    let address = Address::parse(recipient).map_err(|e| format!("{recipient}: {e:?}"))?;
    let mut content = format!(
        "Received: from bench.test (localhost [127.0.0.1])\r\n\tby fill_queue\r\n\
         From: <sender@bench.test>\r\nTo: <{recipient}>\r\nSubject: parked\r\n\r\n"
    )
    .into_bytes();
    while content.len() < 1024 {
        content
            .extend_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijkl\r\n");
    }
    let mut rcpt = Recipient::new(address);
    rcpt.status = RecipientStatus::Deferred {
        dsn: "4.3.2".into(),
        reason: "deferred transport".into(),
    };
    let sender = Address::parse("sender@bench.test").map_err(|e| format!("{e:?}"))?;
    let mut envelope = Envelope::new(Some(sender), vec![rcpt], now, content.len() as u64);
    envelope.state = QueueState::Deferred;
    envelope.next_attempt = now + Duration::from_secs(10 * 86_400).as_secs();
    envelope.client = "localhost[127.0.0.1]".into();
    envelope.helo = "bench.test".into();
    Ok((envelope, content))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let plan = plan()?;
    let queue = Queue::open(QueueSettings {
        directory: plan.directory.clone(),
        shards: plan.shards,
    })
    .await
    .map_err(|e| e.to_string())?;
    // No queue manager reads what the queue announces: about 100 bytes per
    // message stay in memory until the end, a price a tool can pay.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let started = Instant::now();
    let mut recipients = (0..plan.messages).map(|i| format!("x@d{}.test", i % plan.domains));
    let site: Vec<String> = match &plan.site {
        Some((site, n)) => (0..*n).map(|_| format!("x@{site}")).collect(),
        None => Vec::new(),
    };
    let mut all = recipients.by_ref().chain(site);
    let mut writing = JoinSet::new();
    let mut stored = 0u64;
    loop {
        while writing.len() < IN_FLIGHT {
            let Some(recipient) = all.next() else { break };
            let (envelope, content) = parked(&recipient, now)?;
            let queue = queue.clone();
            writing.spawn(async move {
                let id = queue.new_id();
                queue.enqueue(id, &envelope, content).await
            });
        }
        match writing.join_next().await {
            Some(done) => {
                done.map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                stored += 1;
                if stored.is_multiple_of(100_000) {
                    eprintln!("fill_queue: {stored} stored, {:?}", started.elapsed());
                }
            }
            None => break,
        }
    }
    queue.shutdown().await;
    eprintln!(
        "fill_queue: {stored} messages stored in {}, {:.1} s",
        plan.directory.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
