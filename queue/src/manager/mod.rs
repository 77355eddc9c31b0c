//! The queue manager: schedules queued messages for delivery.
//!
//! One task owns the schedule: a FIFO of messages ready now (new mail and
//! mail due again), a time-ordered set of deferred mail, and the set of
//! messages being delivered (at most `qmgr_message_active_limit`). Each
//! delivery attempt runs as a task of its own (see [`attempt`]) and reports
//! back when it has stored the outcome. Nothing is marked done before the
//! next hop accepted it, so delivery is at-least-once across crashes.
//!
//! `Active` is not written to disk: after a restart every message is
//! scheduled from its stored state, which is what Postfix does when it
//! moves `active` back to `incoming`.

mod attempt;
mod destination;
mod index;
mod schedule;
mod state;
#[cfg(test)]
mod tests;

pub use index::{DestinationIndex, MemoryIndex};
pub use state::QueueStats;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use towerpost_protocol::Route;

use crate::delivery::DeliveryService;
use crate::error::QueueError;
use crate::id::QueueId;
use crate::queue::{Event, Queue};
use state::Schedule;

/// Scheduling settings (Postfix's names).
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// `myhostname`: the reporting MTA in bounces.
    pub myhostname: String,
    /// `queue_run_delay`: how often deferred mail is looked at.
    pub queue_run_delay: Duration,
    /// `minimal_backoff_time`.
    pub minimal_backoff_time: Duration,
    /// `maximal_backoff_time`.
    pub maximal_backoff_time: Duration,
    /// `maximal_queue_lifetime`.
    pub maximal_queue_lifetime: Duration,
    /// `bounce_queue_lifetime`: the lifetime of mail from the null sender.
    pub bounce_queue_lifetime: Duration,
    /// `qmgr_message_active_limit`.
    pub active_limit: usize,
    /// `bounce_size_limit`: larger originals come back as headers only.
    pub bounce_size_limit: usize,
    /// `delay_warning_time`: tell the sender once when mail has waited
    /// this long (zero: never).
    pub delay_warning_time: Duration,
    /// `soft_bounce`: permanent failures are deferred instead.
    pub soft_bounce: bool,
    /// `defer_transports`: these transports are never attempted; their
    /// mail is deferred with `4.3.2 deferred transport`.
    pub defer_transports: HashSet<String>,
    /// `initial_destination_concurrency`: where a destination's
    /// concurrency window starts (it grows with success up to the
    /// transport's limit, and shrinks with failures to connect).
    pub initial_destination_concurrency: usize,
    /// `default_destination_concurrency_failed_cohort_limit`: failed
    /// pseudo-cohorts after which a destination is dead until
    /// `minimal_backoff_time` has passed (0: never).
    pub failed_cohort_limit: u32,
}

/// What kind of delivery agent a transport is: the name its outcomes are
/// logged under (`towerpost/smtp`, as Postfix's daemons). Outcomes decided
/// without an agent (`defer_transports`, a suspended destination, a
/// missing transport) are logged as `error`, as Postfix's error service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// An SMTP client (`smtp`).
    Smtp,
    /// Discards the mail (`discard`).
    Discard,
    /// Refuses or defers it (`error`).
    Error,
}

/// A delivery transport and its per-destination limits.
#[derive(Clone)]
pub struct Transport {
    /// The delivery agent.
    pub service: DeliveryService,
    /// Its kind, for the log.
    pub agent: Agent,
    /// Parallel deliveries per destination (`…_destination_concurrency_limit`).
    pub concurrency_limit: usize,
    /// Recipients per delivery (`…_destination_recipient_limit`).
    pub recipient_limit: usize,
    /// `…_destination_rate_delay`: the pause after one delivery to a
    /// destination ends before the next starts (zero: none).
    pub rate_delay: Duration,
    /// How fast deliveries to one destination may start
    /// (`…_destination_rate_limit`), if limited.
    pub pacing: Option<Pacing>,
}

/// A pace for deliveries to one destination (one transport and next hop):
/// up to `burst` at once, then one every `interval` (a GCRA, from the
/// governor crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Deliveries that may start at once after a quiet period (at least 1).
    pub burst: u32,
    /// Time between deliveries once the burst is spent (not zero).
    pub interval: Duration,
}

