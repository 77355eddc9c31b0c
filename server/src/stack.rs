//! The SMTP service stack, built from the configuration in one place.

use tower::ServiceBuilder;
use tower::util::BoxCloneService;
use towerpost_config::Config;
use towerpost_flush::FlushService;
use towerpost_queue::Queue;

use crate::core::SmtpCore;
use crate::etrn_restrictions::EtrnRestrictionsLayer;
use crate::recover::RecoverErrorLayer;
use crate::session::SmtpService;
use crate::settings::core_settings;

/// Builds the request path for a listener: every SMTP command of every
/// session passes through these layers, outermost first.
///
/// * [`RecoverErrorLayer`]: faults become `451`/`452` replies and a log line.
/// * [`EtrnRestrictionsLayer`]: `smtpd_etrn_restrictions` (only when set).
/// * [`SmtpCore`]: answers the command, queues the message, or asks the
///   flush service (ETRN).
pub fn build_stack(config: &Config, queue: Queue, flush: Option<FlushService>) -> SmtpService {
    let core = SmtpCore::new(core_settings(config), queue, flush);
    let etrn = (!config.smtpd_etrn_restrictions.is_empty()).then(|| {
        EtrnRestrictionsLayer::new(
            config.smtpd_etrn_restrictions.clone(),
            config.mynetworks.clone(),
        )
    });
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(RecoverErrorLayer)
            .option_layer(etrn)
            .service(core),
    )
}
