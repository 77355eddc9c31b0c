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

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tower::BoxError;
use tower_service::Service;
use towerpost_config::{Nexthop, TlsMatch, TlsPolicyMap};
use towerpost_protocol::{Reply, ReplyParser};
use towerpost_queue::{DeliveryReport, DeliveryRequest, Outcome};

use super::dns::Dns;
use super::mta_sts::MtaSts;
use super::tls::{Check, TlsPlan, Trust};

/// Where an MTA-STS `testing` handshake records a certificate failure.
type Observed = Arc<Mutex<Option<String>>>;

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

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open session, ready for MAIL.
pub(super) struct Session {
    stream: BufReader<Box<dyn Io>>,
    pub(super) host: String,
    pub(super) peer: SocketAddr,
    pub(super) features: Features,
    idle_since: Instant,
    /// TLS is active.
    pub(super) tls: bool,
}

#[derive(Debug, Default, Clone)]
pub(super) struct Features {
    pipelining: bool,
    size: bool,
    eight_bit: bool,
    smtputf8: bool,
    dsn: bool,
    starttls: bool,
    /// The AUTH mechanisms offered, upper-cased.
    pub(super) auth: Vec<String>,
}

impl Features {
    fn from_ehlo(reply: &Reply) -> Self {
        let mut f = Features::default();
        for line in reply.lines().skip(1) {
            let keyword = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => f.pipelining = true,
                "SIZE" => f.size = true,
                "8BITMIME" => f.eight_bit = true,
                "SMTPUTF8" => f.smtputf8 = true,
                "DSN" => f.dsn = true,
                "STARTTLS" => f.starttls = true,
                "AUTH" => {
                    f.auth = line
                        .split_whitespace()
                        .skip(1)
                        .map(str::to_ascii_uppercase)
                        .collect();
                }
                _ => {}
            }
        }
        f
    }
}

/// A failure that ends the session; `reason` is Postfix-worded.
pub(super) struct Failure {
    pub(super) dsn: String,
    pub(super) reason: String,
    /// Permanent: bounce rather than defer.
    pub(super) permanent: bool,
    pub(super) diagnostic: Option<String>,
}

impl Failure {
    pub(super) fn soft(dsn: &str, reason: String) -> Self {
        Self {
            dsn: dsn.into(),
            reason,
            permanent: false,
            diagnostic: None,
        }
    }

    fn outcome(&self) -> Outcome {
        if self.permanent {
            Outcome::Bounced {
                dsn: self.dsn.clone(),
                reason: self.reason.clone(),
                diagnostic: self.diagnostic.clone(),
            }
        } else {
            Outcome::Deferred {
                dsn: self.dsn.clone(),
                reason: self.reason.clone(),
            }
        }
    }
}

/// At most this many idle sessions are cached in all, across next hops.
/// Postfix bounds its cached connections by the number of smtp processes
/// (`default_process_limit`, 100); when the cache is full, the session
/// idle longest is closed to make room.
const MAX_CACHED_SESSIONS: usize = 100;

/// How long QUIT may take when a session is closed on our side (Postfix's
/// `smtp_quit_timeout` is 300 s, but nothing waits for the answer here:
/// the mail is delivered or deferred already).
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle sessions by `transport:nexthop`, newest last.
#[derive(Default)]
struct Cache {
    sessions: HashMap<String, Vec<Session>>,
    count: usize,
    reaper: bool,
}