/// A destination's pace and when it was last used.
struct Paced {
    limiter: Arc<governor::DefaultDirectRateLimiter>,
    last: std::time::Instant,
    /// After this long unused the pace is back to a full burst, and the
    /// entry can go without changing anything.
    idle_after: Duration,
}

/// Paces kept before unused ones are swept out.
const PACES_SWEPT_ABOVE: usize = 256;

/// Resolves a recipient domain to its transport and next hop.
pub type Router = Arc<dyn Fn(&str) -> Route + Send + Sync>;

/// What an attempt did with its message.
#[derive(Debug)]
enum Disposition {
    /// Delivered, bounced or gone: nothing left to schedule.
    Done,
    /// Found on hold: nothing to schedule until it is released.
    Held,
    /// Some recipients remain; try again at this Unix time. The domains
    /// of the remaining recipients feed the fast-flush index.
    Deferred(u64, Vec<String>),
    /// The queue's storage failed: the message is as it was stored before
    /// the attempt (its index entries stay); try again at this Unix time.
    Retry(u64),
}

/// What a flush names (`ETRN`/`postqueue -s`, `postqueue -f`, `postqueue -i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushScope {
    /// Queued mail with a recipient in this domain (lower-case).
    Site(String),
    /// All queued mail.
    All,
    /// One message.
    Message(QueueId),
}

/// Which recipients of one attempt may pass `defer_transports`: those a
/// flush named since the message's previous attempt started. It is taken
/// when the attempt starts, so a flush releases mail once: what its
/// attempt does not deliver waits for the next flush again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Release {
    /// The attempt was asked for (flush, requeue, release): ignore the
    /// stored next attempt time.
    forced: bool,
    /// Every recipient (`postqueue -f` / `-i`).
    all: bool,
    /// Recipient domains flushed by name (ETRN, `postqueue -s`).
    domains: HashSet<String>,
}

impl Release {
    pub(crate) fn releases(&self, domain: &str) -> bool {
        self.all || self.domains.contains(domain)
    }

    /// Adds what `other` releases.
    pub(crate) fn merge(&mut self, other: Release) {
        self.forced |= other.forced;
        self.all |= other.all;
        self.domains.extend(other.domains);
    }
}

/// The manager's notion of now: the system clock, which tests can move
/// forward to make deferred mail due without waiting.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    skew_secs: Arc<AtomicU64>,
}

impl Clock {
    pub(crate) fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.skew_secs.load(Ordering::Relaxed))
    }

    fn unix_now(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Moves this clock forward.
    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        self.skew_secs.fetch_add(by.as_secs(), Ordering::Relaxed);
    }
}

/// Everything an attempt needs, shared by all attempts.
pub(crate) struct Shared {
    queue: Queue,
    settings: ManagerSettings,
    transports: HashMap<String, Transport>,
    router: Router,
    /// Each destination's concurrency window (and whether it is dead).
    destinations: destination::Destinations,
    /// The pace of each paced destination (bounded: unused ones go).
    paces: Mutex<HashMap<Route, Paced>>,
    paces_sweep_at: std::sync::atomic::AtomicUsize,
    clock: Clock,
}

impl Shared {
    /// Waits until `pacing` lets one more delivery to `key` start.
    pub(crate) async fn pace(&self, key: &Route, pacing: Pacing) {
        let limiter = {
            let mut paces = self.paces.lock().unwrap_or_else(|p| p.into_inner());
            let sweep_at = self.paces_sweep_at.load(Ordering::Relaxed);
            if paces.len() > sweep_at {
                // Keep a pace someone still waits on, and doubling the
                // threshold keeps sweeps rare when many are in use.
                paces.retain(|_, p| {
                    Arc::strong_count(&p.limiter) > 1 || p.last.elapsed() < p.idle_after
                });
                self.paces_sweep_at
                    .store((paces.len() * 2).max(PACES_SWEPT_ABOVE), Ordering::Relaxed);
            }
            let now = std::time::Instant::now();
            let paced = paces.entry(key.clone()).or_insert_with(|| {
                let burst = std::num::NonZeroU32::new(pacing.burst.max(1))
                    .unwrap_or(std::num::NonZeroU32::MIN);
                let interval = pacing.interval.max(Duration::from_micros(1));
                let quota = governor::Quota::with_period(interval)
                    .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
                    .allow_burst(burst);
                Paced {
                    limiter: Arc::new(governor::RateLimiter::direct(quota)),
                    last: now,
                    idle_after: interval * burst.get(),
                }
            });
            paced.last = now;
            paced.limiter.clone()
        };
        limiter.until_ready().await;
    }
}

