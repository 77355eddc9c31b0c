//! Queue ids: unique, sortable by arrival, stable across restarts.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Crockford's base-32 alphabet: digits and upper-case letters without
/// I, L, O, U. It is in ASCII order, so ids sort as text the way they sort
/// as numbers, and log tools that expect `[0-9A-Z]+` ids keep working.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 11 characters × 5 bits: 55 bits of microseconds, good for a thousand years.
const WIDTH: usize = 11;

/// A queue id such as `0DJ4QW7H2KX`: microseconds since the Unix epoch
/// (bumped by one when two messages arrive in the same microsecond),
/// written as 11 base-32 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u64);

impl QueueId {
    /// The id as a number (the storage key).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// An id from its storage key.
    pub fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// The arrival time encoded in the id.
    pub fn timestamp(self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_micros(self.0)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; WIDTH];
        let mut v = self.0;
        for slot in buf.iter_mut().rev() {
            *slot = ALPHABET[(v & 31) as usize];
            v >>= 5;
        }
        f.write_str(std::str::from_utf8(&buf).expect("alphabet is ASCII"))
    }
}

/// The text is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIdParseError(String);

impl fmt::Display for QueueIdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid queue id: {:?}", self.0)
    }
}

impl std::error::Error for QueueIdParseError {}

impl FromStr for QueueId {
    type Err = QueueIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || QueueIdParseError(s.to_owned());
        if s.len() != WIDTH {
            return Err(err());
        }
        let mut v: u64 = 0;
        for c in s.bytes() {
            let digit = ALPHABET
                .iter()
                .position(|&a| a == c.to_ascii_uppercase())
                .ok_or_else(err)?;
            v = v.checked_mul(32).ok_or_else(err)? | digit as u64;
        }
        Ok(Self(v))
    }
}

/// Hands out strictly increasing ids.
///
/// Seeded with the largest id found on disk, so ids stay unique across a
/// restart even if the clock stepped back meanwhile.
#[derive(Debug, Default)]
pub(crate) struct IdGenerator {
    last: AtomicU64,
}

impl IdGenerator {
    pub(crate) fn starting_after(last: u64) -> Self {
        Self {
            last: AtomicU64::new(last),
        }
    }

    pub(crate) fn next(&self) -> QueueId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return QueueId(next),
                Err(actual) => last = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_as_text() {
        let g = IdGenerator::default();
        let ids: Vec<QueueId> = (0..1000).map(|_| g.next()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        for id in &ids {
            assert_eq!(id.to_string().parse::<QueueId>().unwrap(), *id);
            assert_eq!(id.to_string().len(), 11);
        }
    }

    #[test]
    fn ids_continue_after_the_seed() {
        let far_future = u64::MAX >> 10;
        let g = IdGenerator::starting_after(far_future);
        assert_eq!(g.next().as_u64(), far_future + 1);
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in ["", "0123", "0123456789I", "0123456789AB", "ZZZZZZZZZZZZ"] {
            assert!(bad.parse::<QueueId>().is_err(), "{bad}");
        }
    }
}
