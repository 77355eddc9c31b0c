//! The smtpd restriction lists as a tower layer: `smtpd_client_restrictions`,
//! `smtpd_helo_restrictions`, `smtpd_sender_restrictions`,
//! `smtpd_relay_restrictions` and `smtpd_recipient_restrictions`, plus the
//! implicit `smtpd_reject_unlisted_recipient` check.
//!
//! As Postfix with `smtpd_delay_reject = yes`, every list is evaluated at
//! RCPT, in that order, so that a refusal can name the recipient and the
//! client learns nothing from an early 554. Within a list the first
//! restriction that decides wins; `permit` (or an `OK` table entry) ends
//! only that list, a refusal ends the evaluation. Replies and log lines are
//! Postfix's (`smtpd_check.c`).
//!
//! The layer uses only the public request API: a user could write it.

mod checks;
mod dns;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use tower::BoxError;
use tower_layer::Layer;
use tower_service::Service;
use towerpost_config::{Config, Restriction, SmtpdPolicy};
use towerpost_protocol::{Address, Command, Reply};

use crate::request::SmtpRequest;
pub(crate) use checks::{Decision, access_decision, rejected, valid_helo};
pub use dns::{DnsDomainCheck, DomainCheck, DomainStatus};

/// What the restrictions of one listener need to decide.
pub struct SmtpdRestrictions {
    config: Arc<Config>,
    policy: SmtpdPolicy,
    dns: Arc<dyn DomainCheck>,
}

impl std::fmt::Debug for SmtpdRestrictions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpdRestrictions")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SmtpdRestrictions {
    /// The restrictions of a listener with `policy` (see
    /// [`Config::smtpd_policy`]); `dns` answers
    /// `reject_unknown_sender_domain` and `reject_unknown_recipient_domain`.
    pub fn new(config: Arc<Config>, policy: SmtpdPolicy, dns: Arc<dyn DomainCheck>) -> Self {
        Self {
            config,
            policy,
            dns,
        }
    }

    /// A layer applying these restrictions.
    pub fn layer(self) -> SmtpdRestrictionsLayer {
        SmtpdRestrictionsLayer {
            restrictions: Arc::new(self),
        }
    }

    /// Evaluates every list for the recipient `rcpt` of `request`:
    /// `Some(reply)` refuses it.
    pub async fn check_recipient(&self, request: &SmtpRequest, rcpt: &Address) -> Option<Reply> {
        let p = &self.policy;
        let lists: [(&[Restriction], ListClass); 5] = [
            (&p.client_restrictions, ListClass::Client),
            (&p.helo_restrictions, ListClass::Helo),
            (&p.sender_restrictions, ListClass::Sender),
            (&p.relay_restrictions, ListClass::Recipient),
            (&p.recipient_restrictions, ListClass::Recipient),
        ];
        let facts = checks::Facts::new(&self.config, request, rcpt);
        for (list, class) in lists {
            for restriction in list {
                match facts.evaluate(restriction, class, &*self.dns).await {
                    Some(Decision::Permit) => break,
                    Some(Decision::Refuse(reply)) => {
                        towerpost_metrics::metrics().reject("RCPT", restriction.name());
                        return Some(reply);
                    }
                    None => {}
                }
            }
        }
        // Postfix's smtpd_reject_unlisted_recipient: applied after the
        // lists unless one of them already decided about it.
        if self.config.smtpd_reject_unlisted_recipient {
            let refused = facts.unlisted_recipient();
            if refused.is_some() {
                towerpost_metrics::metrics().reject("RCPT", "smtpd_reject_unlisted_recipient");
            }
            return refused;
        }
        None
    }
}

/// Whose name a generic `reject`/`defer` in a list gives: Postfix's
/// `reply_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListClass {
    Client,
    Helo,
    Sender,
    Recipient,
}

/// Builds [`SmtpdRestrictionsService`]s sharing one [`SmtpdRestrictions`].
#[derive(Debug, Clone)]
pub struct SmtpdRestrictionsLayer {
    restrictions: Arc<SmtpdRestrictions>,
}

impl<S> Layer<S> for SmtpdRestrictionsLayer {
    type Service = SmtpdRestrictionsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SmtpdRestrictionsService {
            inner,
            restrictions: self.restrictions.clone(),
        }
    }
}

/// Answers refused recipients, passes everything else on.
#[derive(Debug, Clone)]
pub struct SmtpdRestrictionsService<S> {
    inner: S,
    restrictions: Arc<SmtpdRestrictions>,
}

impl<S> Service<SmtpRequest> for SmtpdRestrictionsService<S>
where
    S: Service<SmtpRequest, Response = Reply, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = BoxError;
    // Every command but RCPT goes straight through, unboxed. An RCPT is
    // boxed: its decision may wait for DNS (reject_unknown_*_domain)
    // before the inner service is called, and an async block is the
    // readable way to write that sequence.
    type Future = Either<S::Future, Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: SmtpRequest) -> Self::Future {
        let Some(Command::Rcpt { to, .. }) = request.command() else {
            return Either::Left(self.inner.call(request));
        };
        let to = to.clone();
        // The ready service goes with this request; the clone stays for
        // the next one (tower's readiness rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let restrictions = self.restrictions.clone();
        Either::Right(Box::pin(async move {
            // The session logs the refusal (`NOQUEUE: reject: RCPT …`).
            if let Some(reply) = restrictions.check_recipient(&request, &to).await {
                return Ok(reply);
            }
            inner.call(request).await
        }))
    }
}
