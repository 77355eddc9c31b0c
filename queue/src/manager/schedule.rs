//! When a deferred message is tried again, and when it gives up.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Postfix's backoff: wait about as long as the message is old, clamped to
/// `[minimal_backoff_time, maximal_backoff_time]`, so young mail is retried
/// often and old mail rarely. Plus up to 10% (at most five minutes) of
/// random delay, so that mail deferred together by an outage does not all
/// come due in the same instant (Postfix has no such jitter; QSHAPE_README
/// names the problem).
pub(crate) fn backoff(age: Duration, min: Duration, max: Duration) -> Duration {
    let base = age.clamp(min, max.max(min));
    let spread = (base / 10).min(Duration::from_secs(300));
    base + spread.mul_f64(random_fraction())
}

/// A number in [0, 1) that differs from call to call. Randomness here only
/// spreads load, so the standard library's per-hasher random keys are
/// enough; no random number crate is needed.
fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a message of this age has been queued too long. A lifetime of
/// zero means "try once" (Postfix).
pub(crate) fn expired(age: Duration, lifetime: Duration) -> bool {
    age >= lifetime
}

/// Postfix's `delay=1.5` style: two decimals at most, no trailing zeros.
pub(crate) fn seconds(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(300);
    const MAX: Duration = Duration::from_secs(4000);

    #[test]
    fn backoff_follows_age_within_bounds_plus_bounded_jitter() {
        for (age, base) in [
            (0, 300),
            (100, 300),
            (1000, 1000),
            (4000, 4000),
            (100_000, 4000),
        ] {
            for _ in 0..50 {
                let d = backoff(Duration::from_secs(age), MIN, MAX);
                let base = Duration::from_secs(base);
                assert!(d >= base && d <= base + base / 10, "age {age}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_retries() {
        let a: Vec<_> = (0..20).map(|_| backoff(MAX, MIN, MAX)).collect();
        assert!(a.iter().any(|d| *d != a[0]), "no spread at all");
    }

    #[test]
    fn zero_lifetime_means_try_once() {
        assert!(expired(Duration::ZERO, Duration::ZERO));
        assert!(!expired(Duration::from_secs(10), Duration::from_secs(11)));
    }

    #[test]
    fn seconds_look_like_postfix() {
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_millis(10)), "0.01");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
        assert_eq!(seconds(Duration::from_secs(3)), "3");
    }
}
