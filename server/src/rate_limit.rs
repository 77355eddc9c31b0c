//! Per-client abuse limits, as Postfix's anvil(8) gives them: concurrent
//! connections, and rates of connections, messages (MAIL), recipients
//! (RCPT, VRFY), new TLS sessions (STARTTLS) and AUTH commands.
//!
//! Clients are keyed by address, IPv6 addresses by their
//! `smtpd_client_ipv6_prefix_length` prefix (84 bits: one host's privacy
//! addresses count together), IPv4 by `smtpd_client_ipv4_prefix_length`.
//! Clients in `smtpd_client_event_limit_exceptions` are never limited.
//!
//! Rates use governor's GCRA, not anvil's fixed windows: a limit of N per
//! `anvil_rate_time_unit` allows a burst of N and then one more every
//! unit/N. A client that stays within the limit is never refused by
//! either; a client that bursts at a window boundary gets at most N, not
//! 2N as anvil allows. State is bounded: idle clients' entries are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use towerpost_metrics::metrics;
use towerpost_protocol::{Command, EnhancedCode, Reply};

use crate::policy::{PolicyLayer, SmtpPolicy};
use crate::request::{RequestKind, SmtpRequest};

/// The limits (Postfix's parameters; 0 = no limit).
#[derive(Debug, Clone)]
pub(crate) struct RateLimitSettings {
    /// `myhostname`, for the 421 text.
    pub myhostname: String,
    /// `smtpd_client_connection_count_limit`.
    pub connection_count: u32,
    /// `smtpd_client_connection_rate_limit`.
    pub connection_rate: u32,
    /// `smtpd_client_message_rate_limit`.
    pub message_rate: u32,
    /// `smtpd_client_recipient_rate_limit`.
    pub recipient_rate: u32,
    /// `smtpd_client_new_tls_session_rate_limit`.
    pub tls_rate: u32,
    /// `smtpd_client_auth_rate_limit`.
    pub auth_rate: u32,
    /// `anvil_rate_time_unit`.
    pub time_unit: Duration,
    /// `smtpd_client_event_limit_exceptions`.
    pub exceptions: Vec<IpNet>,
    /// `smtpd_client_ipv4_prefix_length`.
    pub ipv4_prefix: u8,
    /// `smtpd_client_ipv6_prefix_length`.
    pub ipv6_prefix: u8,
    /// Count an authenticated session against its SASL identity instead
    /// of its address (a roaming user keeps one budget; users behind one
    /// NAT get one each). Unauthenticated sessions count by address.
    pub key_by_sasl_identity: bool,
}

/// Whom an event counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Address(IpAddr),
    User(String),
}

type Limiter = DefaultKeyedRateLimiter<ClientKey>;

/// The limits and their counters, shared by every connection: a
/// [`SmtpPolicy`].
pub(crate) struct ClientLimits {
    settings: RateLimitSettings,
    connections: Option<Limiter>,
    messages: Option<Limiter>,
    recipients: Option<Limiter>,
    tls: Option<Limiter>,
    auth: Option<Limiter>,
    /// Live connections per client key.
    open: Mutex<HashMap<ClientKey, u32>>,
    /// Checks since the last sweep of idle clients.
    checks: AtomicU64,
}

/// How many checks between sweeps of idle entries.
const SWEEP_EVERY: u64 = 4096;

impl ClientLimits {
    fn limiter(n: u32, unit: Duration) -> Option<Limiter> {
        let n = NonZeroU32::new(n)?;
        let period = (unit / n.get()).max(Duration::from_nanos(1));
        Quota::with_period(period).map(|q| RateLimiter::keyed(q.allow_burst(n)))
    }

    fn key(&self, session: &crate::request::SessionInfo) -> ClientKey {
        match &session.auth {
            Some(user) if self.settings.key_by_sasl_identity => ClientKey::User(user.clone()),
            _ => ClientKey::Address(self.address_key(session.client.ip())),
        }
    }

