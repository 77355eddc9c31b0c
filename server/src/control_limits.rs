//! Bounds on the control socket, which every local user can reach: how
//! many connections unprivileged users may hold, and how long a request
//! may take to arrive. Without them, `nobody` holding idle connections
//! could use up the server's file descriptors and stop SMTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections one unprivileged uid may hold at once.
pub(crate) const PER_UID: usize = 8;
/// Connections all unprivileged uids together may hold at once.
pub(crate) const UNPRIVILEGED_TOTAL: usize = 32;
/// How long the request line may take to arrive.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a submitted message may take to arrive (as `smtpd_timeout`).
pub(crate) const SUBMIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Open connections of unprivileged users, by uid. Root and the server's
/// own user are not counted: they are trusted, and an operator must be
/// able to look at the queue while others misbehave.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    by_uid: Mutex<HashMap<u32, usize>>,
}

impl Admission {
    /// A place for a connection of `uid` (`None`: unknown, counted as
    /// one uid), or `None` when it is over a limit.
    pub(crate) fn admit(self: &Arc<Self>, uid: Option<u32>, privileged: bool) -> Option<Admitted> {
        if privileged {
            return Some(Admitted(None));
        }
        let uid = uid.unwrap_or(u32::MAX);
        let mut by_uid = self.by_uid.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = by_uid.values().sum();
        let mine = by_uid.entry(uid).or_default();
        if *mine >= PER_UID || total >= UNPRIVILEGED_TOTAL {
            if *mine == 0 {
                by_uid.remove(&uid);
            }
            return None;
        }
        *mine += 1;
        Some(Admitted(Some((self.clone(), uid))))
    }
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Admitted(Option<(Arc<Admission>, u32)>);

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((admission, uid)) = self.0.take() {
            let mut by_uid = admission.by_uid.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = by_uid.get_mut(&uid) {
                *n -= 1;
                if *n == 0 {
                    by_uid.remove(&uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprivileged_connections_are_capped_per_uid_and_in_all() {
        let a = Arc::new(Admission::default());
        let mine: Vec<_> = (0..PER_UID)
            .map(|_| a.admit(Some(65534), false).unwrap())
            .collect();
        assert!(a.admit(Some(65534), false).is_none(), "per uid");
        let others: Vec<_> = (0..UNPRIVILEGED_TOTAL - PER_UID)
            .map(|i| a.admit(Some(2000 + i as u32), false).unwrap())
            .collect();
        assert!(a.admit(Some(3000), false).is_none(), "in all");
        // Root is never refused.
        let _root = a.admit(Some(0), true).unwrap();
        drop(mine);
        assert!(a.admit(Some(65534), false).is_some());
        drop(others);
        assert!(a.by_uid.lock().unwrap().len() <= 1);
    }
}
