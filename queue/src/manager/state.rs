//! The queue manager's scheduling state, without I/O: which messages are
//! ready, deferred and being delivered, the fast-flush index, and what
//! each pending flush releases.
//!
//! Everything here is bounded by the queue's contents: a flush leaves
//! state only for messages that are queued (a pending [`Release`] per
//! message, taken when its next attempt starts), never for the sites a
//! client names, so no sequence of `ETRN`s can make it grow.
//!
//! Order is by attempt sequence number, not the wall clock: a flush that
//! arrives while a message's attempt runs is seen by the next attempt,
//! whatever the clock does meanwhile.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use tokio::sync::oneshot;

use super::index::DestinationIndex;
use super::{Disposition, FlushScope, Release};
use crate::id::QueueId;
use crate::message::{QueueEntry, QueueState, domain_of};
use crate::queue::Event;

/// The queue's size as the manager sees it, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// New or due messages waiting for an attempt.
    pub incoming: usize,
    /// Messages being delivered.
    pub active: usize,
    /// Messages waiting for their next attempt.
    pub deferred: usize,
    /// Messages on hold.
    pub hold: usize,
    /// Queued messages (not on hold) per recipient domain: the largest,
    /// most first, then the sites asked for.
    pub domains: Vec<(String, usize)>,
}

/// A `flush --wait` caller: told the outcome of the first attempt that
/// started after it asked (`asked` is the attempt count at that time).
struct Waiter {
    asked: u64,
    tx: oneshot::Sender<String>,
}

pub(crate) struct Schedule {
    ready: VecDeque<QueueId>,
    /// The members of `ready`, so a message is never in it twice.
    in_ready: HashSet<QueueId>,
    deferred: BTreeSet<(u64, QueueId)>,
    /// Each deferred message's entry in `deferred`, so a flush can take it
    /// out instead of leaving a stale one behind.
    due: HashMap<QueueId, u64>,
    /// Messages being delivered, with their attempt's sequence number and
    /// what it was released for.
    active: HashMap<QueueId, (u64, Release)>,
    /// Attempts started so far.
    started: u64,
    /// Recipient domain → messages, for every queued message that is not
    /// on hold (so a flush also finds mail that is new or in flight).
    index: Box<dyn DestinationIndex>,
    /// What flushes released since each message's last attempt started.
    releases: HashMap<QueueId, Release>,
    /// Messages on hold (only counted: held mail is not scheduled).
    held: HashSet<QueueId>,
    waiters: HashMap<QueueId, Vec<Waiter>>,
}

impl Schedule {
    pub(crate) fn new(index: Box<dyn DestinationIndex>) -> Self {
        Self {
            ready: VecDeque::new(),
            in_ready: HashSet::new(),
            deferred: BTreeSet::new(),
            due: HashMap::new(),
            active: HashMap::new(),
            started: 0,
            index,
            releases: HashMap::new(),
            held: HashSet::new(),
            waiters: HashMap::new(),
        }
    }

    /// A message found in the queue at start-up.
    pub(crate) fn load(&mut self, entry: &QueueEntry) {
        let envelope = &entry.envelope;
        match envelope.state {
            QueueState::Hold => {
                self.held.insert(entry.id);
                return;
            }
            QueueState::Deferred => self.defer(entry.id, envelope.next_attempt),
            QueueState::Incoming | QueueState::Active => self.push_ready(entry.id),
        }
        for r in &envelope.recipients {
            self.index.add(&domain_of(&r.address), entry.id);
        }
    }

    /// Something the queue reports.
    pub(crate) fn event(&mut self, event: Event) {
        match event {
            Event::Due { id, domains } => {
                self.held.remove(&id);
                for d in &domains {
                    self.index.add(d, id);
                }
                if self.active.contains_key(&id) {
                    // Released or requeued while being delivered: the
                    // attempt's own update cannot know; try again after it.
                    self.releases.entry(id).or_default().forced = true;
                } else {
                    self.undefer(id);
                    self.push_ready(id);
                }
            }
            Event::Held(id) => {
                self.held.insert(id);
                self.forget(id, "on hold");
            }
            Event::Deleted(id) => {
                self.held.remove(&id);
                self.forget(id, "deleted");
            }
        }
    }

