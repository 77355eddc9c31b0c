//! Delivery agents and routing, built from the configuration.

mod downgrade;
mod sasl;
mod smtp;
mod tls;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::BoxError;
use tower::util::BoxCloneSyncService;
use tower_service::Service;
use towerpost_config::{Config, Nexthop, SmtpTlsLevel, TransportKind};
use towerpost_queue::{
    DeliveryReport, DeliveryRequest, ManagerSettings, Outcome, Pacing, Router, Transport,
};

pub use sasl::ClientSasl;
pub use smtp::{SmtpClient, SmtpClientSettings, TlsLevel};

/// The queue manager's settings from the configuration.
pub fn manager_settings(config: &Config) -> ManagerSettings {
    ManagerSettings {
        myhostname: config.myhostname.clone(),
        queue_run_delay: config.queue_run_delay,
        minimal_backoff_time: config.minimal_backoff_time,
        maximal_backoff_time: config.maximal_backoff_time,
        maximal_queue_lifetime: config.maximal_queue_lifetime,
        bounce_queue_lifetime: config.bounce_queue_lifetime,
        active_limit: config.qmgr_message_active_limit,
        bounce_size_limit: config.bounce_size_limit as usize,
        delay_warning_time: config.delay_warning_time,
        soft_bounce: config.soft_bounce,
        defer_transports: config
            .defer_transports
            .iter()
            .cloned()
            .collect::<HashSet<_>>(),
        initial_destination_concurrency: config.initial_destination_concurrency,
        failed_cohort_limit: config.default_destination_concurrency_failed_cohort_limit,
    }
}

/// The next hop as text, the form delivery requests carry.
pub fn nexthop_text(nexthop: &Nexthop) -> String {
    let host = if nexthop.host.contains(':') {
        format!("ipv6:{}", nexthop.host)
    } else {
        nexthop.host.clone()
    };
    let host = if nexthop.mx_lookup {
        host
    } else {
        format!("[{host}]")
    };
    match nexthop.port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// Routing from the configuration: `transport_maps`, `relayhost`,
/// `default_transport`.
pub fn router(config: &Config) -> Router {
    let config = Arc::new(config.clone());
    Arc::new(move |domain: &str| {
        let route = config.route(domain);
        (route.transport, nexthop_text(&route.nexthop))
    })
}

/// Every declared transport as a delivery agent with its limits.
pub fn transports(config: &Config) -> HashMap<String, Transport> {
    config
        .transport
        .iter()
        .map(|(name, t)| {
            let service = match t.kind {
                TransportKind::Smtp => {
                    BoxCloneSyncService::new(SmtpClient::new(SmtpClientSettings {
                        myhostname: config.myhostname.clone(),
                        connect_timeout: config.smtp_connect_timeout,
                        helo_timeout: config.smtp_helo_timeout,
                        mail_timeout: config.smtp_mail_timeout,
                        rcpt_timeout: config.smtp_rcpt_timeout,
                        data_init_timeout: config.smtp_data_init_timeout,
                        data_xfer_timeout: config.smtp_data_xfer_timeout,
                        data_done_timeout: config.smtp_data_done_timeout,
                        cache_time_limit: config.smtp_connection_cache_time_limit,
                        mime_output_conversion: !config.disable_mime_output_conversion,
                        tls: match t.tls_security_level {
                            SmtpTlsLevel::None => TlsLevel::None,
                            SmtpTlsLevel::May => TlsLevel::May,
                            SmtpTlsLevel::Encrypt => TlsLevel::Encrypt,
                            SmtpTlsLevel::Verify => TlsLevel::Verify,
                            SmtpTlsLevel::Secure => TlsLevel::Secure,
                        },
                        sasl: config
                            .smtp_sasl_password_maps
                            .clone()
                            .filter(|_| config.smtp_sasl_auth_enable)
                            .map(|passwords| {
                                ClientSasl::new(
                                    passwords,
                                    config.smtp_sasl_security_options.clone(),
                                    config.smtp_sasl_tls_security_options.clone(),
                                )
                            }),
                    }))
                }
                TransportKind::Discard => BoxCloneSyncService::new(Fixed(FixedKind::Discard)),
                TransportKind::Error => BoxCloneSyncService::new(Fixed(FixedKind::Error)),
            };
            let transport = Transport {
                service,
                // Postfix: a rate delay means one delivery at a time.
                concurrency_limit: if t.destination_rate_delay.is_zero() {
                    t.destination_concurrency_limit
                } else {
                    1
                },
                recipient_limit: t.destination_recipient_limit,
                rate_delay: t.destination_rate_delay,
                pacing: t.destination_rate_limit.map(pacing),
            };
            (name.clone(), transport)
        })
        .collect()
}

/// A rate limit as a pace: one message every unit/N, evenly spaced (no
/// burst), so no window of one unit ever sees more than N + 1 messages
/// and a receiver's per-unit throttle is not tripped.
fn pacing(limit: towerpost_config::RateLimit) -> Pacing {
    Pacing {
        burst: 1,
        interval: limit.per / limit.messages.max(1),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FixedKind {
    Discard,
    Error,
}

/// Postfix's `discard` (accept and drop) and `error` (bounce) agents.
#[derive(Debug, Clone, Copy)]
struct Fixed(FixedKind);

impl Service<DeliveryRequest> for Fixed {
    type Response = DeliveryReport;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<DeliveryReport, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: DeliveryRequest) -> Self::Future {
        let n = req.recipients.len();
        let outcome = match self.0 {
            FixedKind::Discard => Outcome::Sent {
                dsn: "2.0.0".into(),
                reply: "discarded".into(),
            },
            FixedKind::Error => Outcome::Bounced {
                dsn: "5.0.0".into(),
                reason: "mail for this destination is refused by the error transport".into(),
                diagnostic: None,
            },
        };
        let mut report = DeliveryReport::all(n, outcome);
        if self.0 == FixedKind::Discard {
            // Discarding is a final delivery (Postfix's discard(8) reports
            // it so to a sender who asked for success notices).
            report.success_action = Some(towerpost_queue::dsn::DsnAction::Delivered);
        }
        Box::pin(async move { Ok(report) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_rate_limit_spaces_messages_evenly() {
        let limit = towerpost_config::RateLimit {
            messages: 10,
            per: Duration::from_secs(60),
        };
        assert_eq!(
            pacing(limit),
            Pacing {
                burst: 1,
                interval: Duration::from_secs(6)
            }
        );
    }
}
