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
mod schedule;

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
    /// Some recipients remain; try again at this Unix time.
    Deferred(u64),
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

/// Handle to the running queue manager.
pub struct QueueManager {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
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
                QueueState::Deferred => state.defer(entry.id, entry.envelope.next_attempt),
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
        let task = tokio::spawn(run(shared, state, arrivals, stopped));
        Ok(Self { stop, task })
    }

    /// Stops scheduling and abandons attempts in flight: what they had not
    /// stored yet is attempted again after the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[derive(Default)]
struct Schedule {
    ready: VecDeque<QueueId>,
    deferred: BTreeSet<(u64, QueueId)>,
    active: HashSet<QueueId>,
}

impl Schedule {
    fn defer(&mut self, id: QueueId, due: u64) {
        self.deferred.insert((due, id));
    }

    /// Moves deferred mail that is due into the ready queue.
    fn scan_deferred(&mut self, now: u64) {
        while let Some(&(due, id)) = self.deferred.first() {
            if due > now {
                break;
            }
            self.deferred.pop_first();
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
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut attempts: JoinSet<(QueueId, Disposition)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, QueueId> = HashMap::new();
    let mut scan = tokio::time::interval(shared.settings.queue_run_delay);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Start what the active limit allows.
        while state.active.len() < shared.settings.active_limit {
            let Some(id) = state.ready.pop_front() else {
                break;
            };
            if state.active.insert(id) {
                let handle = attempts.spawn(attempt::run(shared.clone(), id));
                running.insert(handle.id(), id);
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            Some(id) = arrivals.recv() => state.ready.push_back(id),
            Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                match done {
                    Ok((task, (id, disposition))) => {
                        running.remove(&task);
                        state.active.remove(&id);
                        if let Disposition::Deferred(due) = disposition {
                            state.defer(id, due);
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
