//! Delivery agents and routing, built from the configuration.

mod dns;
mod downgrade;
mod mta_sts;
mod sasl;
mod smtp;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::BoxError;
use tower::util::BoxCloneSyncService;
use tower_service::Service;
use towerpost_config::{Config, TransportKind};
use towerpost_queue::{Agent, DeliveryReport, DeliveryRequest, Outcome, Pacing, Router, Transport};

pub use mta_sts::{MtaSts, MtaStsSettings};
pub use sasl::ClientSasl;
pub use smtp::{SmtpClient, SmtpClientSettings, TlsLevel};
pub use tls::Trust;

/// The name of the MTA-STS policy cache in `queue_directory`.
pub const MTA_STS_CACHE_FILE: &str = "mta-sts.json";

/// Where delivery reaches the outside world, for tests that stand in for
/// it on loopback: name servers instead of `/etc/resolv.conf`, and the
/// MTA-STS policy host's port instead of 443.
#[derive(Debug, Clone, Default)]
pub struct Outside {
    /// Name servers to ask; empty for the system's.
    pub name_servers: Vec<std::net::SocketAddr>,
    /// The HTTPS port of MTA-STS policy hosts; `None` for 443.
    pub https_port: Option<u16>,
}

/// Routing from the configuration: `transport_maps`, `relayhost`,
/// `default_transport`.
pub fn router(config: &Config) -> Router {
    let config = Arc::new(config.clone());
    Arc::new(move |domain: &str| config.route(domain))
}

/// Every declared transport as a delivery agent with its limits.
///
/// Fails when `smtp_tls_CAfile` cannot be read (the text names the key and
/// the file).
pub fn transports(config: &Config) -> Result<HashMap<String, Transport>, String> {
    transports_in(config, &Outside::default())
}

/// [`transports`] reaching the outside world as `outside` says.
pub fn transports_in(
    config: &Config,
    outside: &Outside,
) -> Result<HashMap<String, Transport>, String> {
    let trust = Trust::new(&ca_certificates(config)?).map_err(|e| ca_file_error(config, &e))?;
    let mta_sts = if config.smtp_mta_sts_enable {
        let settings = MtaStsSettings {
            cache_file: config.queue_directory.join(MTA_STS_CACHE_FILE),
            https_port: outside.https_port.unwrap_or(443),
        };
        Some(Arc::new(MtaSts::open(
            &settings,
            dns::Dns::new(&outside.name_servers),
            &trust,
        )?))
    } else {
        None
    };
    let shared = crate::settings::SmtpShared {
        trust,
        mta_sts,
        name_servers: outside.name_servers.clone(),
    };
    let transports = config
        .transport
        .iter()
        .map(|(name, t)| {
            let service = match t.kind {
                TransportKind::Smtp => BoxCloneSyncService::new(SmtpClient::new(
                    crate::settings::smtp_client_settings(config, t, &shared),
                )),
                TransportKind::Discard => BoxCloneSyncService::new(Fixed(FixedKind::Discard)),
                TransportKind::Error => BoxCloneSyncService::new(Fixed(FixedKind::Error)),
            };
            let transport = Transport {
                service,
                agent: match t.kind {
                    TransportKind::Smtp => Agent::Smtp,
                    TransportKind::Discard => Agent::Discard,
                    TransportKind::Error => Agent::Error,
                },
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
        .collect();
    Ok(transports)
}

/// The certificates of `smtp_tls_CAfile`, if set.
fn ca_certificates(
    config: &Config,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let Some(path) = &config.smtp_tls_cafile else {
        return Ok(Vec::new());
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ca_file_error(config, &e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_file_error(config, "no certificate in the file"));
    }
    Ok(certs)
}

fn ca_file_error(config: &Config, e: &str) -> String {
    let path = config
        .smtp_tls_cafile
        .as_deref()
        .unwrap_or(std::path::Path::new(""));
    format!("smtp_tls_CAfile: {}: {e}", path.display())
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