    fn address_key(&self, ip: IpAddr) -> IpAddr {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let prefix = match ip {
            IpAddr::V4(_) => self.settings.ipv4_prefix,
            IpAddr::V6(_) => self.settings.ipv6_prefix,
        };
        IpNet::new(ip, prefix).map_or(ip, |n| n.network())
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.settings.exceptions.iter().any(|n| n.contains(&ip))
    }

    /// Takes one event from `limiter`; `false` when over the rate.
    fn allow(&self, limiter: &Option<Limiter>, key: &ClientKey) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        limiter.as_ref().is_none_or(|l| l.check_key(key).is_ok())
    }

    /// Forgets clients whose limits have fully recovered: memory stays
    /// proportional to recently active clients, whatever a flood of
    /// distinct addresses does. Also done by itself every few thousand
    /// events.
    pub(crate) fn sweep(&self) {
        for l in [
            &self.connections,
            &self.messages,
            &self.recipients,
            &self.tls,
            &self.auth,
        ]
        .into_iter()
        .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// The refusal for `request`, if a limit is exceeded.
    fn refusal(&self, request: &SmtpRequest) -> Option<Reply> {
        let ip = request.session.client.ip();
        if self.exempt(ip) {
            return None;
        }
        let key = self.key(&request.session);
        let e = EnhancedCode::new;
        let host = &self.settings.myhostname;
        match &request.kind {
            RequestKind::Connect => {
                let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                let count = open.get(&key).copied().unwrap_or(0);
                let allowed = self.allow(&self.connections, &key);
                let limit = self.settings.connection_count;
                if limit > 0 && count >= limit {
                    // Postfix's anvil warning, which log watchers match.
                    tracing::warn!(
                        target: "towerpost::smtpd",
                        "Connection concurrency limit exceeded: {} from {} for service {}",
                        count + 1,
                        request.session.client_name(),
                        request.session.listener
                    );
                }
                if (limit > 0 && count >= limit) || !allowed {
                    let rule = if allowed {
                        "smtpd_client_connection_count_limit"
                    } else {
                        "smtpd_client_connection_rate_limit"
                    };
                    metrics().reject("CONNECT", rule);
                    return Some(Reply::enhanced(
                        421,
                        e(4, 7, 0),
                        format!("{host} Error: too many connections from {ip}"),
                    ));
                }
                // Implicit TLS (port 465): the handshake was a new TLS
                // session; over the limit, Postfix answers 421 and hangs up.
                if request.session.tls && !self.allow(&self.tls, &key) {
                    metrics().reject("CONNECT", "smtpd_client_new_tls_session_rate_limit");
                    return Some(Reply::enhanced(
                        421,
                        e(4, 7, 0),
                        format!(
                            "{host} Error: too many new TLS sessions from {}",
                            request.session.client_name()
                        ),
                    ));
                }
                *open.entry(key).or_insert(0) += 1;
                None
            }
            RequestKind::Disconnect => {
                let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = open.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        open.remove(&key);
                    }
                }
                None
            }
            RequestKind::Command(Command::Mail { .. }) => {
                (!self.allow(&self.messages, &key)).then(|| {
                    metrics().reject("MAIL", "smtpd_client_message_rate_limit");
                    Reply::enhanced(450, e(4, 7, 1), format!("Error: too much mail from {ip}"))
                })
            }
            RequestKind::Command(Command::Rcpt { .. } | Command::Vrfy { .. }) => {
                (!self.allow(&self.recipients, &key)).then(|| {
                    metrics().reject("RCPT", "smtpd_client_recipient_rate_limit");
                    Reply::enhanced(
                        450,
                        e(4, 7, 1),
                        format!("Error: too many recipients from {ip}"),
                    )
                })
            }
            RequestKind::Command(Command::StartTls) => (!self.allow(&self.tls, &key)).then(|| {
                metrics().reject("STARTTLS", "smtpd_client_new_tls_session_rate_limit");
                Reply::enhanced(
                    454,
                    e(4, 7, 0),
                    format!(
                        "Error: too many new TLS sessions from {}",
                        request.session.client_name()
                    ),
                )
            }),
            RequestKind::Command(Command::Auth { .. }) => {
                (!self.allow(&self.auth, &key)).then(|| {
                    metrics().reject("AUTH", "smtpd_client_auth_rate_limit");
                    Reply::enhanced(
                        450,
                        e(4, 7, 1),
                        format!("Error: too many AUTH commands from {ip}"),
                    )
                })
            }
            _ => None,
        }
    }

    /// Clients with state, for tests.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        [
            &self.connections,
            &self.messages,
            &self.recipients,
            &self.tls,
            &self.auth,
        ]
        .into_iter()
        .flatten()
        .map(|l| l.len())
        .max()
        .unwrap_or(0)
    }
}

