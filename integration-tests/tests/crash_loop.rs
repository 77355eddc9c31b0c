//! Crash loop: mail keeps arriving over many sessions while the server is
//! SIGKILLed at random moments and restarted, several times; then the
//! queue drains. Every message that got its 250 is delivered at least
//! once or still queued, parked mail stays parked and flushable, nothing
//! is delivered that the server never took, and duplicates (delivered,
//! then killed before the removal was committed) are counted and shown.
//!
//! The schedule is seeded (`CRASH_LOOP_SEED` repeats a run); the seed is
//! printed. Load and kills are bounded in count and time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use integration_tests::Server;
use integration_tests::sink::Sink;

/// At most this many messages; the load runs until the last kill.
const MESSAGES: usize = 2000;
/// Pause between one client's messages.
const PACE: Duration = Duration::from_millis(15);
const CLIENTS: usize = 6;
const KILLS: usize = 5;
const LOAD_LIMIT: Duration = Duration::from_secs(90);
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// A small xorshift generator: the test needs a repeatable schedule, not
/// statistical quality, and no dependency for that.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a client knows about one message it tried to send.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// 250 with this queue id.
    Acked(String),
    /// The final dot was sent and no reply came: the server may or may
    /// not have committed it (a client would send it again).
    InDoubt,
    /// The session broke before the final dot: the server never had it.
    NotSent,
    /// Refused with this reply (4xx while shutting down, say).
    Refused(String),
}

/// The recipients of message `n`: most to one relayed site, every fourth
/// to three recipients, every seventh also to the parked site.
fn recipients(n: usize) -> Vec<String> {
    let mut to = vec![format!("r{n}@relay.test")];
    if n.is_multiple_of(4) {
        to.push(format!("s{n}@relay.test"));
        to.push(format!("t{n}@relay.test"));
    }
    if n.is_multiple_of(7) {
        to.push(format!("p{n}@parked.test"));
    }
    if n % 21 == 3 {
        // Parked only.
        to = vec![format!("q{n}@parked.test")];
    }
    to
}

fn marker(n: usize) -> String {
    format!("crash-loop-{n:04}")
}

/// One SMTP transaction, telling apart where it broke.
fn send(addr: SocketAddr, n: usize) -> Fate {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Fate::NotSent;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(clone) = stream.try_clone() else {
        return Fate::NotSent;
    };
    let mut reader = BufReader::new(clone);
    let mut writer = stream;
    let mut reply = || -> Option<String> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line.trim_end().to_owned());
            }
        }
    };
    let Some(greeting) = reply() else {
        return Fate::NotSent;
    };
    if !greeting.starts_with("220") {
        return Fate::Refused(greeting);
    }
    let mut commands = vec![
        "EHLO client.test".to_owned(),
        "MAIL FROM:<a@example.test>".into(),
    ];
    commands.extend(recipients(n).iter().map(|r| format!("RCPT TO:<{r}>")));
    commands.push("DATA".into());
    for c in &commands {
        if writer.write_all(format!("{c}\r\n").as_bytes()).is_err() {
            return Fate::NotSent;
        }
        match reply() {
            None => return Fate::NotSent,
            Some(r) if r.starts_with('2') || r.starts_with('3') => {}
            Some(r) => return Fate::Refused(r),
        }
    }
    let body = format!(
        "Subject: {}\r\n\r\n{}\r\n.\r\n",
        marker(n),
        "line of body text\r\n".repeat(n % 50)
    );
    if writer.write_all(body.as_bytes()).is_err() {
        // Part of the content may be out; without the dot it is nothing.
        return Fate::NotSent;
    }
    match reply() {
        None => Fate::InDoubt,
        Some(r) if r.starts_with("250") => {
            let _ = writer.write_all(b"QUIT\r\n");
            Fate::Acked(r.rsplit(' ').next().unwrap_or_default().to_owned())
        }
        Some(r) => Fate::Refused(r),
    }
}

/// Message number → recipient → how many copies a sink received.
fn copies(sinks: &[&Sink]) -> BTreeMap<usize, BTreeMap<String, usize>> {
    let mut got: BTreeMap<usize, BTreeMap<String, usize>> = BTreeMap::new();
    for sink in sinks {
        for m in sink.messages() {
            let text = String::from_utf8_lossy(&m.data);
            let Some(n) = text
                .split("crash-loop-")
                .nth(1)
                .and_then(|t| t.get(..4))
                .and_then(|t| t.parse().ok())
            else {
                panic!("a message the test never sent was delivered: {text}");
            };
            for r in m.rcpt_to {
                *got.entry(n).or_default().entry(r).or_default() += 1;
            }
        }
    }
    got
}

