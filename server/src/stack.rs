//! The SMTP service stack, built from the configuration in one place.

use std::sync::Arc;

use tower::ServiceBuilder;
use tower::util::BoxCloneService;
use towerpost_config::{Config, Listener};
use towerpost_flush::FlushService;
use towerpost_queue::Queue;

use crate::builder::{BoxSmtpService, UserLayer};
use crate::core::SmtpCore;
use crate::etrn_restrictions::EtrnRestrictions;
use crate::rate_limit::{ClientLimits, RateLimitLayer};
use crate::recover::RecoverErrorLayer;
use crate::restrictions::{DomainCheck, SmtpdRestrictions};
use crate::session::SmtpService;
use crate::settings::core_settings;

/// Builds the request path for a listener: every SMTP command of every
/// session passes through these layers, outermost first.
///
/// * [`RecoverErrorLayer`]: faults become `451`/`452` replies and a log line.
/// * [`ClientLimits`]: anvil-style per-client limits (its counters are
///   shared by all listeners: pass the same layer to every stack).
/// * [`EtrnRestrictions`]: `smtpd_etrn_restrictions` (only when set).
/// * [`SmtpdRestrictions`]: the client, HELO, sender, relay and recipient
///   restrictions of this listener, at RCPT.
/// * user layers from [`ServerBuilder::layer`](crate::ServerBuilder::layer),
///   first added outermost.
/// * [`SmtpCore`]: answers the command, queues the message, or asks the
///   flush service (ETRN).
pub(crate) fn build_stack(
    config: &Arc<Config>,
    listener: &Listener,
    dns: Arc<dyn DomainCheck>,
    queue: Queue,
    flush: Option<FlushService>,
    limits: RateLimitLayer,
    user_layers: &[UserLayer],
) -> SmtpService {
    let core = SmtpCore::new(core_settings(config), queue, flush);
    // User layers wrap the core; the first added ends up outermost.
    let mut inner: BoxSmtpService = BoxCloneService::new(core);
    for layer in user_layers.iter().rev() {
        inner = layer(inner);
    }
    let etrn = (!config.smtpd_etrn_restrictions.is_empty()).then(|| {
        EtrnRestrictions::layer(
            config.smtpd_etrn_restrictions.clone(),
            config.mynetworks.clone(),
        )
    });
    let restrictions =
        SmtpdRestrictions::new(config.clone(), config.smtpd_policy(listener), dns).layer();
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(RecoverErrorLayer)
            .layer(limits)
            .option_layer(etrn)
            .layer(restrictions)
            .service(inner),
    )
}

/// The anvil limits from the configuration.
pub(crate) fn rate_limits(config: &Config) -> RateLimitLayer {
    ClientLimits::layer(crate::settings::rate_limit_settings(config))
}
