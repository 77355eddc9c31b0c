//! The SMTP service stack, built from the configuration in one place.

use tower::ServiceBuilder;
use tower::util::BoxCloneService;
use towerpost_config::Config;
use towerpost_queue::Queue;

use crate::core::SmtpCore;
use crate::recover::RecoverErrorLayer;
use crate::session::SmtpService;
use crate::settings::core_settings;

/// Builds the request path for a listener: every SMTP command of every
/// session passes through these layers, outermost first.
///
/// * [`RecoverErrorLayer`]: faults become `451`/`452` replies and a log line.
/// * [`SmtpCore`]: answers the command, or queues the message.
pub fn build_stack(config: &Config, queue: Queue) -> SmtpService {
    let core = SmtpCore::new(core_settings(config), queue);
    BoxCloneService::new(ServiceBuilder::new().layer(RecoverErrorLayer).service(core))
}