impl Cache {
    /// Takes out every session idle for `limit` or more.
    fn expired(&mut self, limit: Duration) -> Vec<Session> {
        let mut out = Vec::new();
        self.sessions.retain(|_, list| {
            let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|s| s.idle_since.elapsed() >= limit);
            out.extend(old);
            *list = fresh;
            !list.is_empty()
        });
        self.count -= out.len();
        out
    }

    /// Takes out the session idle longest.
    fn oldest(&mut self) -> Option<Session> {
        let (key, index) = self
            .sessions
            .iter()
            .flat_map(|(k, list)| {
                list.iter()
                    .enumerate()
                    .map(move |(i, s)| (k, i, s.idle_since))
            })
            .min_by_key(|(_, _, since)| *since)
            .map(|(k, i, _)| (k.clone(), i))?;
        let list = self.sessions.get_mut(&key)?;
        let session = list.remove(index);
        if list.is_empty() {
            self.sessions.remove(&key);
        }
        self.count -= 1;
        Some(session)
    }
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

    /// Keeps a session for the next message to the same next hop. The
    /// first one starts the task that closes sessions once they have been
    /// idle for `smtp_connection_cache_time_limit`; a full cache closes
    /// its oldest session.
    fn keep(&self, key: String, mut session: Session) {
        session.idle_since = Instant::now();
        let (evicted, start_reaper) = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let evicted = if cache.count >= MAX_CACHED_SESSIONS {
                cache.oldest()
            } else {
                None
            };
            cache.sessions.entry(key).or_default().push(session);
            cache.count += 1;
            (evicted, !std::mem::replace(&mut cache.reaper, true))
        };
        if let Some(old) = evicted {
            tokio::spawn(quit(old));
        }
        if start_reaper {
            tokio::spawn(reap(
                Arc::downgrade(&self.cache),
                self.settings.cache_time_limit,
            ));
        }
    }
}

/// Closes idle sessions on time, with QUIT, until the client is gone.
async fn reap(cache: std::sync::Weak<Mutex<Cache>>, limit: Duration) {
    let tick = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        let expired = cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expired(limit);
        drop(cache);
        for session in expired {
            tokio::spawn(quit(session));
        }
    }
}

/// Says QUIT and waits (briefly) for the answer, so the server sees an
/// orderly end rather than a dropped connection.
async fn quit(mut session: Session) {
    if send(&mut session, b"QUIT\r\n", QUIT_TIMEOUT).await.is_ok() {
        let _ = read_reply(&mut session, QUIT_TIMEOUT).await;
    }
    let _ = session.stream.get_mut().shutdown().await;
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

/// `[host]:port`, `host:port`, `[ipv6]`, `host`.
fn parse_nexthop(nexthop: &str) -> (String, u16, bool) {
    let (host, rest, mx) = match nexthop.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((h, rest)) => (h, rest, false),
            None => (inner, "", false),
        },
        None => match nexthop.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, &nexthop[h.len()..], true),
            _ => (nexthop, "", true),
        },
    };
    let host = host
        .strip_prefix("ipv6:")
        .or_else(|| host.strip_prefix("IPv6:"))
        .unwrap_or(host);
    let port = rest
        .strip_prefix(':')
        .and_then(|p| p.parse().ok())
        .unwrap_or(25);
    (host.to_owned(), port, mx)
}

