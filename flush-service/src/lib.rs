//! Fast flush: deliver one destination's deferred mail now, at a cost
//! proportional to that mail (RFC 1985 `ETRN`, `postqueue -s`,
//! `sendmail -qR`), plus `postqueue -f` and `postqueue -i`.
//!
//! [`FlushService`] is a `tower::Service<FlushRequest>`; SMTP `ETRN` and the
//! local flush verbs reach the same service through their own policy
//! layers (`smtpd_etrn_restrictions` in the SMTP stack,
//! [`AuthorizedFlushUsers`] for local users).
//!
//! The per-destination index lives with the queue manager
//! ([`towerpost_queue::DestinationIndex`]): it is updated in the same task
//! that defers mail and schedules it, which is what makes two of Postfix's
//! weaknesses impossible here — a flush racing with mail being deferred
//! for that site never misses it, and a flush for one site releases no
//! other site's parked mail.

mod authorized;
mod service;

pub use authorized::{AuthorizedFlushUsers, AuthorizedFlushUsersLayer, FlushUserPolicy};
pub use service::{
    Eligibility, FlushError, FlushEvent, FlushOrigin, FlushProgress, FlushRequest, FlushResponse,
    FlushService, FlushTarget, normalize_site,
};
