//! Per-destination concurrency as Postfix's queue manager (qmgr_queue.c)
//! runs it with its default feedback: a window that starts at
//! `initial_destination_concurrency`, grows by one with each delivery that
//! reached the next hop (while it is less than the deliveries running plus
//! the initial concurrency, so it stays near what is used) and shrinks by
//! one with each that did not (connection refused or timed out, a 4xx/5xx
//! greeting), never above the transport's `destination_concurrency_limit`
//! nor below 1. Each failure adds 1/window to the failed pseudo-cohorts;
//! when they reach `default_destination_concurrency_failed_cohort_limit`
//! with no success between, the destination is dead: its mail is deferred
//! without attempts ("delivery temporarily suspended") for
//! `minimal_backoff_time`, then it starts over.
//!
//! [`Window`] is the rule without I/O; [`Destinations`] holds one per
//! (transport, next hop) and lets attempts wait for a free place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use towerpost_protocol::Route;

/// The flow-control settings (Postfix's names).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlowSettings {
    /// `initial_destination_concurrency`.
    pub(crate) initial: usize,
    /// `default_destination_concurrency_failed_cohort_limit`; 0: never dead.
    pub(crate) failed_cohort_limit: u32,
    /// How long a dead destination stays dead (`minimal_backoff_time`).
    pub(crate) dead_for: Duration,
}

/// What one delivery tells its destination's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feedback {
    /// The next hop was reached (whatever it said to the recipients).
    Reached,
    /// It could not be reached or refused the session, with why.
    Failed(Why),
    /// Nothing to learn (the agent itself failed).
    None,
}

/// A failure: its RFC 3463 status and its reason (the log's words).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Why {
    pub(crate) dsn: String,
    pub(crate) reason: String,
}

/// Whether a delivery may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    Go,
    Wait,
    /// A rate delay: not before then.
    WaitUntil(Instant),
    /// The destination is dead, with the failure that killed it.
    Dead(Why),
}

/// One destination's window (no I/O, no clock of its own).
#[derive(Debug, Clone)]
pub(crate) struct Window {
    limit: usize,
    initial: usize,
    window: f64,
    active: usize,
    fail_cohorts: f64,
    dead: Option<(Instant, Why)>,
    last_used: Instant,
    /// `destination_rate_delay`: the pause after a delivery ends before
    /// the next may start (Postfix counts it from the end).
    rate_delay: Duration,
    last_done: Option<Instant>,
}

impl Window {
    pub(crate) fn new(limit: usize, rate_delay: Duration, settings: &FlowSettings) -> Self {
        let limit = limit.max(1);
        let initial = settings.initial.clamp(1, limit);
        Self {
            limit,
            initial,
            window: initial as f64,
            active: 0,
            fail_cohorts: 0.0,
            dead: None,
            last_used: Instant::now(),
            rate_delay,
            last_done: None,
        }
    }

    /// Whether a delivery may start now; `forced` (a flush asked for it)
    /// revives a dead destination, as Postfix's flush does.
    pub(crate) fn try_start(&mut self, now: Instant, forced: bool) -> Start {
        self.last_used = now;
        if let Some((until, why)) = &self.dead {
            if now < *until && !forced {
                return Start::Dead(why.clone());
            }
            // Back to life: start over, carefully.
            self.dead = None;
            self.window = self.initial as f64;
            self.fail_cohorts = 0.0;
        }
        if let Some(done) = self.last_done
            && !self.rate_delay.is_zero()
            && now < done + self.rate_delay
        {
            return Start::WaitUntil(done + self.rate_delay);
        }
        if (self.active as f64) < self.window.floor().max(1.0) {
            self.active += 1;
            Start::Go
        } else {
            Start::Wait
        }
    }

    pub(crate) fn finish(&mut self, feedback: Feedback, now: Instant, settings: &FlowSettings) {
        self.active = self.active.saturating_sub(1);
        self.last_used = now;
        self.last_done = Some(now);
        match feedback {
            Feedback::Reached => {
                // Postfix: a success revives a dead destination at once.
                self.dead = None;
                self.fail_cohorts = 0.0;
                if self.window < (self.active + self.initial) as f64 {
                    self.window = (self.window + 1.0).min(self.limit as f64);
                }
            }
            Feedback::Failed(why) => {
                self.fail_cohorts += 1.0 / self.window;
                if settings.failed_cohort_limit > 0
                    && self.fail_cohorts >= f64::from(settings.failed_cohort_limit)
                    && self.dead.is_none()
                {
                    self.dead = Some((now + settings.dead_for, why));
                }
                self.window = (self.window - 1.0).max(1.0);
            }
            Feedback::None => {}
        }
    }

