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
mod index;
mod schedule;

pub use index::{DestinationIndex, MemoryIndex};

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::delivery::DeliveryService;
use crate::error::QueueError;
use crate::id::QueueId;
use crate::message::QueueState;
use crate::queue::Queue;

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
}

/// A delivery transport and its per-destination limits.
#[derive(Clone)]
pub struct Transport {
    /// The delivery agent.
    pub service: DeliveryService,
    /// Parallel deliveries per destination (`…_destination_concurrency_limit`).
    pub concurrency_limit: usize,
    /// Recipients per delivery (`…_destination_recipient_limit`).
    pub recipient_limit: usize,
}

/// Resolves a recipient domain to `(transport, nexthop)`.
pub type Router = Arc<dyn Fn(&str) -> (String, String) + Send + Sync>;

/// What an attempt did with its message.
#[derive(Debug)]
enum Disposition {
    /// Delivered, bounced or gone: nothing left to schedule.
    Done,
    /// Some recipients remain; try again at this Unix time. The domains
    /// of the deferred recipients feed the fast-flush index.
    Deferred(u64, Vec<String>),
}

/// What a flush names (`ETRN`/`postqueue -s`, `postqueue -f`, `postqueue -i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushScope {
    /// Deferred mail with a recipient in this domain (lower-case).
    Site(String),
    /// All deferred mail.
    All,
    /// One message.
    Message(QueueId),
}

/// Which recipients of one attempt may pass `defer_transports`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Release {
    /// The attempt was asked for by a flush: ignore the stored next
    /// attempt time.
    forced: bool,
    /// Every recipient (`postqueue -f` / `-i`).
    all: bool,
    /// Sites flushed, and when: a recipient in such a domain of a message
    /// that arrived before that time passes.
    sites: Arc<HashMap<String, SystemTime>>,
}

impl Release {
    pub(crate) fn releases(&self, domain: &str, arrival: SystemTime) -> bool {
        self.all || self.sites.get(domain).is_some_and(|t| arrival <= *t)
    }
}

/// Everything an attempt needs, shared by all attempts.
pub(crate) struct Shared {
    queue: Queue,
    settings: ManagerSettings,
    transports: HashMap<String, Transport>,
    router: Router,
    /// One semaphore per (transport, nexthop): the destination
    /// concurrency limit.
    destinations: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
}

/// A request to the manager task.
enum Command {
    Flush(FlushScope, tokio::sync::oneshot::Sender<usize>),
    /// Flush and report each message's next attempt.
    FlushWait(
        FlushScope,
        tokio::sync::oneshot::Sender<Vec<(QueueId, tokio::sync::oneshot::Receiver<String>)>>,
    ),
}

/// Handle to the running queue manager.
pub struct QueueManager {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    flusher: Flusher,
}

/// Asks the queue manager to deliver deferred mail now; cheap to clone.
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
        }
    }
}