/// The rate limits as a layer.
pub(crate) type RateLimitLayer = PolicyLayer<ClientLimits>;

impl std::fmt::Debug for ClientLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ClientLimits {
    /// A layer enforcing `settings`; every service it builds shares one
    /// set of counters.
    pub(crate) fn layer(settings: RateLimitSettings) -> RateLimitLayer {
        let unit = settings.time_unit;
        PolicyLayer::new(Self {
            connections: Self::limiter(settings.connection_rate, unit),
            messages: Self::limiter(settings.message_rate, unit),
            recipients: Self::limiter(settings.recipient_rate, unit),
            tls: Self::limiter(settings.tls_rate, unit),
            auth: Self::limiter(settings.auth_rate, unit),
            settings,
            open: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        })
    }

    /// How many clients the rate limiters currently hold state for.
    #[cfg(test)]
    pub(crate) fn tracked_clients(&self) -> usize {
        self.tracked()
    }
}

impl SmtpPolicy for ClientLimits {
    fn check(&self, request: &SmtpRequest) -> Option<Reply> {
        let reply = self.refusal(request)?;
        tracing::warn!(
            target: "towerpost::smtpd",
            "{}: {reply}",
            request.session.client_name()
        );
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::request::SessionInfo;
    use std::sync::Arc;
    use tower::{Layer, Service, ServiceExt};
    use towerpost_protocol::{Address, MailParams};

    fn settings() -> RateLimitSettings {
        RateLimitSettings {
            myhostname: "mx.test".into(),
            connection_count: 2,
            connection_rate: 0,
            message_rate: 2,
            recipient_rate: 0,
            tls_rate: 0,
            auth_rate: 0,
            time_unit: Duration::from_secs(60),
            exceptions: vec!["10.0.0.0/8".parse().unwrap()],
            ipv4_prefix: 32,
            ipv6_prefix: 84,
            key_by_sasl_identity: false,
        }
    }

    fn request(ip: &str, kind: RequestKind) -> SmtpRequest {
        SmtpRequest {
            session: Arc::new(SessionInfo {
                esmtp: true,
                ..SessionInfo::new(
                    format!("{ip}:1234").parse().unwrap(),
                    "127.0.0.1:25".parse().unwrap(),
                    "smtp",
                )
            }),
            transaction: None,
            kind,
        }
    }

    fn mail() -> RequestKind {
        RequestKind::Command(Command::Mail {
            from: Some(Address::parse("a@b.test").unwrap()),
            params: MailParams::default(),
        })
    }

    /// Sends `req` through the layer over a mock that answers 250; returns
    /// the reply code.
    async fn code(
        svc: &mut Policy<tower_test::mock::Mock<SmtpRequest, Reply>, ClientLimits>,
        handle: &mut tower_test::mock::Handle<SmtpRequest, Reply>,
        req: SmtpRequest,
    ) -> u16 {
        let fut = svc.ready().await.unwrap().call(req);
        let answer = async {
            if let Some((_, send)) = handle.next_request().await {
                send.send_response(Reply::new(250, "ok"));
            }
        };
        let (reply, ()) = tokio::join!(fut, answer);
        reply.unwrap().code()
    }

    /// Sends `req` expecting the layer itself to answer (the mock is never
    /// called); returns that reply.
    async fn answered_by_layer(
        svc: &mut Policy<tower_test::mock::Mock<SmtpRequest, Reply>, ClientLimits>,
        req: SmtpRequest,
    ) -> Reply {
        svc.ready().await.unwrap().call(req).await.unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn message_rate_and_connection_count_answer_like_anvil() {
        let (mock, mut handle) = tower_test::mock::pair::<SmtpRequest, Reply>();
        let layer = ClientLimits::layer(settings());
        let mut svc = layer.layer(mock);
        assert_eq!(
            code(&mut svc, &mut handle, request("192.0.2.1", mail())).await,
            250
        );
        assert_eq!(
            code(&mut svc, &mut handle, request("192.0.2.1", mail())).await,
            250
        );
        let refused = answered_by_layer(&mut svc, request("192.0.2.1", mail())).await;
        assert_eq!(
            refused.to_string(),
            "450 4.7.1 Error: too much mail from 192.0.2.1"
        );
        // Another client, and an excepted one, are not affected.
        assert_eq!(
            code(&mut svc, &mut handle, request("192.0.2.2", mail())).await,
            250
        );
        for _ in 0..5 {
            assert_eq!(
                code(&mut svc, &mut handle, request("10.1.1.1", mail())).await,
                250
            );
        }
        // Two connections at once, a third is refused until one ends.
        for _ in 0..2 {
            assert_eq!(
                code(
                    &mut svc,
                    &mut handle,
                    request("192.0.2.9", RequestKind::Connect)
                )
                .await,
                250
            );
        }
        let refused = answered_by_layer(&mut svc, request("192.0.2.9", RequestKind::Connect)).await;
        assert_eq!(
            refused.to_string(),
            "421 4.7.0 mx.test Error: too many connections from 192.0.2.9"
        );
        assert_eq!(
            code(
                &mut svc,
                &mut handle,
                request("192.0.2.9", RequestKind::Disconnect)
            )
            .await,
            250
        );
        assert_eq!(
            code(
                &mut svc,
                &mut handle,
                request("192.0.2.9", RequestKind::Connect)
            )
            .await,
            250
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ipv6_clients_share_a_prefix() {
        let (mock, mut handle) = tower_test::mock::pair::<SmtpRequest, Reply>();
        let mut svc = ClientLimits::layer(settings()).layer(mock);
        assert_eq!(
            code(&mut svc, &mut handle, request("[2001:db8::1]", mail())).await,
            250
        );
        assert_eq!(
            code(&mut svc, &mut handle, request("[2001:db8::2]", mail())).await,
            250
        );
        let refused = answered_by_layer(&mut svc, request("[2001:db8::3]", mail())).await;
        assert_eq!(refused.code(), 450, "same /84: one client");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn authenticated_sessions_can_count_by_identity() {
        let (mock, mut handle) = tower_test::mock::pair::<SmtpRequest, Reply>();
        let mut svc = ClientLimits::layer(RateLimitSettings {
            key_by_sasl_identity: true,
            message_rate: 1,
            ..settings()
        })
        .layer(mock);
        let as_user = |ip: &str| {
            let mut r = request(ip, mail());
            Arc::make_mut(&mut r.session).auth = Some("alice".into());
            r
        };
        assert_eq!(code(&mut svc, &mut handle, as_user("192.0.2.1")).await, 250);
        // Another address, same user: the same budget.
        let refused = answered_by_layer(&mut svc, as_user("198.51.100.1")).await;
        assert_eq!(refused.code(), 450);
        // An unauthenticated client at the first address has its own.
        assert_eq!(
            code(&mut svc, &mut handle, request("192.0.2.1", mail())).await,
            250
        );
    }

    #[test]
    fn state_stays_bounded_under_a_flood_of_addresses() {
        let layer = ClientLimits::layer(RateLimitSettings {
            time_unit: Duration::from_millis(1),
            ..settings()
        });
        for i in 0..100_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0xC000_0000 | i));
            let _ = layer.policy().check(&request(&ip.to_string(), mail()));
        }
        std::thread::sleep(Duration::from_millis(5));
        layer.policy().sweep();
        assert!(
            layer.policy().tracked_clients() < 1000,
            "{} tracked",
            layer.policy().tracked_clients()
        );
    }
}