impl SmtpClient {
    async fn deliver(&self, req: DeliveryRequest) -> DeliveryReport {
        let started = Instant::now();
        let n = req.recipients.len();
        let key = format!("{}:{}", req.transport, req.nexthop);
        let session = match self.cached(&key).await {
            Some(s) => Ok(s),
            None => self.connect(&req.nexthop).await,
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

    /// A cached session that still answers RSET.
    async fn cached(&self, key: &str) -> Option<Session> {
        loop {
            let mut session = {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                let list = cache.sessions.get_mut(key)?;
                let s = list.pop()?;
                if list.is_empty() {
                    cache.sessions.remove(key);
                }
                cache.count -= 1;
                s
            };
            if session.idle_since.elapsed() >= self.settings.cache_time_limit {
                tokio::spawn(quit(session));
                continue;
            }
            if send(&mut session, b"RSET\r\n", self.settings.helo_timeout)
                .await
                .is_ok()
                && let Ok(r) = read_reply(&mut session, self.settings.helo_timeout).await
                && r.is_positive()
            {
                return Some(session);
            }
        }
    }

    /// How this delivery uses TLS: an `smtp_tls_policy_maps` entry, else
    /// the destination's MTA-STS policy (MX-lookup destinations only),
    /// else the transport's level.
    async fn tls_plan(&self, nexthop: &str) -> TlsPlan {
        let s = &self.settings;
        let (host, port, mx) = parse_nexthop(nexthop);
        let typed = Nexthop {
            host: host.to_ascii_lowercase(),
            port: (port != 25).then_some(port),
            mx_lookup: mx,
        };
        if let Some(policy) = s.tls_policy_maps.lookup(&typed) {
            return TlsPlan::policy_map(policy);
        }
        if let Some(sts) = &s.mta_sts
            && mx
            && host.parse::<IpAddr>().is_err()
            && host.contains('.')
            && let Some(policy) = sts.policy(&typed.host).await
            && policy.mode != super::mta_sts::Mode::None
        {
            return TlsPlan::with_mta_sts(s.tls, typed.host, policy);
        }
        TlsPlan::transport(s.tls)
    }

    /// The hosts to try, in order: MX targets by preference, or the host.
    /// Under an enforced MTA-STS policy only MX hosts it names are used.
    async fn hosts(
        &self,
        nexthop: &str,
        plan: &TlsPlan,
    ) -> Result<(Vec<(String, SocketAddr)>, u16), Failure> {
        let (host, port, mx) = parse_nexthop(nexthop);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((vec![(host.clone(), SocketAddr::new(ip, port))], port));
        }
        let mut names = vec![host.clone()];
        if mx {
            let Some(resolver) = self.dns.resolver().await else {
                return Err(Failure::soft(
                    "4.4.3",
                    format!(
                        "Host or domain name not found. Name service error for name={host} type=MX: no resolver"
                    ),
                ));
            };
            match resolver.mx_lookup(host.as_str()).await {
                Ok(lookup) => {
                    let mut mxs: Vec<(u16, String)> = lookup
                        .answers()
                        .iter()
                        .filter_map(|record| match &record.data {
                            hickory_resolver::proto::rr::RData::MX(mx) => Some((
                                mx.preference,
                                // A-labels: what MTA-STS patterns and
                                // certificates are written in.
                                mx.exchange.to_ascii().trim_end_matches('.').to_owned(),
                            )),
                            _ => None,
                        })
                        .collect();
                    mxs.sort();
                    if mxs.iter().any(|(_, name)| name.is_empty()) {
                        // RFC 7505 null MX: the domain accepts no mail.
                        return Err(Failure {
                            dsn: "5.1.0".into(),
                            reason: format!("Domain {host} does not accept mail (nullMX)"),
                            permanent: true,
                            diagnostic: None,
                        });
                    }
                    if !mxs.is_empty() {
                        names = mxs.into_iter().map(|(_, n)| n).collect();
                    }
                }
                Err(e) if e.is_no_records_found() => {} // implicit MX: the host itself
                Err(e) => {
                    return Err(Failure::soft(
                        "4.4.3",
                        format!(
                            "Host or domain name not found. Name service error for name={host} type=MX: {e}"
                        ),
                    ));
                }
            }
        }
        if let Some((domain, policy)) = plan.enforced().or(plan.testing()) {
            let refused: Vec<&str> = names
                .iter()
                .filter(|n| !policy.allows(n))
                .map(String::as_str)
                .collect();
            let enforced = plan.enforced().is_some();
            if !refused.is_empty() {
                tracing::info!(target: "towerpost::smtp",
                    "MTA-STS policy of {domain} ({}) does not name MX host {}{}",
                    if enforced { "enforce" } else { "testing" },
                    refused.join(", "),
                    if enforced { "; not used" } else { "; used anyway in testing mode" });
            }
            // Testing mode delivers exactly as without a policy, in MX
            // preference order.
            if enforced {
                names.retain(|n| policy.allows(n));
            }
            if names.is_empty() {
                return Err(Failure::soft(
                    "4.7.5",
                    format!("MTA-STS policy of {domain} names none of its MX hosts"),
                ));
            }
        }
        let mut out = Vec::new();
        for name in names {
            out.extend(
                self.dns
                    .addresses(&name, port)
                    .await
                    .into_iter()
                    .map(|a| (name.clone(), a)),
            );
            if out.len() >= 5 {
                break; // smtp_mx_address_limit
            }
        }
        if out.is_empty() {
            return Err(Failure::soft(
                "4.4.3",
                format!(
                    "Host or domain name not found. Name service error for name={host} type=A: Host not found"
                ),
            ));
        }
        out.truncate(5);
        Ok((out, port))
    }

    /// Connects, reads the greeting, says EHLO, and does STARTTLS when the
    /// security level asks for it. Tries the next address on failure.
    async fn connect(&self, nexthop: &str) -> Result<Session, Failure> {
        let plan = self.tls_plan(nexthop).await;
        let (hosts, _) = self.hosts(nexthop, &plan).await?;
        let mut last = None;
        for (host, addr) in hosts {
            match self.open(nexthop, &host, addr, &plan).await {
                Ok(s) => return Ok(s),
                Err(f) => {
                    tracing::info!(target: "towerpost::smtp", "{}", f.reason);
                    if f.permanent {
                        return Err(f);
                    }
                    last = Some(f);
                }
            }
        }
        Err(last.unwrap_or_else(|| Failure::soft("4.4.1", "no usable address".into())))
    }

    async fn open(
        &self,
        nexthop: &str,
        host: &str,
        addr: SocketAddr,
        plan: &TlsPlan,
    ) -> Result<Session, Failure> {
        let s = &self.settings;
        let stream = match tokio::time::timeout(s.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(Failure::soft(
                    "4.4.1",
                    format!(
                        "connect to {host}[{}]:{}: {}",
                        addr.ip(),
                        addr.port(),
                        io_text(&e)
                    ),
                ));
            }
            Err(_) => {
                return Err(Failure::soft(
                    "4.4.1",
                    format!(
                        "connect to {host}[{}]:{}: Connection timed out",
                        addr.ip(),
                        addr.port()
                    ),
                ));
            }
        };
        let _ = stream.set_nodelay(true);
        let mut session = Session {
            stream: BufReader::new(Box::new(stream)),
            host: host.to_owned(),
            peer: addr,
            features: Features::default(),
            idle_since: Instant::now(),
            tls: false,
        };
        let greeting = read_reply(&mut session, s.helo_timeout)
            .await
            .map_err(|e| stage_failure(&session, e, "receiving the initial server greeting"))?;
        // From here on the server talks: a session given up says QUIT
        // (in the background; the failure is reported at once).
        let give_up = |session: Session, failure: Failure| {
            tokio::spawn(quit(session));
            Err(failure)
        };
        if !greeting.is_positive() {
            let f = reply_failure(&session, &greeting, "initial server greeting", false);
            return give_up(session, f);
        }
        if let Err(f) = self.ehlo(&mut session).await {
            return give_up(session, f);
        }
        let want_tls = match plan.level {
            TlsLevel::None => false,
            TlsLevel::May => session.features.starttls,
            TlsLevel::Encrypt | TlsLevel::Verify | TlsLevel::Secure => {
                if !session.features.starttls {
                    let f = Failure::soft(
                        "4.7.4",
                        format!(
                            "{}TLS is required, but was not offered by host {}[{}]",
                            plan.reason_prefix(),
                            host,
                            addr.ip()
                        ),
                    );
                    return give_up(session, f);
                }
                true
            }
        };
        if want_tls {
            session = self.starttls(session, nexthop, plan).await?;
        }
        if let Some((domain, _)) = plan.testing()
            && !session.tls
        {
            tracing::info!(target: "towerpost::smtp",
                "MTA-STS policy of {domain} (testing): enforce would defer: no TLS with {host}[{}]",
                addr.ip());
        }
        if let Some(sasl) = &s.sasl
            && let Err(f) = sasl
                .authenticate(&mut session, nexthop, s.helo_timeout)
                .await
        {
            return give_up(session, f);
        }
        Ok(session)
    }