/// A request to the manager task.
enum Command {
    Flush(FlushScope, tokio::sync::oneshot::Sender<usize>),
    /// Flush and report each message's next attempt.
    FlushWait(
        FlushScope,
        tokio::sync::oneshot::Sender<Vec<(QueueId, tokio::sync::oneshot::Receiver<String>)>>,
    ),
    /// The queue's size by state and per domain.
    Stats {
        top: usize,
        sites: Vec<String>,
        reply: tokio::sync::oneshot::Sender<QueueStats>,
    },
    /// Answer once nothing is ready or being delivered, after making due
    /// what the clock says is due (tests step through the schedule).
    #[cfg(test)]
    WhenIdle(tokio::sync::oneshot::Sender<()>),
}

/// Handle to the running queue manager.
pub struct QueueManager {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    flusher: Flusher,
}

/// Asks the queue manager to deliver deferred mail now, or how much mail
/// it holds ([`stats`](Self::stats)); cheap to clone.
#[derive(Clone, Debug)]
pub struct Flusher {
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Flush(scope, _) | Command::FlushWait(scope, _) => {
                write!(f, "Flush({scope:?})")
            }
            Command::Stats { .. } => f.write_str("Stats"),
            #[cfg(test)]
            Command::WhenIdle(_) => f.write_str("WhenIdle"),
        }
    }
}

impl Flusher {
    /// Makes the queued mail that `scope` names due now, past
    /// `defer_transports` for the flushed recipients only, once. Returns
    /// how many messages were scheduled; a message of that scope that is
    /// being delivered is attempted again as soon as its attempt ends.
    pub async fn flush(&self, scope: FlushScope) -> Result<usize, QueueError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Flush(scope, reply))
            .await
            .map_err(|_| QueueError::closed())?;
        answer.await.map_err(|_| QueueError::closed())
    }

    /// The queue's size by state, and queued messages per domain for the
    /// `top` largest domains and for each of `sites` (lower-case).
    pub async fn stats(&self, top: usize, sites: Vec<String>) -> Result<QueueStats, QueueError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Stats { top, sites, reply })
            .await
            .map_err(|_| QueueError::closed())?;
        answer.await.map_err(|_| QueueError::closed())
    }

    /// Like [`flush`](Self::flush), and reports, for each message
    /// scheduled, what its delivery attempt did (`sent 1`, `deferred 1
    /// (reason)`, …) once it has run.
    pub async fn flush_and_wait(
        &self,
        scope: FlushScope,
    ) -> Result<Vec<(QueueId, String)>, QueueError> {
        self.flush_and_watch(scope, |_, _, _| {}).await
    }

    /// Like [`flush_and_wait`](Self::flush_and_wait), calling `each` with
    /// the number of messages scheduled and each message's outcome as its
    /// attempt ends (in the order they end); the result is in id order.
    pub async fn flush_and_watch(
        &self,
        scope: FlushScope,
        mut each: impl FnMut(usize, QueueId, &str) + Send,
    ) -> Result<Vec<(QueueId, String)>, QueueError> {
        use futures::StreamExt;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::FlushWait(scope, reply))
            .await
            .map_err(|_| QueueError::closed())?;
        let pending = answer.await.map_err(|_| QueueError::closed())?;
        let total = pending.len();
        let mut ending: futures::stream::FuturesUnordered<_> = pending
            .into_iter()
            .map(|(id, outcome)| async move {
                let text = outcome
                    .await
                    .unwrap_or_else(|_| "not attempted (shutdown)".into());
                (id, text)
            })
            .collect();
        let mut out = Vec::with_capacity(total);
        while let Some((id, text)) = ending.next().await {
            each(total, id, &text);
            out.push((id, text));
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }
}

impl QueueManager {
    /// Starts scheduling every message in `queue`, and new ones as they
    /// arrive.
    pub async fn start(
        queue: Queue,
        settings: ManagerSettings,
        transports: HashMap<String, Transport>,
        router: Router,
    ) -> Result<Self, QueueError> {
        Self::start_with_clock(queue, settings, transports, router, Clock::default()).await
    }

