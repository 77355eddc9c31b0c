//! The flush service.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tower_service::Service;
use towerpost_queue::{FlushScope, Flusher, Queue, QueueId};

/// What to flush: what ETRN and the local commands ask for, and what the
/// control socket carries between them and the server (as JSON:
/// `{"site":"example.com"}`, `"all"`, `{"queue_id":"…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushTarget {
    /// One destination (`ETRN site`, `postqueue -s site`, `sendmail -qRsite`).
    Site(String),
    /// All deferred mail (`postqueue -f`, `sendmail -q`).
    All,
    /// One message (`postqueue -i id`, `sendmail -qIid`).
    QueueId(String),
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushOrigin {
    /// An SMTP client (ETRN).
    Smtp {
        /// The client's address.
        client: IpAddr,
    },
    /// A local user over the control socket.
    Local {
        /// The peer's uid (SO_PEERCRED).
        uid: u32,
        /// Its login name, or `unknown`.
        user: String,
    },
}

/// A flush request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushRequest {
    /// What to flush.
    pub target: FlushTarget,
    /// Who asks.
    pub origin: FlushOrigin,
    /// Answer only once every flushed message was attempted, with what
    /// each attempt did ([`FlushResponse::Finished`]).
    pub wait: bool,
    /// With `wait`: where to report each message as its attempt ends.
    pub progress: Option<FlushProgress>,
}

/// One flushed message's attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushEvent {
    /// Messages the flush scheduled.
    pub total: usize,
    /// The message.
    pub id: String,
    /// What its attempt did (`sent 1`, `deferred 1 (reason)`, …).
    pub outcome: String,
}

/// Where a waited-for flush reports each message as it finishes (for
/// `flush --wait`'s progress). Requests compare equal when they report
/// to the same place.
#[derive(Debug, Clone)]
pub struct FlushProgress(pub tokio::sync::mpsc::UnboundedSender<FlushEvent>);

impl PartialEq for FlushProgress {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_channel(&other.0)
    }
}

impl Eq for FlushProgress {}

/// The answer. Refusals are answers, not errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushResponse {
    /// Delivery started for this many messages (possibly none).
    Started {
        /// Messages scheduled now.
        messages: usize,
    },
    /// With `wait`: each flushed message and what its attempt did
    /// (`sent 1`, `deferred 1 (reason)`, …).
    Finished(Vec<(String, String)>),
    /// The site is not in `fast_flush_domains` (ETRN `459`).
    NotEligible {
        /// The site as given (without `@`/`#`), as Postfix echoes it.
        site: String,
    },
    /// The site is not a host name or address literal (ETRN `501`).
    InvalidSite,
    /// No message with that id (`postqueue -i`).
    NoSuchMessage,
    /// A local user that `authorized_flush_users` does not list.
    NotAuthorized {
        /// The user's name.
        user: String,
        /// The user's uid.
        uid: u32,
    },
}

/// The flush could not be carried out (the queue is shutting down or its
/// storage failed): ETRN `458`, `postqueue` "mail system is down".
#[derive(Debug)]
pub struct FlushError(towerpost_queue::QueueError);

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flush failed: {}", self.0)
    }
}

impl std::error::Error for FlushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A site named by ETRN, `postqueue -s` or `sendmail -qR`, checked as
/// Postfix's `etrn_cmd()` checks it (one leading `@` or `#` stripped,
/// then a valid host name or `[address literal]`, see
/// [`towerpost_protocol::etrn_site`]): the name as given, for replies, and
/// the lower-case key the index and `fast_flush_domains` use.
pub fn normalize_site(site: &str) -> Option<(String, String)> {
    let site = towerpost_protocol::etrn_site(site).ok()?;
    Some((site.to_owned(), site.to_ascii_lowercase()))
}

/// Decides which sites may be flushed by name (`fast_flush_domains`).
pub type Eligibility = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The flush service: checks the target and asks the queue manager to
/// make exactly that mail due now.
#[derive(Clone)]
pub struct FlushService {
    flusher: Flusher,
    queue: Queue,
    eligible: Eligibility,
}

impl fmt::Debug for FlushService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushService").finish_non_exhaustive()
    }
}