    async fn ehlo(&self, session: &mut Session) -> Result<(), Failure> {
        let t = self.settings.helo_timeout;
        let cmd = format!("EHLO {}\r\n", self.settings.myhostname);
        send(session, cmd.as_bytes(), t)
            .await
            .map_err(|e| stage_failure(session, e, "sending EHLO"))?;
        let reply = read_reply(session, t)
            .await
            .map_err(|e| stage_failure(session, e, "receiving the EHLO reply"))?;
        if reply.is_positive() {
            session.features = Features::from_ehlo(&reply);
            return Ok(());
        }
        // RFC 5321 §3.2: fall back to HELO.
        let cmd = format!("HELO {}\r\n", self.settings.myhostname);
        send(session, cmd.as_bytes(), t)
            .await
            .map_err(|e| stage_failure(session, e, "sending HELO"))?;
        let reply = read_reply(session, t)
            .await
            .map_err(|e| stage_failure(session, e, "receiving the HELO reply"))?;
        if !reply.is_positive() {
            return Err(reply_failure(session, &reply, "HELO", false));
        }
        session.features = Features::default();
        Ok(())
    }

    /// The certificate check for a handshake with `host` under `plan`.
    fn check(&self, plan: &TlsPlan, nexthop: &str, host: &str) -> (Check, Option<Observed>) {
        let names = |matches: &[TlsMatch]| -> Vec<ServerName<'static>> {
            matches
                .iter()
                .map(|m| match m {
                    TlsMatch::Hostname => host.to_owned(),
                    TlsMatch::Nexthop => parse_nexthop(nexthop).0,
                    TlsMatch::Name(n) => n.clone(),
                })
                .filter_map(|n| ServerName::try_from(n).ok())
                .collect()
        };
        match plan.level {
            TlsLevel::Verify | TlsLevel::Secure => (Check::Names(names(&plan.matches)), None),
            _ if plan.testing().is_some() => {
                let slot = Observed::default();
                (
                    Check::Observe(names(&[TlsMatch::Hostname]), slot.clone()),
                    Some(slot),
                )
            }
            _ => (Check::Unverified, None),
        }
    }

    async fn starttls(
        &self,
        mut session: Session,
        nexthop: &str,
        plan: &TlsPlan,
    ) -> Result<Session, Failure> {
        let t = self.settings.helo_timeout;
        send(&mut session, b"STARTTLS\r\n", t)
            .await
            .map_err(|e| stage_failure(&session, e, "sending STARTTLS"))?;
        let reply = read_reply(&mut session, t)
            .await
            .map_err(|e| stage_failure(&session, e, "receiving the STARTTLS reply"))?;
        if reply.code() != 220 {
            if plan.level == TlsLevel::May {
                return Ok(session); // opportunistic: carry on in plaintext
            }
            let f = reply_failure(&session, &reply, "STARTTLS", false);
            tokio::spawn(quit(session));
            return Err(f);
        }
        // Anything the server sent after its 220 arrived in plaintext and
        // must not be read as if it came over TLS (response injection).
        let Session {
            stream, host, peer, ..
        } = session;
        let raw = stream.into_inner();
        // `secure` checks the certificate against the next hop as
        // configured (relayhost, transport_maps), never against a name
        // that DNS (an MX record) supplied; `verify` takes the host name.
        let (check, observed) = self.check(plan, nexthop, &host);
        // SNI: the first name the certificate is to match (the next hop for
        // `secure`, the MX host for `verify` and MTA-STS, RFC 8461 §7.1),
        // else the host connected to.
        let sni = match &check {
            Check::Names(names) | Check::Observe(names, _) => names.first().cloned(),
            Check::Unverified => None,
        }
        .or_else(|| ServerName::try_from(host.clone()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(peer.ip().into()));
        let connector = self.settings.trust.connector(check);
        let tls = match tokio::time::timeout(t, connector.connect(sni, raw)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                return Err(Failure::soft(
                    "4.7.5",
                    format!(
                        "{}TLS handshake with {host}[{}] failed: {e}",
                        plan.reason_prefix(),
                        peer.ip()
                    ),
                ));
            }
            Err(_) => {
                return Err(Failure::soft(
                    "4.4.2",
                    format!(
                        "conversation with {host}[{}] timed out during the TLS handshake",
                        peer.ip()
                    ),
                ));
            }
        };
        if let (Some((domain, _)), Some(observed)) = (plan.testing(), observed) {
            match observed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(e) => tracing::info!(target: "towerpost::smtp",
                    "MTA-STS policy of {domain} (testing): enforce would defer: \
                     certificate of {host}[{}] not verified: {e}", peer.ip()),
                None => tracing::info!(target: "towerpost::smtp",
                    "MTA-STS policy of {domain} (testing): certificate of {host}[{}] verified",
                    peer.ip()),
            }
        }
        let mut session = Session {
            stream: BufReader::new(Box::new(tls)),
            host,
            peer,
            features: Features::default(),
            idle_since: Instant::now(),
            tls: true,
        };
        // RFC 3207 §4.2: what the server said before TLS is forgotten.
        if let Err(f) = self.ehlo(&mut session).await {
            tokio::spawn(quit(session));
            return Err(f);
        }
        Ok(session)
    }

    /// One mail transaction. Returns the outcomes and whether the session
    /// can be reused.
    async fn transaction(
        &self,
        session: &mut Session,
        req: &DeliveryRequest,
    ) -> (Vec<Outcome>, bool) {
        let s = &self.settings;
        let n = req.recipients.len();
        let f = session.features.clone();
        // RFC 6531 §3.4: mail that needs SMTPUTF8 (non-ASCII addresses, or
        // submitted with SMTPUTF8 and carrying UTF-8 headers) cannot go to
        // a server without it; Postfix bounces it so, and so do we (no
        // RFC 6857 downgrade).
        let non_ascii = !req.sender.is_ascii()
            || req.recipients.iter().any(|r| !r.address.is_ascii())
            || (req.smtputf8 && !header_section(&req.content).is_ascii());
        if non_ascii && !f.smtputf8 {
            let fail = Failure {
                dsn: "5.6.7".into(),
                reason: format!(
                    "SMTPUTF8 is required, but was not offered by host {}[{}]",
                    session.host,
                    session.peer.ip()
                ),
                permanent: true,
                diagnostic: None,
            };
            return (vec![fail.outcome(); n], true);
        }
        // RFC 6152 §3: 8-bit content for a server without 8BITMIME is
        // converted to 7-bit, or bounced when that cannot be done.
        let content: std::borrow::Cow<'_, [u8]> = if !f.eight_bit && s.mime_output_conversion {
            match super::downgrade::to_7bit(&req.content) {
                Ok(c) => c,
                Err(super::downgrade::Impossible(why)) => {
                    let fail = Failure {
                        dsn: "5.6.3".into(),
                        reason: format!(
                            "host {}[{}] does not offer 8BITMIME, and the message cannot be converted to 7-bit: {why}",
                            session.host,
                            session.peer.ip()
                        ),
                        permanent: true,
                        diagnostic: None,
                    };
                    return (vec![fail.outcome(); n], true);
                }
            }
        } else {
            std::borrow::Cow::Borrowed(req.content.as_slice())
        };
        let mut mail = format!("MAIL FROM:<{}>", req.sender);
        if f.size {
            mail.push_str(&format!(" SIZE={}", content.len()));
        }
        if f.eight_bit && req.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if f.smtputf8 && req.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if f.dsn {
            if let Some(ret) = &req.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = &req.envid {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        mail.push_str("\r\n");
        let rcpts: Vec<String> = req
            .recipients
            .iter()
            .map(|r| {
                let mut line = format!("RCPT TO:<{}>", r.address);
                if f.dsn {
                    if let Some(notify) = &r.notify {
                        line.push_str(&format!(" NOTIFY={notify}"));
                    }
                    if let Some(orcpt) = &r.orcpt {
                        line.push_str(&format!(" ORCPT={orcpt}"));
                    }
                }
                line.push_str("\r\n");
                line
            })
            .collect();

        let lost =
            |session: &Session, e: std::io::Error, what: &str| stage_failure(session, e, what);
        // With PIPELINING, MAIL, every RCPT and DATA go in one write.
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        let all = |f: &Failure| vec![f.outcome(); n];
        if f.pipelining {
            let mut batch = mail.clone().into_bytes();
            for r in &rcpts {
                batch.extend_from_slice(r.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            if let Err(e) = send(session, &batch, s.mail_timeout).await {
                return (all(&lost(session, e, "sending MAIL FROM")), false);
            }
        } else if let Err(e) = send(session, mail.as_bytes(), s.mail_timeout).await {
            return (all(&lost(session, e, "sending MAIL FROM")), false);
        }
        let reply = match read_reply(session, s.mail_timeout).await {
            Ok(r) => r,
            Err(e) => {
                return (
                    all(&lost(session, e, "receiving the MAIL FROM reply")),
                    false,
                );
            }
        };
        let mail_ok = reply.is_positive();
        let mail_failure =
            (!mail_ok).then(|| reply_failure(session, &reply, "MAIL FROM command", true));
        let mut accepted = 0;
        for (i, line) in rcpts.iter().enumerate() {
            if !f.pipelining {
                if !mail_ok {
                    break;
                }
                if let Err(e) = send(session, line.as_bytes(), s.rcpt_timeout).await {
                    return (fill(outcomes, &lost(session, e, "sending RCPT TO")), false);
                }
            }
            let reply = match read_reply(session, s.rcpt_timeout).await {
                Ok(r) => r,
                Err(e) => {
                    return (
                        fill(outcomes, &lost(session, e, "receiving the RCPT TO reply")),
                        false,
                    );
                }
            };
            if !mail_ok {
                continue; // pipelined RCPTs after a refused MAIL
            }
            if reply.is_positive() {
                accepted += 1;
            } else {
                outcomes[i] =
                    Some(reply_failure(session, &reply, "RCPT TO command", true).outcome());
            }
        }
        if let Some(fail) = mail_failure {
            if f.pipelining {
                let _ = read_reply(session, s.data_init_timeout).await; // the DATA reply
            }
            let reusable = reset(session, s.helo_timeout).await;
            return (fill(outcomes, &fail), reusable);
        }
        if !f.pipelining
            && accepted > 0
            && let Err(e) = send(session, b"DATA\r\n", s.data_init_timeout).await
        {
            return (fill(outcomes, &lost(session, e, "sending DATA")), false);
        }
        if accepted == 0 {
            if f.pipelining {
                // The DATA went out with the recipients. A server that
                // answers it with 354 anyway (against RFC 2920 §3.1) now
                // reads content: end it empty, or RSET would be content.
                match read_reply(session, s.data_init_timeout).await {
                    Ok(r) if r.code() == 354 => {
                        let ended = send(session, b".\r\n", s.data_xfer_timeout).await.is_ok()
                            && read_reply(session, s.data_done_timeout).await.is_ok();
                        if !ended {
                            let none = Failure::soft("4.0.0", "no recipient accepted".into());
                            return (fill(outcomes, &none), false);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return (
                            fill(outcomes, &lost(session, e, "receiving the DATA reply")),
                            false,
                        );
                    }
                }
            }
            let reusable = reset(session, s.helo_timeout).await;
            let none = Failure::soft("4.0.0", "no recipient accepted".into());
            return (fill(outcomes, &none), reusable);
        }
        let reply = match read_reply(session, s.data_init_timeout).await {
            Ok(r) => r,
            Err(e) => {
                return (
                    fill(outcomes, &lost(session, e, "receiving the DATA reply")),
                    false,
                );
            }
        };
        if reply.code() != 354 {
            let fail = reply_failure(session, &reply, "DATA command", true);
            let reusable = reset(session, s.helo_timeout).await;
            return (fill(outcomes, &fail), reusable);
        }
        let body = dot_stuff(&content);
        if let Err(e) = send(session, &body, s.data_xfer_timeout).await {
            return (
                fill(outcomes, &lost(session, e, "sending message body")),
                false,
            );
        }
        let reply = match read_reply(session, s.data_done_timeout).await {
            Ok(r) => r,
            Err(e) => {
                return (
                    fill(
                        outcomes,
                        &lost(session, e, "receiving the end of data reply"),
                    ),
                    false,
                );
            }
        };
        if reply.is_positive() {
            let dsn = reply
                .enhanced_code()
                .map_or_else(|| "2.0.0".to_owned(), |c| c.to_string());
            let sent = Outcome::Sent {
                dsn,
                reply: reply.to_string(),
            };
            let out = outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| sent.clone()))
                .collect();
            return (out, true);
        }
        let fail = reply_failure(session, &reply, "end of DATA command", true);
        (fill(outcomes, &fail), true)
    }
}

/// Outcomes not yet decided get `f`.
fn fill(outcomes: Vec<Option<Outcome>>, f: &Failure) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| f.outcome()))
        .collect()
}