#[test]
fn acknowledged_mail_survives_repeated_kill_9_under_load() {
    let seed = std::env::var("CRASH_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash loop: CRASH_LOOP_SEED={seed}");
    let mut rng = Rng(seed);

    let relay = Sink::start();
    let parked = Sink::start();
    let server = Server::start(&format!(
        "queue_run_delay = \"1s\"\nminimal_backoff_time = \"1s\"\nmaximal_backoff_time = \"2s\"\n\
         relay_domains = [\"relay.test\", \"parked.test\"]\n\
         defer_transports = [\"etrn-only\"]\n\
         [transport.etrn-only]\ntype = \"smtp\"\n\
         [transport_maps]\n\
         \"relay.test\" = \"smtp:[127.0.0.1]:{}\"\n\
         \"parked.test\" = \"etrn-only:[127.0.0.1]:{}\"\n",
        relay.addr().port(),
        parked.addr().port()
    ));
    let addr = Arc::new(RwLock::new(server.addr()));
    let server = Arc::new(Mutex::new(server));
    let fates: Arc<Mutex<BTreeMap<usize, Fate>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, fates, next, done) =
                (addr.clone(), fates.clone(), next.clone(), done.clone());
            std::thread::spawn(move || {
                while started.elapsed() < LOAD_LIMIT && !done.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= MESSAGES {
                        break;
                    }
                    let at = *addr.read().unwrap();
                    let fate = send(at, n);
                    fates.lock().unwrap().insert(n, fate);
                    std::thread::sleep(PACE);
                }
            })
        })
        .collect();

    // The killer: SIGKILL at a random moment, restart, again.
    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(300 + rng.below(1500)));
        let mut s = server.lock().unwrap();
        s.kill9();
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        s.restart();
        *addr.write().unwrap() = s.addr();
        eprintln!(
            "crash loop: kill {} at {:.1} s, {} messages tried",
            kill + 1,
            started.elapsed().as_secs_f64(),
            next.load(Ordering::Relaxed).min(MESSAGES)
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let fates = fates.lock().unwrap().clone();
    let server = server.lock().unwrap();

    let acked: BTreeMap<usize, String> = fates
        .iter()
        .filter_map(|(n, f)| match f {
            Fate::Acked(id) => Some((*n, id.clone())),
            _ => None,
        })
        .collect();
    let in_doubt: BTreeSet<usize> = fates
        .iter()
        .filter(|(_, f)| **f == Fate::InDoubt)
        .map(|(n, _)| *n)
        .collect();
    let refused: Vec<_> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Refused(_)))
        .collect();
    eprintln!(
        "crash loop: {} tried, {} acknowledged, {} in doubt, {} not sent, {} refused {:?}",
        fates.len(),
        acked.len(),
        in_doubt.len(),
        fates.values().filter(|f| **f == Fate::NotSent).count(),
        refused.len(),
        refused.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        acked.len() >= 200,
        "the load should mostly get through: {} acknowledged",
        acked.len()
    );

    // Drain: every relayed recipient of every acknowledged message arrives.
    let wanted = |n: &usize, site: &str| -> BTreeSet<String> {
        recipients(*n)
            .into_iter()
            .filter(|r| r.ends_with(site))
            .collect()
    };
    let covered = |got: &BTreeMap<usize, BTreeMap<String, usize>>, site: &str| {
        acked.keys().all(|n| {
            let have: BTreeSet<String> = got
                .get(n)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            wanted(n, site).is_subset(&have)
        })
    };
    let deadline = Instant::now() + DRAIN_LIMIT;
    while !covered(&copies(&[&relay]), "@relay.test") {
        assert!(
            Instant::now() < deadline,
            "acknowledged mail was not delivered; missing: {:?}",
            acked
                .iter()
                .filter(|(n, _)| {
                    let got = copies(&[&relay]);
                    let have: BTreeSet<String> = got
                        .get(n)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    !wanted(n, "@relay.test").is_subset(&have)
                })
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Parked mail is still parked, under the id its 250 gave.
    assert!(parked.messages().is_empty(), "parked mail was delivered");
    let queued: BTreeSet<String> = server.queue_ids().into_iter().collect();
    let parked_acked: BTreeMap<usize, String> = acked
        .iter()
        .filter(|(n, _)| !wanted(n, "@parked.test").is_empty())
        .map(|(n, id)| (*n, id.clone()))
        .collect();
    for (n, id) in &parked_acked {
        assert!(
            queued.contains(id),
            "parked message {n} ({id}) is not queued: {queued:?}"
        );
    }
    // In-doubt messages may be queued too; nothing else is.
    let explained = queued.len() - parked_acked.len();
    assert!(
        explained <= in_doubt.len(),
        "{} queued beyond the parked mail with only {} in doubt",
        explained,
        in_doubt.len()
    );

    // And flushable.
    let (status, out, err) = server.cli(&["flush", "--all"]);
    assert!(status.success(), "{out}{err}");
    let deadline = Instant::now() + DRAIN_LIMIT;
    while !covered(&copies(&[&parked]), "@parked.test") {
        assert!(
            Instant::now() < deadline,
            "flushed parked mail did not arrive"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Nothing arrived that the server never took, and duplicates counted.
    let got = copies(&[&relay, &parked]);
    let mut duplicates = 0;
    for (n, rcpts) in &got {
        assert!(
            acked.contains_key(n) || in_doubt.contains(n),
            "message {n} was delivered but never acknowledged ({:?})",
            fates.get(n)
        );
        duplicates += rcpts.values().map(|c| c - 1).sum::<usize>();
    }
    let delivered_in_doubt = in_doubt.iter().filter(|n| got.contains_key(n)).count();
    eprintln!(
        "crash loop: delivered {} messages; {} duplicate recipient copies; \
         {} of {} in-doubt messages delivered; {:.1} s",
        got.len(),
        duplicates,
        delivered_in_doubt,
        in_doubt.len(),
        started.elapsed().as_secs_f64()
    );
}