impl FlushService {
    /// A service over the queue manager's `flusher`; `eligible` is
    /// `fast_flush_domains`.
    pub fn new(flusher: Flusher, queue: Queue, eligible: Eligibility) -> Self {
        Self {
            flusher,
            queue,
            eligible,
        }
    }

    async fn flush(self, request: FlushRequest) -> Result<FlushResponse, FlushError> {
        let scope = match request.target {
            FlushTarget::Site(site) => {
                let Some((given, key)) = normalize_site(&site) else {
                    return Ok(FlushResponse::InvalidSite);
                };
                if !(self.eligible)(&key) {
                    return Ok(FlushResponse::NotEligible { site: given });
                }
                FlushScope::Site(key)
            }
            FlushTarget::All => FlushScope::All,
            FlushTarget::QueueId(text) => {
                let Ok(id) = text.parse::<QueueId>() else {
                    return Ok(FlushResponse::NoSuchMessage);
                };
                // Postfix's `-i` does not consult fast_flush_domains.
                if self.queue.envelope(id).await.map_err(FlushError)?.is_none() {
                    return Ok(FlushResponse::NoSuchMessage);
                }
                FlushScope::Message(id)
            }
        };
        if request.wait {
            let progress = request.progress;
            let outcomes = self
                .flusher
                .flush_and_watch(scope, |total, id, outcome| {
                    if let Some(FlushProgress(tx)) = &progress {
                        // A reader that went away stops only the report.
                        let _ = tx.send(FlushEvent {
                            total,
                            id: id.to_string(),
                            outcome: outcome.to_owned(),
                        });
                    }
                })
                .await
                .map_err(FlushError)?;
            return Ok(FlushResponse::Finished(
                outcomes
                    .into_iter()
                    .map(|(id, o)| (id.to_string(), o))
                    .collect(),
            ));
        }
        let messages = self.flusher.flush(scope).await.map_err(FlushError)?;
        Ok(FlushResponse::Started { messages })
    }
}

impl Service<FlushRequest> for FlushService {
    type Response = FlushResponse;
    type Error = FlushError;
    type Future = Pin<Box<dyn Future<Output = Result<FlushResponse, FlushError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), FlushError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: FlushRequest) -> Self::Future {
        let origin = request.origin.label();
        let flush = self.clone().flush(request);
        Box::pin(async move {
            let result = flush.await;
            let outcome = match &result {
                Ok(FlushResponse::Started { messages: 0 } | FlushResponse::NoSuchMessage) => {
                    "nothing"
                }
                Ok(FlushResponse::Finished(done)) if done.is_empty() => "nothing",
                Ok(FlushResponse::Started { .. } | FlushResponse::Finished(_)) => "queued",
                Ok(
                    FlushResponse::NotEligible { .. }
                    | FlushResponse::InvalidSite
                    | FlushResponse::NotAuthorized { .. },
                ) => "refused",
                Err(_) => "error",
            };
            towerpost_metrics::metrics().flush(origin, outcome);
            result
        })
    }
}

impl FlushOrigin {
    /// The `origin` label of `towerpost_flush_requests_total`: `etrn`, or
    /// `local` for every control-socket request (`postqueue`, `sendmail
    /// -q`, `towerpost flush`).
    pub fn label(&self) -> &'static str {
        match self {
            FlushOrigin::Smtp { .. } => "etrn",
            FlushOrigin::Local { .. } => "local",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_checked_like_postfix_and_keyed_in_lower_case() {
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(
            normalize_site("@Example.COM"),
            pair("Example.COM", "example.com")
        );
        assert_eq!(
            normalize_site("#queue.example"),
            pair("queue.example", "queue.example")
        );
        assert_eq!(
            normalize_site("[192.0.2.1]"),
            pair("[192.0.2.1]", "[192.0.2.1]")
        );
        assert_eq!(
            normalize_site("_dmarc.x.test"),
            pair("_dmarc.x.test", "_dmarc.x.test")
        );
        for bad in ["Example.COM.", "bad_domain!", "@@x.test", "", "a b", "123"] {
            assert_eq!(normalize_site(bad), None, "{bad:?}");
        }
    }
}