/// RSET after a failed transaction; the session is reusable if it answers.
async fn reset(session: &mut Session, timeout: Duration) -> bool {
    send(session, b"RSET\r\n", timeout).await.is_ok()
        && read_reply(session, timeout)
            .await
            .is_ok_and(|r| r.is_positive())
}

/// The header section of stored content: up to the first empty line (none
/// when the content starts with one).
fn header_section(content: &[u8]) -> &[u8] {
    if content.starts_with(b"\r\n") {
        return b"";
    }
    memchr::memmem::find(content, b"\r\n\r\n").map_or(content, |i| &content[..i + 2])
}

/// RFC 5321 §4.5.2 transparency, plus the end of data. Content is stored
/// as canonical CRLF text; a final line without a line end gets one.
///
/// Whatever the store holds (a spool written before stray CR and LF were
/// normalised on receipt, a message from a local program), nothing but
/// CRLF leaves as a line end (RFC 5321 §2.3.8): a bare LF is sent as CRLF
/// and a bare CR as a space, so no byte sequence can end the data early
/// at a receiver that is lax about line ends (outbound SMTP smuggling).
fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    let mut line_start = true;
    let mut rest = content;
    while !rest.is_empty() {
        if line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            None => {
                out.extend_from_slice(rest);
                line_start = false;
                rest = &[];
            }
            Some(i) => {
                out.extend_from_slice(&rest[..i]);
                if rest[i] == b'\r' && rest.get(i + 1) != Some(&b'\n') {
                    out.push(b' ');
                    line_start = false;
                    rest = &rest[i + 1..];
                } else {
                    out.extend_from_slice(b"\r\n");
                    line_start = true;
                    rest = &rest[i + if rest[i] == b'\r' { 2 } else { 1 }..];
                }
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

pub(super) async fn send(
    session: &mut Session,
    bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let stream = session.stream.get_mut();
    match tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

pub(super) async fn read_reply(session: &mut Session, timeout: Duration) -> std::io::Result<Reply> {
    let mut parser = ReplyParser::new();
    let read = async {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut session.stream)
                .take(towerpost_protocol::MAX_REPLY_LINE as u64 + 2)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            match parser.line(text) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Connection timed out".into(),
        _ => e.to_string(),
    }
}

/// Postfix's wording for a lost or stalled session.
pub(super) fn stage_failure(session: &Session, e: std::io::Error, stage: &str) -> Failure {
    let host = format!("{}[{}]", session.host, session.peer.ip());
    if e.kind() == std::io::ErrorKind::TimedOut {
        Failure::soft(
            "4.4.2",
            format!("conversation with {host} timed out while {stage}"),
        )
    } else {
        Failure::soft(
            "4.4.2",
            format!("lost connection with {host} while {stage}"),
        )
    }
}

/// A negative reply: 4xx defers, 5xx bounces (when `may_bounce`).
pub(super) fn reply_failure(
    session: &Session,
    reply: &Reply,
    command: &str,
    may_bounce: bool,
) -> Failure {
    let permanent = may_bounce && reply.code() >= 500;
    let dsn = reply
        .enhanced_code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("{}.0.0", reply.code() / 100));
    let text = reply.to_string();
    Failure {
        dsn,
        reason: format!(
            "host {}[{}] said: {text} (in reply to {command})",
            session.host,
            session.peer.ip()
        ),
        permanent,
        diagnostic: Some(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nexthop_forms() {
        assert_eq!(
            parse_nexthop("[127.0.0.1]:2526"),
            ("127.0.0.1".into(), 2526, false)
        );
        assert_eq!(
            parse_nexthop("[mail.example]"),
            ("mail.example".into(), 25, false)
        );
        assert_eq!(
            parse_nexthop("example.com"),
            ("example.com".into(), 25, true)
        );
        assert_eq!(
            parse_nexthop("example.com:587"),
            ("example.com".into(), 587, true)
        );
        assert_eq!(parse_nexthop("[ipv6:::1]:26"), ("::1".into(), 26, false));
    }

    #[test]
    fn dot_stuffing_and_end_of_data() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        // Stray CR and LF never leave as such.
        assert_eq!(
            dot_stuff(b"x\r.\rMAIL FROM:<e@x>\r\n"),
            b"x . MAIL FROM:<e@x>\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"a\n.\nb\r\n"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r\n.\r"), b"a\r\n.. \r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r"), b"a \r\n.\r\n");
    }
}