    /// Nothing is running, and nothing is remembered that a fresh window
    /// would not have, or it has not been used for `ttl` (so the entry can
    /// go: Postfix, too, forgets a destination once it has no mail).
    fn forgettable(&self, now: Instant, ttl: Duration) -> bool {
        let fresh = self.dead.is_none()
            && self.fail_cohorts == 0.0
            && self.window == self.initial as f64
            && self
                .last_done
                .is_none_or(|done| now.duration_since(done) >= self.rate_delay);
        let dead_over = self.dead.as_ref().is_none_or(|(until, _)| now >= *until);
        self.active == 0 && dead_over && (fresh || now.duration_since(self.last_used) >= ttl)
    }

    #[cfg(test)]
    fn width(&self) -> f64 {
        self.window
    }
}

struct Destination {
    window: Mutex<Window>,
    changed: tokio::sync::Notify,
}

/// Entries kept before stale ones are swept out.
const SWEPT_ABOVE: usize = 1024;

/// Every destination's window, by (transport, next hop). Bounded: an
/// entry goes when it is back to a fresh window, or unused (and not dead)
/// for `minimal_backoff_time`.
pub(crate) struct Destinations {
    map: Mutex<HashMap<Route, Arc<Destination>>>,
    /// Sweep when the map grows past this (doubling after each sweep, so a
    /// relay with many live destinations does not sweep on every call).
    sweep_at: std::sync::atomic::AtomicUsize,
    settings: FlowSettings,
}

/// A place in a destination's window; give it back with [`Slot::finish`]
/// (dropped, it is given back with nothing learnt).
pub(crate) struct Slot<'a> {
    owner: &'a Destinations,
    key: Route,
    destination: Option<Arc<Destination>>,
}

