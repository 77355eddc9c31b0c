//! The cache of idle sessions (Postfix's connection cache): a session is
//! kept for the next message to the same route within
//! `smtp_connection_cache_time_limit`, checked with RSET before reuse, and
//! closed with QUIT when it expires or the cache is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::SmtpClient;
use super::session::{Session, read_reply, send};

/// At most this many idle sessions are cached in all, across next hops.
/// Postfix bounds its cached connections by the number of smtp processes
/// (`default_process_limit`, 100); when the cache is full, the session
/// idle longest is closed to make room.
const MAX_CACHED_SESSIONS: usize = 100;

/// How long QUIT may take when a session is closed on our side (Postfix's
/// `smtp_quit_timeout` is 300 s, but nothing waits for the answer here:
/// the mail is delivered or deferred already).
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle sessions by `transport:nexthop`, newest last.
#[derive(Default)]
pub(super) struct Cache {
    sessions: HashMap<String, Vec<Session>>,
    count: usize,
    reaper: bool,
}

impl Cache {
    /// Takes out every session idle for `limit` or more.
    fn expired(&mut self, limit: Duration) -> Vec<Session> {
        let mut out = Vec::new();
        self.sessions.retain(|_, list| {
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|s| s.idle_since.elapsed() >= limit);
            out.extend(old);
            *list = fresh;
            !list.is_empty()
        });
        self.count -= out.len();
        out
    }

    /// Takes out the session idle longest.
    fn oldest(&mut self) -> Option<Session> {
        let (key, index) = self
            .sessions
            .iter()
            .flat_map(|(k, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(i, s)| (k, i, s.idle_since))
            })
            .min_by_key(|(_, _, since)| *since)
            .map(|(k, i, _)| (k.clone(), i))?;
        let list = self.sessions.get_mut(&key)?;
        let session = list.remove(index);
        if list.is_empty() {
            self.sessions.remove(&key);
        }
        self.count -= 1;
        Some(session)
    }
}

impl SmtpClient {
    /// Keeps a session for the next message to the same next hop. The
    /// first one starts the task that closes sessions once they have been
    /// idle for `smtp_connection_cache_time_limit`; a full cache closes
    /// its oldest session.
    pub(super) fn keep(&self, key: String, mut session: Session) {
        session.idle_since = Instant::now();
        let (evicted, start_reaper) = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let evicted = if cache.count >= MAX_CACHED_SESSIONS {
                cache.oldest()
            } else {
                None
            };
            cache.sessions.entry(key).or_default().push(session);
            cache.count += 1;
            (evicted, !std::mem::replace(&mut cache.reaper, true))
        };
        if let Some(old) = evicted {
            tokio::spawn(quit(old));
        }
        if start_reaper {
            tokio::spawn(reap(
                Arc::downgrade(&self.cache),
                self.settings.cache_time_limit,
            ));
        }
    }

    /// A cached session that still answers RSET.
    pub(super) async fn cached(&self, key: &str) -> Option<Session> {
        loop {
            let mut session = {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                let list = cache.sessions.get_mut(key)?;
                let s = list.pop()?;
                if list.is_empty() {
                    cache.sessions.remove(key);
                }
                cache.count -= 1;
                s
            };
            if session.idle_since.elapsed() >= self.settings.cache_time_limit {
                tokio::spawn(quit(session));
                continue;
            }
            if send(&mut session, b"RSET\r\n", self.settings.helo_timeout)
                .await
                .is_ok()
                && let Ok(r) = read_reply(&mut session, self.settings.helo_timeout).await
                && r.is_positive()
            {
                return Some(session);
            }
        }
    }
}

/// Closes idle sessions on time, with QUIT, until the client is gone.
async fn reap(cache: std::sync::Weak<Mutex<Cache>>, limit: Duration) {
    let tick = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        let expired = cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expired(limit);
        drop(cache);
        for session in expired {
            tokio::spawn(quit(session));
        }
    }
}

/// Says QUIT and waits (briefly) for the answer, so the server sees an
/// orderly end rather than a dropped connection.
pub(super) async fn quit(mut session: Session) {
    if send(&mut session, b"QUIT\r\n", QUIT_TIMEOUT).await.is_ok() {
        let _ = read_reply(&mut session, QUIT_TIMEOUT).await;
    }
    let _ = session.stream.get_mut().shutdown().await;
}