    pub(crate) async fn start_with_clock(
        queue: Queue,
        settings: ManagerSettings,
        transports: HashMap<String, Transport>,
        router: Router,
        clock: Clock,
    ) -> Result<Self, QueueError> {
        let events = queue.take_events().ok_or_else(QueueError::closed)?;
        let mut state = Schedule::new(Box::new(MemoryIndex::default()));
        // A page at a time: a million parked messages cost their schedule
        // entries, never a copy of every envelope at once.
        let mut scan = queue.scan();
        while let Some(page) = scan.next_page().await? {
            for entry in &page {
                state.load(entry);
            }
        }
        let flow = destination::FlowSettings {
            initial: settings.initial_destination_concurrency,
            failed_cohort_limit: settings.failed_cohort_limit,
            dead_for: settings.minimal_backoff_time,
        };
        let shared = Arc::new(Shared {
            queue,
            settings,
            transports,
            router,
            destinations: destination::Destinations::new(flow),
            paces: Mutex::new(HashMap::new()),
            paces_sweep_at: std::sync::atomic::AtomicUsize::new(PACES_SWEPT_ABOVE),
            clock,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (commands, inbox) = mpsc::channel(64);
        let task = tokio::spawn(run(shared, state, events, inbox, stopped));
        Ok(Self {
            stop,
            task,
            flusher: Flusher { commands },
        })
    }

    /// A handle for flush requests.
    pub fn flusher(&self) -> Flusher {
        self.flusher.clone()
    }

    /// Stops scheduling and abandons attempts in flight: what they had not
    /// stored yet is attempted again after the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
impl Flusher {
    /// Waits until the manager has nothing ready or in flight, making due
    /// first what its clock says is due.
    pub(crate) async fn when_idle(&self) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::WhenIdle(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    mut state: Schedule,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut inbox: mpsc::Receiver<Command>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut attempts: JoinSet<(QueueId, Disposition, String)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, QueueId> = HashMap::new();
    let mut scan = tokio::time::interval(shared.settings.queue_run_delay);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(test)]
    let mut idle_waiters: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    loop {
        // Start what the active limit allows.
        while let Some((id, release)) = state.start_next(shared.settings.active_limit) {
            let handle = attempts.spawn(attempt::run(shared.clone(), id, release));
            running.insert(handle.id(), id);
        }
        #[cfg(test)]
        if state.is_idle() && events.is_empty() && inbox.is_empty() {
            for w in idle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        // Biased: the queue's events first (an edit or arrival must be seen
        // before a flush that came after it, and before the end of an
        // attempt that wrote after it), then requests, then attempts.
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(event) = events.recv() => state.event(event),
            Some(command) = inbox.recv() => match command {
                Command::Flush(scope, reply) => {
                    let n = state.flush(&scope).len();
                    let _ = reply.send(n);
                }
                Command::FlushWait(scope, reply) => {
                    let ids = state.flush(&scope);
                    let pending = ids.into_iter().map(|id| (id, state.wait_for(id))).collect();
                    let _ = reply.send(pending);
                }
                Command::Stats { top, sites, reply } => {
                    let _ = reply.send(state.stats(top, &sites));
                }
                #[cfg(test)]
                Command::WhenIdle(reply) => {
                    state.scan_deferred(shared.clock.unix_now());
                    idle_waiters.push(reply);
                }
            },
            Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                match done {
                    Ok((task, (id, disposition, summary))) => {
                        running.remove(&task);
                        state.finished(id, disposition, &summary);
                    }
                    Err(e) => {
                        // A bug in an attempt: its message stays as stored;
                        // retry it after the usual backoff.
                        if let Some(id) = running.remove(&e.id()) {
                            tracing::error!(target: "towerpost::qmgr", "{id}: delivery attempt failed: {e}");
                            let due = shared.clock.unix_now() + shared.settings.minimal_backoff_time.as_secs();
                            state.finished(id, Disposition::Retry(due), &format!("deferred (delivery attempt failed: {e})"));
                        }
                    }
                }
            }
            _ = scan.tick() => state.scan_deferred(shared.clock.unix_now()),
        }
    }
    attempts.shutdown().await;
}