impl Destinations {
    pub(crate) fn new(settings: FlowSettings) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            sweep_at: std::sync::atomic::AtomicUsize::new(SWEPT_ABOVE),
            settings,
        }
    }

    /// Waits for a place in the destination's window; `Err` with the
    /// reason when the destination is dead.
    pub(crate) async fn start(
        &self,
        key: Route,
        limit: usize,
        rate_delay: Duration,
        forced: bool,
    ) -> Result<Slot<'_>, Why> {
        use std::sync::atomic::Ordering;
        let destination = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > self.sweep_at.load(Ordering::Relaxed) {
                let (now, ttl) = (Instant::now(), self.settings.dead_for);
                map.retain(|_, d| {
                    Arc::strong_count(d) > 1
                        || !d
                            .window
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .forgettable(now, ttl)
                });
                self.sweep_at
                    .store((map.len() * 2).max(SWEPT_ABOVE), Ordering::Relaxed);
            }
            map.entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(Destination {
                        window: Mutex::new(Window::new(limit, rate_delay, &self.settings)),
                        changed: tokio::sync::Notify::new(),
                    })
                })
                .clone()
        };
        loop {
            let changed = destination.changed.notified();
            let start = destination
                .window
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_start(Instant::now(), forced);
            match start {
                Start::Wait => changed.await,
                Start::WaitUntil(when) => {
                    drop(changed);
                    tokio::time::sleep_until(when.into()).await;
                }
                Start::Go => {
                    drop(changed);
                    return Ok(Slot {
                        owner: self,
                        key,
                        destination: Some(destination),
                    });
                }
                Start::Dead(why) => {
                    drop(changed);
                    drop(destination);
                    self.forget(&key);
                    return Err(why);
                }
            }
        }
    }

    /// Drops the entry if nobody uses it and it holds nothing to keep.
    fn forget(&self, key: &Route) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let idle = map.get(key).is_some_and(|d| {
            Arc::strong_count(d) == 1
                && d.window
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forgettable(Instant::now(), self.settings.dead_for)
        });
        if idle {
            map.remove(key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Slot<'_> {
    /// Gives the place back with what the delivery showed.
    pub(crate) fn finish(mut self, feedback: Feedback) {
        self.release(feedback);
    }

    fn release(&mut self, feedback: Feedback) {
        let Some(destination) = self.destination.take() else {
            return;
        };
        destination
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(feedback, Instant::now(), &self.owner.settings);
        // Wake every waiter: a place may be free, or the destination dead.
        destination.changed.notify_waiters();
        drop(destination);
        self.owner.forget(&self.key);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.release(Feedback::None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(reason: &str) -> Why {
        Why {
            dsn: "4.4.1".into(),
            reason: reason.into(),
        }
    }

    const SETTINGS: FlowSettings = FlowSettings {
        initial: 5,
        failed_cohort_limit: 1,
        dead_for: Duration::from_secs(300),
    };

    #[test]
    fn the_window_starts_small_and_grows_with_success() {
        let now = Instant::now();
        let mut w = Window::new(20, Duration::ZERO, &SETTINGS);
        for _ in 0..5 {
            assert_eq!(w.try_start(now, false), Start::Go);
        }
        assert_eq!(
            w.try_start(now, false),
            Start::Wait,
            "initial concurrency 5"
        );
        w.finish(Feedback::Reached, now, &SETTINGS);
        assert_eq!(w.width(), 6.0);
        // Busy: it opens one per success up to the limit.
        for _ in 0..40 {
            while w.try_start(now, false) == Start::Go {}
            w.finish(Feedback::Reached, now, &SETTINGS);
        }
        assert_eq!(w.width(), 20.0, "never above the limit");
        // One at a time: it stays near what is used.
        let mut w = Window::new(20, Duration::ZERO, &SETTINGS);
        for _ in 0..40 {
            assert_eq!(w.try_start(now, false), Start::Go);
            w.finish(Feedback::Reached, now, &SETTINGS);
        }
        assert_eq!(w.width(), 5.0);
    }

    #[test]
    fn a_cohort_of_failures_kills_the_destination_for_a_while() {
        let now = Instant::now();
        let mut w = Window::new(20, Duration::ZERO, &SETTINGS);
        // 1/5 + 1/4 + 1/3 + 1/2 of a cohort: dead after four.
        for i in 0..4 {
            assert_eq!(w.try_start(now, false), Start::Go, "failure {i}");
            w.finish(Feedback::Failed(why("connect: refused")), now, &SETTINGS);
        }
        assert_eq!(
            w.try_start(now, false),
            Start::Dead(why("connect: refused"))
        );
        let later = now + Duration::from_secs(301);
        assert_eq!(
            w.try_start(later, false),
            Start::Go,
            "alive again after the backoff"
        );
        assert_eq!(w.width(), 5.0);
    }

    #[test]
    fn a_success_between_failures_keeps_it_alive() {
        let now = Instant::now();
        let mut w = Window::new(20, Duration::ZERO, &SETTINGS);
        for _ in 0..20 {
            assert_eq!(w.try_start(now, false), Start::Go);
            w.finish(Feedback::Failed(why("x")), now, &SETTINGS);
            assert_eq!(w.try_start(now, false), Start::Go);
            w.finish(Feedback::Reached, now, &SETTINGS);
        }
        assert_eq!(w.try_start(now, false), Start::Go);
    }

    #[test]
    fn a_success_or_a_flush_revives_a_dead_destination() {
        let now = Instant::now();
        let mut w = Window::new(20, Duration::ZERO, &SETTINGS);
        for _ in 0..4 {
            assert_eq!(w.try_start(now, false), Start::Go);
            w.finish(Feedback::Failed(why("x")), now, &SETTINGS);
        }
        assert!(matches!(w.try_start(now, false), Start::Dead(_)));
        assert_eq!(w.try_start(now, true), Start::Go, "a flush tries it anyway");
        w.finish(Feedback::Reached, now, &SETTINGS);
        assert_eq!(
            w.try_start(now, false),
            Start::Go,
            "and its success revives it"
        );
    }

    #[test]
    fn a_rate_delay_counts_from_the_end_of_a_delivery() {
        let now = Instant::now();
        let delay = Duration::from_secs(2);
        let mut w = Window::new(1, delay, &SETTINGS);
        assert_eq!(w.try_start(now, false), Start::Go);
        let done = now + Duration::from_secs(5);
        w.finish(Feedback::Reached, done, &SETTINGS);
        assert_eq!(w.try_start(done, false), Start::WaitUntil(done + delay));
        assert_eq!(w.try_start(done + delay, false), Start::Go);
    }

    #[test]
    fn no_cohort_limit_means_never_dead() {
        let settings = FlowSettings {
            failed_cohort_limit: 0,
            ..SETTINGS
        };
        let now = Instant::now();
        let mut w = Window::new(20, Duration::ZERO, &settings);
        for _ in 0..100 {
            assert_eq!(w.try_start(now, false), Start::Go);
            w.finish(Feedback::Failed(why("x")), now, &settings);
        }
        assert_eq!(w.width(), 1.0);
    }

    #[tokio::test]
    async fn failures_add_up_across_deliveries_and_stale_entries_go() {
        let d = Destinations::new(SETTINGS);
        let key = |n: &str| Route {
            transport: "smtp".to_owned(),
            nexthop: towerpost_protocol::Nexthop::domain(n),
        };
        d.start(key("a.test"), 20, Duration::ZERO, false)
            .await
            .unwrap()
            .finish(Feedback::Reached);
        assert_eq!(d.len(), 0, "a window as fresh as a new one is not kept");
        for _ in 0..4 {
            d.start(key("dead.test"), 20, Duration::ZERO, false)
                .await
                .unwrap()
                .finish(Feedback::Failed(why("refused")));
        }
        assert_eq!(
            d.start(key("dead.test"), 20, Duration::ZERO, false)
                .await
                .err(),
            Some(why("refused")),
            "four failures one after the other make a failed cohort"
        );
        // Unused past the time to live (here zero), history goes.
        let d = Destinations::new(FlowSettings {
            dead_for: Duration::ZERO,
            ..SETTINGS
        });
        d.start(key("a.test"), 20, Duration::ZERO, false)
            .await
            .unwrap()
            .finish(Feedback::Failed(why("refused")));
        assert_eq!(d.len(), 0);
    }
}
