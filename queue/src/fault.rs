//! Storage faults on demand, so that tests can see what the queue does
//! when a commit fails — before writing, after writing, or by a bug —
//! without filling a disk. Production code only ever reads the counters.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::QueueError;

/// How many of the next commits fail, and how.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Fail before anything is written.
    before: AtomicUsize,
    /// Write and commit, then report a failure (as an fsync error after a
    /// successful write would).
    after: AtomicUsize,
    /// Panic inside the writer.
    panic: AtomicUsize,
}

impl Faults {
    /// The next `n` commits fail before writing.
    #[cfg(test)]
    pub(crate) fn fail_before(&self, n: usize) {
        self.before.store(n, Ordering::SeqCst);
    }

    /// The next `n` commits write, then fail.
    #[cfg(test)]
    pub(crate) fn fail_after(&self, n: usize) {
        self.after.store(n, Ordering::SeqCst);
    }

    /// The next `n` commits panic.
    #[cfg(test)]
    pub(crate) fn panic(&self, n: usize) {
        self.panic.store(n, Ordering::SeqCst);
    }

    pub(crate) fn check_before(&self) -> Result<(), QueueError> {
        if take(&self.panic) {
            panic!("injected panic in the shard writer");
        }
        if take(&self.before) {
            return Err(injected("before writing"));
        }
        Ok(())
    }

    pub(crate) fn check_after(&self) -> Result<(), QueueError> {
        if take(&self.after) {
            return Err(injected("after writing"));
        }
        Ok(())
    }
}

/// Takes one from a counter that is not zero.
fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn injected(when: &str) -> QueueError {
    QueueError::storage(
        "injected fault",
        redb::Error::Io(std::io::Error::other(format!("commit failed {when}"))),
    )
}
