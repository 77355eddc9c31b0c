//! Opening a session: the next hop's hosts (MX lookup, MTA-STS), the TCP
//! connection, greeting and EHLO, STARTTLS with the certificate check the
//! TLS plan asks for, and SASL toward the server.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use towerpost_config::{Nexthop, TlsMatch};
use towerpost_protocol::EhloCapabilities;

use super::cache::quit;
use super::session::{Failure, Session, io_text, read_reply, reply_failure, stage_failure};
use super::{SmtpClient, TlsLevel};
use crate::delivery::tls::{Check, TlsPlan};

/// Where an MTA-STS `testing` handshake records a certificate failure.
type Observed = Arc<Mutex<Option<String>>>;

impl SmtpClient {
    /// How this delivery uses TLS: an `smtp_tls_policy_maps` entry, else
    /// the destination's MTA-STS policy (MX-lookup destinations only),
    /// else the transport's level.
    async fn tls_plan(&self, nexthop: &Nexthop) -> TlsPlan {
        let s = &self.settings;
        if let Some(policy) = s.tls_policy_maps.lookup(nexthop) {
            return TlsPlan::policy_map(policy);
        }
        if let Some(sts) = &s.mta_sts
            && nexthop.mx_lookup
            && nexthop.host.parse::<IpAddr>().is_err()
            && nexthop.host.contains('.')
            && let Some(policy) = sts.policy(&nexthop.host).await
            && policy.mode != crate::delivery::mta_sts::Mode::None
        {
            return TlsPlan::with_mta_sts(s.tls, nexthop.host.clone(), policy);
        }
        TlsPlan::transport(s.tls)
    }

    /// The hosts to try, in order: MX targets by preference, or the host.
    /// Under an enforced MTA-STS policy only MX hosts it names are used.
    async fn hosts(
        &self,
        nexthop: &Nexthop,
        plan: &TlsPlan,
    ) -> Result<Vec<(String, SocketAddr)>, Failure> {
        let host = &nexthop.host;
        let port = nexthop.port_or(25);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![(host.clone(), SocketAddr::new(ip, port))]);
        }
        let mut names = vec![host.clone()];
        if nexthop.mx_lookup {
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
        Ok(out)
    }

    /// Connects, reads the greeting, says EHLO, and does STARTTLS when the
    /// security level asks for it. Tries the next address on failure.
    pub(super) async fn connect(&self, nexthop: &Nexthop) -> Result<Session, Failure> {
        let plan = self.tls_plan(nexthop).await;
        let hosts = self.hosts(nexthop, &plan).await?;
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
        nexthop: &Nexthop,
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
        let mut session = Session::new(Box::new(stream), host.to_owned(), addr, false);
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
        let name = &self.settings.myhostname;
        let reply = session
            .command(format!("EHLO {name}\r\n").as_bytes(), t, "EHLO")
            .await?;
        if reply.is_positive() {
            session.features = EhloCapabilities::from_reply(&reply);
            return Ok(());
        }
        // RFC 5321 §3.2: fall back to HELO.
        let reply = session
            .command(format!("HELO {name}\r\n").as_bytes(), t, "HELO")
            .await?;
        if !reply.is_positive() {
            return Err(reply_failure(session, &reply, "HELO", false));
        }
        session.features = EhloCapabilities::default();
        Ok(())
    }

    /// The certificate check for a handshake with `host` under `plan`.
    fn check(&self, plan: &TlsPlan, nexthop: &Nexthop, host: &str) -> (Check, Option<Observed>) {
        let names = |matches: &[TlsMatch]| -> Vec<ServerName<'static>> {
            matches
                .iter()
                .map(|m| match m {
                    TlsMatch::Hostname => host.to_owned(),
                    TlsMatch::Nexthop => nexthop.host.clone(),
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
        nexthop: &Nexthop,
        plan: &TlsPlan,
    ) -> Result<Session, Failure> {
        let t = self.settings.helo_timeout;
        let reply = session.command(b"STARTTLS\r\n", t, "STARTTLS").await?;
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
        let handshake = tokio::time::timeout(t, connector.connect(sni, raw)).await;
        towerpost_metrics::metrics().tls("outbound", matches!(handshake, Ok(Ok(_))));
        let tls = match handshake {
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
        let mut session = Session::new(Box::new(tls), host, peer, true);
        // RFC 3207 §4.2: what the server said before TLS is forgotten.
        if let Err(f) = self.ehlo(&mut session).await {
            tokio::spawn(quit(session));
            return Err(f);
        }
        Ok(session)
    }
}
