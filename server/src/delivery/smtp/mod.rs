//! The SMTP client: delivers a [`DeliveryRequest`] to its next hop.
//!
//! Next hop `[host]:port` connects to that host; `domain` looks up its MX
//! records (hickory-resolver) and falls back to the domain's own address
//! (RFC 5321 §5.1). Sessions are reused for the next message to the same
//! next hop within `smtp_connection_cache_time_limit`. PIPELINING is used
//! when offered; SIZE, 8BITMIME, SMTPUTF8 and the DSN parameters are passed
//! on when the server supports them. STARTTLS follows
//! `smtp_tls_security_level`. Every wait has its RFC 5321 timeout.
//!
//! Reply handling is Postfix's: 4xx defers, 5xx bounces, a connection or
//! protocol failure defers everything not yet accepted.

mod cache;
mod connect;
mod session;
mod transaction;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::BoxError;
use tower_service::Service;
use towerpost_config::TlsPolicyMap;
use towerpost_queue::{DeliveryReport, DeliveryRequest};

pub(super) use session::{Failure, Session, read_reply, reply_failure, send, stage_failure};

use super::dns::Dns;
use super::mta_sts::MtaSts;
use super::tls::Trust;
use cache::Cache;

/// Client settings (Postfix's `smtp_*` parameters).
#[derive(Debug, Clone)]
pub struct SmtpClientSettings {
    /// `myhostname`, sent in EHLO.
    pub myhostname: String,
    /// `smtp_connect_timeout`.
    pub connect_timeout: Duration,
    /// `smtp_helo_timeout`: greeting, EHLO, STARTTLS.
    pub helo_timeout: Duration,
    /// `smtp_mail_timeout`.
    pub mail_timeout: Duration,
    /// `smtp_rcpt_timeout`.
    pub rcpt_timeout: Duration,
    /// `smtp_data_init_timeout`: waiting for 354.
    pub data_init_timeout: Duration,
    /// `smtp_data_xfer_timeout`: each write of the content.
    pub data_xfer_timeout: Duration,
    /// `smtp_data_done_timeout`: waiting for the final reply.
    pub data_done_timeout: Duration,
    /// `smtp_connection_cache_time_limit`: how long an idle session is kept.
    pub cache_time_limit: Duration,
    /// `smtp_tls_security_level` for this transport.
    pub tls: TlsLevel,
    /// `smtp_tls_policy_maps`: per-destination levels, which win.
    pub tls_policy_maps: TlsPolicyMap,
    /// The trust anchors of `verify`, `secure` and MTA-STS.
    pub trust: Trust,
    /// MTA-STS policies, when `smtp_mta_sts_enable` (one cache for all
    /// transports).
    pub mta_sts: Option<Arc<MtaSts>>,
    /// Name servers to ask instead of the system's (tests); empty for the
    /// system's.
    pub name_servers: Vec<SocketAddr>,
    /// `smtp_sasl_auth_enable` with its password map and security options.
    pub sasl: Option<super::sasl::ClientSasl>,
    /// Not `disable_mime_output_conversion`: convert 8-bit content to
    /// 7-bit for a next hop without 8BITMIME.
    pub mime_output_conversion: bool,
}

/// `smtp_tls_security_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLevel {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, without certificate checks; plaintext otherwise.
    May,
    /// STARTTLS required, without certificate checks.
    Encrypt,
    /// STARTTLS required, certificate valid for the server's host name
    /// (web PKI roots).
    Verify,
    /// STARTTLS required, certificate valid for the next-hop name as
    /// configured (web PKI roots), not a name learned from DNS.
    Secure,
}

/// The SMTP delivery agent. Clones share the session cache.
#[derive(Clone)]
pub struct SmtpClient {
    settings: Arc<SmtpClientSettings>,
    cache: Arc<Mutex<Cache>>,
    dns: Dns,
}

impl SmtpClient {
    /// A client with an empty session cache.
    pub fn new(settings: SmtpClientSettings) -> Self {
        Self {
            dns: Dns::new(&settings.name_servers),
            cache: Arc::new(Mutex::new(Cache::default())),
            settings: Arc::new(settings),
        }
    }
}

impl Service<DeliveryRequest> for SmtpClient {
    type Response = DeliveryReport;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<DeliveryReport, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: DeliveryRequest) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { Ok(client.deliver(request).await) })
    }
}

impl SmtpClient {
    async fn deliver(&self, req: DeliveryRequest) -> DeliveryReport {
        let started = Instant::now();
        let n = req.recipients.len();
        let key = format!("{}:{}", req.transport, req.nexthop);
        let (session, reuse) = match self.cached(&key).await {
            Some(s) => (Ok(s), "reused"),
            None => (self.connect(&req.nexthop).await, "new"),
        };
        let mut session = match session {
            Ok(s) => s,
            Err(f) => {
                let mut r = DeliveryReport::all(n, f.outcome());
                r.setup = started.elapsed();
                r.site_failure = !f.permanent;
                return r;
            }
        };
        let setup = started.elapsed();
        towerpost_metrics::metrics()
            .outbound_sessions
            .get_or_create(&towerpost_metrics::ReuseLabels { session: reuse })
            .inc();
        let relay = format!(
            "{}[{}]:{}",
            session.host,
            session.peer.ip(),
            session.peer.port()
        );
        let sent = Instant::now();
        let (outcomes, reusable) = self.transaction(&mut session, &req).await;
        // A next hop without DSN drops NOTIFY: the success notice is ours.
        let success_action =
            (!session.features.dsn).then_some(towerpost_queue::dsn::DsnAction::Relayed);
        if reusable {
            self.keep(key, session);
        }
        DeliveryReport {
            relay,
            outcomes,
            setup,
            transmission: sent.elapsed(),
            success_action,
            site_failure: false,
        }
    }
}
