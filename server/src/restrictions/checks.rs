//! One restriction against the facts of one RCPT: Postfix's
//! `smtpd_check.c` decisions and reply texts.

use std::net::IpAddr;

use towerpost_config::{AccessAction, Config, Restriction};
use towerpost_protocol::{Address, EnhancedCode, Reply};

use super::ListClass;
use super::dns::{DomainCheck, DomainStatus};
use crate::request::{SessionInfo, SmtpRequest};

/// What a restriction decided; `None` from an evaluation means "go on".
pub(crate) enum Decision {
    /// Stop this list: allowed.
    Permit,
    /// Refuse with this reply.
    Refuse(Reply),
}

/// `<code> <dsn> <name>: <class> rejected: <text>`, Postfix's UCE reply
/// shape. A text that starts with an enhanced status code keeps it.
pub(crate) fn rejected(code: u16, name: &str, class: &str, text: &str) -> Reply {
    let (dsn, text) = split_dsn(text).unwrap_or_else(|| {
        let class_digit = if code >= 500 { 5 } else { 4 };
        (EnhancedCode::new(class_digit, 7, 1), text)
    });
    Reply::enhanced(code, dsn, format!("<{name}>: {class} rejected: {text}"))
}

/// A leading `X.Y.Z ` enhanced status code of an access table text.
fn split_dsn(text: &str) -> Option<(EnhancedCode, &str)> {
    let (word, rest) = text.split_once(' ')?;
    let mut parts = word.split('.').map(|p| p.parse::<u16>().ok());
    let (Some(Some(class)), Some(Some(subject)), Some(Some(detail)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let class = u8::try_from(class)
        .ok()
        .filter(|c| matches!(c, 2 | 4 | 5))?;
    Some((EnhancedCode::new(class, subject, detail), rest.trim_start()))
}

/// Postfix's answer for an access table result, or `None` to go on.
pub(crate) fn access_decision(action: &AccessAction, name: &str, class: &str) -> Option<Decision> {
    let denied = |text: &Option<String>| text.as_deref().unwrap_or("Access denied").to_owned();
    match action {
        AccessAction::Ok => Some(Decision::Permit),
        AccessAction::Dunno => None,
        AccessAction::Reject(text) => {
            Some(Decision::Refuse(rejected(554, name, class, &denied(text))))
        }
        AccessAction::Defer(text) => {
            Some(Decision::Refuse(rejected(450, name, class, &denied(text))))
        }
        AccessAction::Reply { code, text } => {
            Some(Decision::Refuse(rejected(*code, name, class, text)))
        }
    }
}

/// Whether a HELO argument is a syntactically valid host name or address
/// literal (Postfix's `reject_invalid_helo_hostname`).
pub(crate) fn valid_helo(helo: &str) -> bool {
    if let Some(inner) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
        return inner.parse::<IpAddr>().is_ok();
    }
    let helo = helo.strip_suffix('.').unwrap_or(helo);
    !helo.is_empty()
        && helo.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether a domain is fully qualified: it has a dot (Postfix also takes
/// an address literal).
fn fqdn(domain: &str) -> bool {
    domain.starts_with('[') || domain.trim_end_matches('.').contains('.')
}

/// Sender-specified routing in a local part (`user%elsewhere`,
/// `elsewhere!user`, `"user@elsewhere"`): Postfix never relays that for
/// untrusted clients (`allow_untrusted_routing = no`), because the next hop
/// could route the mail on to any destination. Source routes
/// (`@a,@b:user@c`) are already dropped by the parser (RFC 5321 §3.6.1),
/// so only the final domain counts.
fn has_routing(local_part: &str) -> bool {
    local_part.contains(['@', '%', '!'])
}

/// The facts of one RCPT that restrictions look at.
pub(crate) struct Facts<'a> {
    config: &'a Config,
    session: &'a SessionInfo,
    sender: Option<&'a Address>,
    rcpt: &'a Address,
}

impl<'a> Facts<'a> {
    pub(crate) fn new(config: &'a Config, request: &'a SmtpRequest, rcpt: &'a Address) -> Self {
        Self {
            config,
            session: &request.session,
            sender: request.transaction.as_ref().and_then(|t| t.sender.as_ref()),
            rcpt,
        }
    }

    fn sender_text(&self) -> String {
        self.sender.map(ToString::to_string).unwrap_or_default()
    }

    /// Whether mail for the recipient may be relayed for anyone: a relay
    /// domain, without sender-specified routing.
    fn authorized_destination(&self) -> bool {
        match self.rcpt.domain() {
            Some(domain) => {
                self.config.is_relay_domain(domain) && !has_routing(self.rcpt.local_part())
            }
            None => false,
        }
    }

    /// Applies one restriction; `class` is the list's.
    pub(crate) async fn evaluate(
        &self,
        restriction: &Restriction,
        class: ListClass,
        dns: &dyn DomainCheck,
    ) -> Option<Decision> {
        let e = EnhancedCode::new;
        let session = self.session;
        let client = session.client.ip();
        let rcpt = self.rcpt.as_str();
        let refuse = Decision::Refuse;
        let (name, class_text) = match class {
            ListClass::Client => (session.client_name(), "Client host"),
            ListClass::Helo => (session.helo.clone().unwrap_or_default(), "Helo command"),
            ListClass::Sender => (self.sender_text(), "Sender address"),
            ListClass::Recipient => (rcpt.to_owned(), "Recipient address"),
        };
        match restriction {
            Restriction::Permit => Some(Decision::Permit),
            Restriction::Reject => Some(refuse(rejected(554, &name, class_text, "Access denied"))),
            Restriction::Defer => Some(refuse(Reply::enhanced(
                450,
                e(4, 3, 2),
                format!("<{name}>: {class_text} rejected: Try again later"),
            ))),
            Restriction::PermitMynetworks => self
                .config
                .mynetworks
                .iter()
                .any(|n| n.contains(&client.to_canonical()))
                .then_some(Decision::Permit),
            Restriction::PermitSaslAuthenticated => {
                session.auth.is_some().then_some(Decision::Permit)
            }
            Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination => {
                if self.authorized_destination() {
                    return None;
                }
                let (code, dsn) = match restriction {
                    Restriction::RejectUnauthDestination => (554, e(5, 7, 1)),
                    _ => (454, e(4, 7, 1)),
                };
                Some(refuse(Reply::enhanced(
                    code,
                    dsn,
                    format!("<{rcpt}>: Relay access denied"),
                )))
            }
            Restriction::RejectInvalidHeloHostname => match &session.helo {
                Some(helo) if !valid_helo(helo) => Some(refuse(Reply::enhanced(
                    501,
                    e(5, 5, 2),
                    format!("<{helo}>: Helo command rejected: Invalid name"),
                ))),
                _ => None,
            },
            Restriction::RejectNonFqdnHeloHostname => match &session.helo {
                Some(helo) if !fqdn(helo) => Some(refuse(Reply::enhanced(
                    504,
                    e(5, 5, 2),
                    format!("<{helo}>: Helo command rejected: need fully-qualified hostname"),
                ))),
                _ => None,
            },
            Restriction::RejectNonFqdnSender => match self.sender.and_then(Address::domain) {
                Some(domain) if !fqdn(domain) => Some(refuse(Reply::enhanced(
                    504,
                    e(5, 5, 2),
                    format!(
                        "<{}>: Sender address rejected: need fully-qualified address",
                        self.sender_text()
                    ),
                ))),
                _ => None,
            },
            Restriction::RejectNonFqdnRecipient => match self.rcpt.domain() {
                Some(domain) if fqdn(domain) => None,
                _ => Some(refuse(Reply::enhanced(
                    504,
                    e(5, 5, 2),
                    format!("<{rcpt}>: Recipient address rejected: need fully-qualified address"),
                ))),
            },
            Restriction::RejectUnknownSenderDomain => {
                let domain = self.sender.and_then(Address::domain)?;
                let sender = self.sender_text();
                self.unknown_domain(dns, domain, &sender, "Sender address", 8)
                    .await
            }
            Restriction::RejectUnknownRecipientDomain => {
                let domain = self.rcpt.domain()?;
                self.unknown_domain(dns, domain, rcpt, "Recipient address", 2)
                    .await
            }
            Restriction::RejectUnlistedRecipient => self.unlisted_recipient().map(refuse),
            Restriction::RejectSenderLoginMismatch => self.login_mismatch().map(refuse),
            Restriction::CheckClientAccess(table) => table
                .lookup_client(client, None)
                .and_then(|a| access_decision(a, &session.client_name(), "Client host")),
            Restriction::CheckHeloAccess(table) => {
                let helo = session.helo.as_deref()?;
                table
                    .lookup_domain(helo)
                    .and_then(|a| access_decision(a, helo, "Helo command"))
            }
            Restriction::CheckSenderAccess(table) => {
                let sender = self.sender_text();
                table
                    .lookup_address(&sender)
                    .and_then(|a| access_decision(a, &sender, "Sender address"))
            }
            Restriction::CheckRecipientAccess(table) => table
                .lookup_address(rcpt)
                .and_then(|a| access_decision(a, rcpt, "Recipient address")),
            // Only valid in smtpd_etrn_restrictions (config makes sure).
            Restriction::CheckEtrnAccess(_) => None,
        }
    }

    /// `reject_unknown_{sender,recipient}_domain`: Postfix's split between
    /// a domain that does not exist (`unknown_address_reject_code`), a
    /// null MX (550 for a sender, 556 for a recipient), and a DNS failure
    /// (450, try again).
    async fn unknown_domain(
        &self,
        dns: &dyn DomainCheck,
        domain: &str,
        address: &str,
        class: &str,
        detail: u16,
    ) -> Option<Decision> {
        if domain.starts_with('[') || self.config.is_relay_domain(domain) {
            return None;
        }
        let code = self.config.unknown_address_reject_code;
        let class_digit = if code >= 500 { 5 } else { 4 };
        let reply = match dns.check(domain).await {
            DomainStatus::Exists => return None,
            DomainStatus::NotFound => Reply::enhanced(
                code,
                EnhancedCode::new(class_digit, 1, detail),
                format!("<{address}>: {class} rejected: Domain not found"),
            ),
            // Postfix: 550 5.7.27 for a sender, 556 5.1.10 for a recipient.
            DomainStatus::NullMx => Reply::enhanced(
                if detail == 8 { 550 } else { 556 },
                if detail == 8 {
                    EnhancedCode::new(5, 7, 27)
                } else {
                    EnhancedCode::new(5, 1, 10)
                },
                format!(
                    "<{address}>: {class} rejected: Domain {domain} does not accept mail (nullMX)"
                ),
            ),
            DomainStatus::TempFail(why) => {
                tracing::info!(target: "towerpost::smtpd", "DNS lookup of {domain} failed: {why}");
                Reply::enhanced(
                    450,
                    EnhancedCode::new(4, 1, detail),
                    format!("<{address}>: {class} rejected: Domain not found"),
                )
            }
        };
        Some(Decision::Refuse(reply))
    }

    /// `reject_unlisted_recipient` for relay domains: a recipient that
    /// `relay_recipient_maps` (when set) does not list.
    pub(crate) fn unlisted_recipient(&self) -> Option<Reply> {
        let map = self.config.relay_recipient_maps.as_ref()?;
        let domain = self.rcpt.domain()?;
        if !self.config.is_relay_domain(domain) || map.contains(self.rcpt.as_str()) {
            return None;
        }
        Some(Reply::enhanced(
            550,
            EnhancedCode::new(5, 1, 1),
            format!(
                "<{}>: Recipient address rejected: User unknown in relay recipient table",
                self.rcpt
            ),
        ))
    }

    /// `reject_sender_login_mismatch`: the sender must be owned by the
    /// login (`smtpd_sender_login_maps`); without a login, a sender that
    /// has an owner is refused.
    fn login_mismatch(&self) -> Option<Reply> {
        let map = self.config.smtpd_sender_login_maps.as_ref()?;
        let sender = self.sender_text();
        if sender.is_empty() {
            return None;
        }
        let owners = map.lookup(&sender);
        let owned_by = |login: &str| {
            owners.is_some_and(|o| {
                o.split(|c: char| c == ',' || c.is_whitespace())
                    .any(|owner| owner.eq_ignore_ascii_case(login))
            })
        };
        let text = match &self.session.auth {
            Some(login) if !owned_by(login) => format!("not owned by user {login}"),
            None if owners.is_some() => "not logged in".to_owned(),
            _ => return None,
        };
        Some(Reply::enhanced(
            553,
            EnhancedCode::new(5, 7, 1),
            format!("<{sender}>: Sender address rejected: {text}"),
        ))
    }
}