    /// A message is out of the schedule (held or deleted). An attempt that
    /// is running ends on its own, and a held one is kept held by it.
    fn forget(&mut self, id: QueueId, why: &str) {
        self.index.remove(id);
        self.undefer(id);
        self.in_ready.remove(&id);
        self.releases.remove(&id);
        self.notify_all(id, why);
    }

    /// Carries out a flush; returns the messages it scheduled.
    pub(crate) fn flush(&mut self, scope: &FlushScope) -> Vec<QueueId> {
        let ids: Vec<QueueId> = match scope {
            FlushScope::Site(site) => self.index.ids(site),
            FlushScope::All => {
                let mut all: HashSet<QueueId> = self.due.keys().copied().collect();
                all.extend(self.active.keys().copied());
                all.extend(self.in_ready.iter().copied());
                all.into_iter().collect()
            }
            FlushScope::Message(id) => vec![*id],
        };
        for &id in &ids {
            let release = self.releases.entry(id).or_default();
            release.forced = true;
            match scope {
                FlushScope::Site(site) => {
                    release.domains.insert(site.clone());
                }
                FlushScope::All | FlushScope::Message(_) => release.all = true,
            }
            if !self.active.contains_key(&id) {
                self.undefer(id);
                self.push_ready(id);
            }
        }
        ids
    }

    /// How many messages are in each state, and per domain: the `top`
    /// largest and each of `sites`. Costs the number of domains at most.
    pub(crate) fn stats(&self, top: usize, sites: &[String]) -> QueueStats {
        let mut domains = self.index.largest(top);
        for site in sites {
            if !domains.iter().any(|(d, _)| d == site) {
                domains.push((site.clone(), self.index.count(site)));
            }
        }
        QueueStats {
            incoming: self.in_ready.len(),
            active: self.active.len(),
            deferred: self.due.len(),
            hold: self.held.len(),
            domains,
        }
    }

