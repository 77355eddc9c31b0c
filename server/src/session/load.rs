//! What all sessions share and must not exceed together: their number
//! (`smtpd_session_limit`) and the message content they hold in memory
//! (`smtpd_message_memory_limit`). Both come from the network, so both
//! are bounded, whatever the number of client addresses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Memory is taken in steps of this size, so that a growing body costs
/// one atomic operation per step, not per read.
const STEP: u64 = 64 * 1024;

/// Sessions above this share of `smtpd_session_limit` put the server
/// under stress: per-record deadlines apply and `smtpd_timeout` shortens,
/// as Postfix's `${stress?…}` defaults do when smtpd runs out of
/// processes.
const STRESS_PERCENT: usize = 80;

/// The shared counters.
#[derive(Debug)]
pub struct Load {
    sessions: AtomicUsize,
    session_limit: usize,
    memory: AtomicU64,
    memory_limit: u64,
}

impl Load {
    /// Counters with these limits; 0 means no limit.
    pub fn new(session_limit: usize, memory_limit: u64) -> Arc<Self> {
        Arc::new(Load {
            sessions: AtomicUsize::new(0),
            session_limit,
            memory: AtomicU64::new(0),
            memory_limit,
        })
    }

    /// A slot for one more session, or `None` at the limit. The slot is
    /// given back when dropped.
    pub fn try_session(self: &Arc<Self>) -> Option<SessionSlot> {
        let limit = self.session_limit;
        self.sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (limit == 0 || n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(self.clone()))
    }

    /// The open sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Acquire)
    }

    /// The limit on sessions (0: none).
    pub fn session_limit(&self) -> usize {
        self.session_limit
    }

    /// Whether so many sessions are open, or so much message memory is
    /// held, that deadlines tighten (clients that trickle must not pin
    /// the memory either).
    pub fn stressed(&self) -> bool {
        let over = |used: u64, limit: u64| {
            limit != 0 && used.saturating_mul(100) >= limit.saturating_mul(STRESS_PERCENT as u64)
        };
        over(self.sessions() as u64, self.session_limit as u64)
            || over(self.memory(), self.memory_limit)
    }

    /// Whether a message of `bytes` could never fit, even with nothing
    /// else held.
    pub fn beyond_budget(&self, bytes: u64) -> bool {
        self.memory_limit != 0 && bytes > self.memory_limit
    }

    /// Whether `bytes` more could be held now (a declared `SIZE=`).
    pub fn has_room_for(&self, bytes: u64) -> bool {
        self.memory_limit == 0
            || self.memory.load(Ordering::Acquire).saturating_add(bytes) <= self.memory_limit
    }

    fn reserve(&self, bytes: u64) -> bool {
        let limit = self.memory_limit;
        self.memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let want = used.saturating_add(bytes);
                (limit == 0 || want <= limit).then_some(want)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.memory.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Message bytes held now.
    pub fn memory(&self) -> u64 {
        self.memory.load(Ordering::Acquire)
    }
}

/// One session's place; dropping it frees the place.
#[derive(Debug)]
pub struct SessionSlot(Arc<Load>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The memory one message being received holds; dropping it gives the
/// memory back.
#[derive(Debug)]
pub(crate) struct MemoryHold {
    load: Arc<Load>,
    held: u64,
}

impl MemoryHold {
    pub(crate) fn new(load: &Arc<Load>) -> Self {
        MemoryHold {
            load: load.clone(),
            held: 0,
        }
    }

    /// Makes the hold cover `len` bytes; false when the budget is spent
    /// (the hold then stays as it was).
    pub(crate) fn cover(&mut self, len: u64) -> bool {
        if len <= self.held {
            return true;
        }
        let target = len.div_ceil(STEP) * STEP;
        if self.load.reserve(target - self.held) {
            self.held = target;
            true
        } else {
            false
        }
    }
}

impl Drop for MemoryHold {
    fn drop(&mut self) {
        self.load.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_and_limited() {
        let load = Load::new(5, 0);
        let slots: Vec<_> = (0..5).map(|_| load.try_session().unwrap()).collect();
        assert!(load.try_session().is_none());
        assert!(load.stressed());
        drop(slots);
        assert_eq!(load.sessions(), 0);
        assert!(!load.stressed());
        let _one = load.try_session().unwrap();
        let _two = load.try_session().unwrap();
        let _three = load.try_session().unwrap();
        assert!(!load.stressed(), "3 of 5 is below 80%");
        let _four = load.try_session().unwrap();
        assert!(load.stressed());
    }

    #[test]
    fn memory_is_held_in_steps_within_the_budget() {
        let load = Load::new(0, 4 * STEP);
        let mut a = MemoryHold::new(&load);
        assert!(a.cover(1));
        assert_eq!(load.memory(), STEP);
        assert!(a.cover(STEP + 1));
        assert_eq!(load.memory(), 2 * STEP);
        let mut b = MemoryHold::new(&load);
        assert!(b.cover(2 * STEP));
        assert!(!b.cover(2 * STEP + 1), "over budget");
        assert!(!load.has_room_for(1));
        drop(a);
        assert!(load.has_room_for(2 * STEP));
        assert!(b.cover(3 * STEP));
        drop(b);
        assert_eq!(load.memory(), 0);
    }

    #[test]
    fn zero_means_no_limit() {
        let load = Load::new(0, 0);
        let _slots: Vec<_> = (0..1000).map(|_| load.try_session().unwrap()).collect();
        assert!(!load.stressed());
        let mut hold = MemoryHold::new(&load);
        assert!(hold.cover(u64::MAX / 2));
    }
}