impl Flusher {
    /// Makes the deferred mail that `scope` names due now, past
    /// `defer_transports` for the flushed recipients only. Returns how many
    /// messages were scheduled; mail of that scope that is being delivered
    /// or arrives in the meantime is covered too.
    pub async fn flush(&self, scope: FlushScope) -> Result<usize, QueueError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::Flush(scope, reply))
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::FlushWait(scope, reply))
            .await
            .map_err(|_| QueueError::closed())?;
        let pending = answer.await.map_err(|_| QueueError::closed())?;
        let mut out = Vec::with_capacity(pending.len());
        for (id, outcome) in pending {
            let text = outcome
                .await
                .unwrap_or_else(|_| "not attempted (shutdown)".into());
            out.push((id, text));
        }
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
        let arrivals = queue.take_arrivals().ok_or_else(QueueError::closed)?;
        let mut state = Schedule::default();
        for entry in queue.entries().await? {
            match entry.envelope.state {
                QueueState::Hold => {}
                QueueState::Deferred => {
                    state.defer(entry.id, entry.envelope.next_attempt);
                    for r in &entry.envelope.recipients {
                        state.index.add(&domain_of(&r.address), entry.id);
                    }
                }
                QueueState::Incoming | QueueState::Active => state.ready.push_back(entry.id),
            }
        }
        let shared = Arc::new(Shared {
            queue,
            settings,
            transports,
            router,
            destinations: Mutex::new(HashMap::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (commands, inbox) = mpsc::channel(64);
        let task = tokio::spawn(run(shared, state, arrivals, inbox, stopped));
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

struct Schedule {
    ready: VecDeque<QueueId>,
    deferred: BTreeSet<(u64, QueueId)>,
    /// Each deferred message's entry in `deferred`, so a flush can take it
    /// out instead of leaving a stale one behind.
    due: HashMap<QueueId, u64>,
    /// Messages being delivered, with when their attempt started.
    active: HashMap<QueueId, SystemTime>,
    index: Box<dyn DestinationIndex>,
    /// Messages a flush asked for by id or as part of a site or `-f`.
    forced: HashSet<QueueId>,
    /// Messages whose every recipient a flush released (`-i`).
    released: HashSet<QueueId>,
    /// Sites flushed and when (copy-on-write: attempts hold snapshots).
    sites: Arc<HashMap<String, SystemTime>>,
    /// When `postqueue -f` last ran.
    all_since: Option<SystemTime>,
    /// `flush --wait` callers: told the outcome of the first attempt that
    /// starts after they asked.
    waiters: HashMap<QueueId, Vec<(SystemTime, tokio::sync::oneshot::Sender<String>)>>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            ready: VecDeque::new(),
            deferred: BTreeSet::new(),
            due: HashMap::new(),
            active: HashMap::new(),
            index: Box::new(MemoryIndex::default()),
            forced: HashSet::new(),
            released: HashSet::new(),
            sites: Arc::new(HashMap::new()),
            all_since: None,
            waiters: HashMap::new(),
        }
    }
}

/// The recipient's domain as the index keys it.
pub(crate) fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl Schedule {
    /// Carries out a flush; returns the messages scheduled.
    fn flush(&mut self, scope: FlushScope, now: SystemTime) -> Vec<QueueId> {
        let ids: Vec<QueueId> = match &scope {
            FlushScope::Site(site) => {
                Arc::make_mut(&mut self.sites).insert(site.clone(), now);
                self.index.ids(site)
            }
            FlushScope::All => {
                self.all_since = Some(now);
                self.deferred.iter().map(|(_, id)| *id).collect()
            }
            FlushScope::Message(id) => {
                self.released.insert(*id);
                vec![*id]
            }
        };
        for id in &ids {
            self.forced.insert(*id);
            self.undefer(*id);
            if !self.active.contains_key(id) {
                self.ready.push_back(*id);
            }
        }
        ids
    }

    /// Tells `flush --wait` callers what the attempt that started at
    /// `started` did.
    fn notify_waiters(&mut self, id: QueueId, started: SystemTime, summary: &str) {
        if let Some(list) = self.waiters.get_mut(&id) {
            let (done, keep): (Vec<_>, Vec<_>) =
                list.drain(..).partition(|(asked, _)| started >= *asked);
            for (_, tx) in done {
                let _ = tx.send(summary.to_owned());
            }
            if keep.is_empty() {
                self.waiters.remove(&id);
            } else {
                *list = keep;
            }
        }
    }

    /// What the attempt for `id` may release.
    fn release_for(&mut self, id: QueueId, arrival_cutoff: Option<SystemTime>) -> Release {
        let all = self.released.remove(&id)
            || self
                .all_since
                .zip(arrival_cutoff)
                .is_some_and(|(since, arrival)| arrival <= since);
        Release {
            forced: self.forced.remove(&id),
            all,
            sites: self.sites.clone(),
        }
    }

    /// Whether a flush happened, for one of these domains or for all,
    /// after an attempt started: then the attempt could not see it and
    /// must run again.
    fn flushed_during(&self, started: SystemTime, domains: &[String]) -> bool {
        self.all_since.is_some_and(|t| t >= started)
            || domains
                .iter()
                .any(|d| self.sites.get(d).is_some_and(|t| *t >= started))
    }

    fn defer(&mut self, id: QueueId, due: u64) {
        if let Some(old) = self.due.insert(id, due) {
            self.deferred.remove(&(old, id));
        }
        self.deferred.insert((due, id));
    }

    /// Takes a message out of the deferred set (it is due now).
    fn undefer(&mut self, id: QueueId) {
        if let Some(old) = self.due.remove(&id) {
            self.deferred.remove(&(old, id));
        }
    }

    /// Moves deferred mail that is due into the ready queue.
    fn scan_deferred(&mut self, now: u64) {
        while let Some(&(due, id)) = self.deferred.first() {
            if due > now {
                break;
            }
            self.deferred.pop_first();
            self.due.remove(&id);
            self.ready.push_back(id);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn run(
    shared: Arc<Shared>,
    mut state: Schedule,
    mut arrivals: mpsc::UnboundedReceiver<QueueId>,
    mut inbox: mpsc::Receiver<Command>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut attempts: JoinSet<(QueueId, Disposition, String)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, QueueId> = HashMap::new();
    let mut scan = tokio::time::interval(shared.settings.queue_run_delay);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Start what the active limit allows.
        while state.active.len() < shared.settings.active_limit {
            let Some(id) = state.ready.pop_front() else {
                break;
            };
            if state.active.contains_key(&id) {
                continue;
            }
            state.active.insert(id, SystemTime::now());
            // Messages arrive before their id's time passes; the flush
            // cut-off compares with it.
            let release = state.release_for(id, Some(id.timestamp()));
            let handle = attempts.spawn(attempt::run(shared.clone(), id, release));
            running.insert(handle.id(), id);
        }
        tokio::select! {
            _ = &mut stop => break,
            Some(id) = arrivals.recv() => state.ready.push_back(id),
            Some(command) = inbox.recv() => match command {
                Command::Flush(scope, reply) => {
                    let n = state.flush(scope, SystemTime::now()).len();
                    let _ = reply.send(n);
                }
                Command::FlushWait(scope, reply) => {
                    let now = SystemTime::now();
                    let ids = state.flush(scope, now);
                    let pending = ids
                        .into_iter()
                        .map(|id| {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            state.waiters.entry(id).or_default().push((now, tx));
                            (id, rx)
                        })
                        .collect();
                    let _ = reply.send(pending);
                }
            },
            Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                match done {
                    Ok((task, (id, disposition, summary))) => {
                        running.remove(&task);
                        let started = state.active.remove(&id).unwrap_or(UNIX_EPOCH);
                        state.notify_waiters(id, started, &summary);
                        match disposition {
                            Disposition::Done => state.index.remove(id),
                            Disposition::Deferred(due, domains) => {
                                state.index.remove(id);
                                for d in &domains {
                                    state.index.add(d, id);
                                }
                                if state.flushed_during(started, &domains) {
                                    // A flush arrived while this attempt ran.
                                    state.forced.insert(id);
                                    state.ready.push_back(id);
                                } else {
                                    state.defer(id, due);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // A bug in an attempt: its message stays as stored;
                        // retry it after the usual backoff.
                        if let Some(id) = running.remove(&e.id()) {
                            tracing::error!(target: "towerpost::qmgr", "{id}: delivery attempt failed: {e}");
                            state.active.remove(&id);
                            let due = unix_now() + shared.settings.minimal_backoff_time.as_secs();
                            state.defer(id, due);
                        }
                    }
                }
            }
            _ = scan.tick() => state.scan_deferred(unix_now()),
        }
    }
    attempts.shutdown().await;
}