    /// Registers a `flush --wait` caller for `id`.
    pub(crate) fn wait_for(&mut self, id: QueueId) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(id).or_default().push(Waiter {
            asked: self.started,
            tx,
        });
        rx
    }

    /// The next message to attempt, if the active limit allows one, and
    /// what flushes released for it.
    pub(crate) fn start_next(&mut self, active_limit: usize) -> Option<(QueueId, Release)> {
        while self.active.len() < active_limit {
            let id = self.ready.pop_front()?;
            if !self.in_ready.remove(&id) || self.active.contains_key(&id) {
                continue; // deleted meanwhile, or already running
            }
            self.started += 1;
            let release = self.releases.remove(&id).unwrap_or_default();
            self.active.insert(id, (self.started, release.clone()));
            return Some((id, release));
        }
        None
    }

    /// An attempt ended.
    pub(crate) fn finished(&mut self, id: QueueId, disposition: Disposition, summary: &str) {
        let Some((seq, release)) = self.active.remove(&id) else {
            return;
        };
        // A flush, release or requeue came while this attempt ran and
        // could not be seen by it.
        let asked_meanwhile = self.releases.contains_key(&id);
        match disposition {
            Disposition::Done | Disposition::Held => {
                if matches!(disposition, Disposition::Done) {
                    // Gone from the queue, even if held meanwhile (a
                    // delivered message is removed all the same).
                    self.held.remove(&id);
                }
                self.index.remove(id);
                // Every caller learns what the last attempt did.
                self.notify_all(id, summary);
                if asked_meanwhile {
                    // The attempt found it on hold (or gone) while the
                    // operator released it: look once more.
                    self.push_ready(id);
                }
            }
            Disposition::Deferred(due, domains) => {
                self.index.remove(id);
                for d in &domains {
                    self.index.add(d, id);
                }
                self.notify_started_before(id, seq, summary);
                self.after_attempt(id, due, asked_meanwhile);
            }
            Disposition::Retry(due) => {
                // Nothing was stored: what the flush released is still
                // owed, at the next attempt.
                if release.forced {
                    self.releases.entry(id).or_default().merge(release);
                }
                self.notify_started_before(id, seq, summary);
                self.after_attempt(id, due, asked_meanwhile);
            }
        }
    }

    fn after_attempt(&mut self, id: QueueId, due: u64, asked_meanwhile: bool) {
        if asked_meanwhile {
            self.push_ready(id);
        } else {
            self.defer(id, due);
        }
    }

    /// Tells the `flush --wait` callers who asked before attempt `seq`
    /// started what it did.
    fn notify_started_before(&mut self, id: QueueId, seq: u64, summary: &str) {
        if let Some(list) = self.waiters.get_mut(&id) {
            let (done, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|w| w.asked < seq);
            for w in done {
                let _ = w.tx.send(summary.to_owned());
            }
            if keep.is_empty() {
                self.waiters.remove(&id);
            } else {
                *list = keep;
            }
        }
    }

    fn notify_all(&mut self, id: QueueId, summary: &str) {
        for w in self.waiters.remove(&id).unwrap_or_default() {
            let _ = w.tx.send(summary.to_owned());
        }
    }

    fn push_ready(&mut self, id: QueueId) {
        if self.in_ready.insert(id) {
            self.ready.push_back(id);
        }
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
    pub(crate) fn scan_deferred(&mut self, now: u64) {
        while let Some(&(due, id)) = self.deferred.first() {
            if due > now {
                break;
            }
            self.deferred.pop_first();
            self.due.remove(&id);
            self.push_ready(id);
        }
    }

    /// Nothing is ready or being delivered.
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.in_ready.is_empty() && self.active.is_empty()
    }

    /// How many messages hold a pending release.
    #[cfg(test)]
    pub(crate) fn pending_releases(&self) -> usize {
        self.releases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::MemoryIndex;
    use crate::message::{Envelope, Recipient};
    use towerpost_protocol::Address;

    fn schedule() -> Schedule {
        Schedule::new(Box::new(MemoryIndex::default()))
    }

    fn deferred(id: u64, domains: &[&str]) -> QueueEntry {
        QueueEntry {
            id: QueueId::from_u64(id),
            envelope: Envelope {
                state: QueueState::Deferred,
                next_attempt: 10_000,
                ..Envelope::new(
                    Some(Address::parse("s@example.test").unwrap()),
                    domains
                        .iter()
                        .map(|d| Recipient::new(Address::parse(&format!("u@{d}")).unwrap()))
                        .collect(),
                    1,
                    1,
                )
            },
        }
    }

    fn id(n: u64) -> QueueId {
        QueueId::from_u64(n)
    }

    #[test]
    fn a_site_flush_releases_that_site_once() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test", "b.test"]));
        assert_eq!(s.flush(&FlushScope::Site("a.test".into())), [id(1)]);
        let (got, release) = s.start_next(10).unwrap();
        assert_eq!(got, id(1));
        assert!(release.forced && release.releases("a.test"));
        assert!(!release.releases("b.test"), "another site's recipient");
        // The attempt fails: the message waits again, and its next routine
        // attempt releases nothing.
        s.finished(
            id(1),
            Disposition::Deferred(500, vec!["a.test".into()]),
            "deferred 1",
        );
        assert_eq!(s.pending_releases(), 0);
        s.scan_deferred(600);
        let (_, release) = s.start_next(10).unwrap();
        assert_eq!(release, Release::default());
    }

    #[test]
    fn a_flush_all_does_not_outlive_its_attempt() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.flush(&FlushScope::All);
        let (_, release) = s.start_next(10).unwrap();
        assert!(release.all);
        s.finished(
            id(1),
            Disposition::Deferred(500, vec!["a.test".into()]),
            "deferred 1",
        );
        s.scan_deferred(600);
        let (_, release) = s.start_next(10).unwrap();
        assert!(!release.all && !release.forced);
    }

    #[test]
    fn etrn_for_sites_without_mail_leaves_no_state() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        for n in 0..10_000 {
            assert!(
                s.flush(&FlushScope::Site(format!("s{n}.a.test")))
                    .is_empty()
            );
        }
        assert_eq!(s.pending_releases(), 0);
        assert!(s.start_next(10).is_none());
    }

    #[test]
    fn a_flush_during_an_attempt_runs_the_message_again() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.scan_deferred(20_000);
        let (_, release) = s.start_next(10).unwrap();
        assert!(!release.forced);
        let mut waiter = {
            assert_eq!(s.flush(&FlushScope::Message(id(1))), [id(1)]);
            s.wait_for(id(1))
        };
        s.finished(
            id(1),
            Disposition::Deferred(30_000, vec!["a.test".into()]),
            "deferred 1",
        );
        assert!(
            waiter.try_recv().is_err(),
            "the attempt started before the flush"
        );
        let (_, release) = s.start_next(10).expect("run again at once");
        assert!(release.all);
        s.finished(
            id(1),
            Disposition::Deferred(30_000, vec!["a.test".into()]),
            "deferred 1 (x)",
        );
        assert_eq!(waiter.try_recv().unwrap(), "deferred 1 (x)");
    }

    #[test]
    fn a_message_that_is_done_answers_every_waiter() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.scan_deferred(20_000);
        s.start_next(10).unwrap();
        s.flush(&FlushScope::Site("a.test".into()));
        let mut waiter = s.wait_for(id(1));
        s.finished(id(1), Disposition::Done, "sent 1");
        assert_eq!(waiter.try_recv().unwrap(), "sent 1");
        // The flush came during the attempt: one more look, which finds
        // the message gone, and then nothing is left.
        s.start_next(10).unwrap();
        s.finished(id(1), Disposition::Done, "no longer in the queue");
        assert_eq!(s.pending_releases(), 0);
        assert!(s.start_next(10).is_none());
    }

    #[test]
    fn stats_count_each_state_and_forget_a_held_message_once_delivered() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.load(&deferred(2, &["a.test", "b.test"]));
        s.scan_deferred(20_000);
        s.start_next(1).unwrap();
        let stats = s.stats(10, &["c.test".into()]);
        assert_eq!(
            (stats.incoming, stats.active, stats.deferred, stats.hold),
            (1, 1, 0, 0)
        );
        assert_eq!(
            stats.domains,
            [
                ("a.test".into(), 2),
                ("b.test".into(), 1),
                ("c.test".into(), 0)
            ]
        );
        // Held while its attempt runs, then delivered all the same.
        s.event(Event::Held(id(1)));
        assert_eq!(s.stats(0, &[]).hold, 1);
        s.finished(id(1), Disposition::Done, "sent 1");
        assert_eq!(s.stats(0, &[]).hold, 0);
        // Found on hold by its attempt: still held.
        s.event(Event::Held(id(2)));
        s.start_next(1);
        assert_eq!(s.stats(0, &[]).hold, 1);
    }

    #[test]
    fn a_storage_error_keeps_the_message_in_the_index() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.scan_deferred(20_000);
        s.start_next(10).unwrap();
        s.finished(id(1), Disposition::Retry(30_000), "deferred (disk)");
        assert_eq!(s.flush(&FlushScope::Site("a.test".into())), [id(1)]);
    }

    #[test]
    fn a_release_while_an_attempt_finds_the_message_held_is_not_lost() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.flush(&FlushScope::Message(id(1)));
        s.start_next(10).unwrap();
        // The operator releases it while the attempt reads "on hold".
        s.event(Event::Due {
            id: id(1),
            domains: vec!["a.test".into()],
        });
        s.finished(id(1), Disposition::Held, "on hold");
        let (again, release) = s.start_next(10).expect("looked at once more");
        assert_eq!(again, id(1));
        assert!(release.forced);
    }

    #[test]
    fn a_failed_attempt_keeps_what_its_flush_released() {
        let mut s = schedule();
        s.load(&deferred(1, &["p.test"]));
        s.flush(&FlushScope::Site("p.test".into()));
        s.start_next(10).unwrap();
        s.finished(id(1), Disposition::Retry(30_000), "deferred (disk)");
        assert!(s.start_next(10).is_none(), "not retried at once");
        s.scan_deferred(30_000);
        let (_, release) = s.start_next(10).unwrap();
        assert!(release.releases("p.test"), "the flush is still owed");
    }

    #[test]
    fn a_held_message_leaves_the_schedule() {
        let mut s = schedule();
        s.load(&deferred(1, &["a.test"]));
        s.event(Event::Held(id(1)));
        assert!(s.flush(&FlushScope::Site("a.test".into())).is_empty());
        assert!(s.flush(&FlushScope::All).is_empty());
        s.scan_deferred(u64::MAX);
        assert!(s.start_next(10).is_none());
    }

    #[test]
    fn new_mail_is_found_by_a_site_flush_and_deletes_leave_nothing() {
        let mut s = schedule();
        s.event(Event::Due {
            id: id(7),
            domains: vec!["a.test".into()],
        });
        assert_eq!(s.flush(&FlushScope::Site("a.test".into())), [id(7)]);
        s.event(Event::Deleted(id(7)));
        assert!(s.start_next(10).is_none());
        assert!(s.flush(&FlushScope::Site("a.test".into())).is_empty());
        assert_eq!(s.pending_releases(), 0);
    }
}
