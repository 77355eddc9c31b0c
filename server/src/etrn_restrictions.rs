//! `smtpd_etrn_restrictions`: who may use ETRN, as a tower layer on the
//! SMTP stack. Everything but ETRN passes through untouched.
//!
//! Evaluated left to right, first decision wins, the end of the list
//! permits (Postfix's default is an empty list: anyone may ETRN). Refusals
//! use Postfix's UCE format, `<code> <dsn> <name>: Etrn command rejected:
//! <text>`, rather than RFC 1985's 459, exactly as Postfix does.

use std::net::IpAddr;

use ipnet::IpNet;
use towerpost_config::{AccessAction, Restriction};
use towerpost_protocol::{Command, EnhancedCode, Reply};

use crate::policy::{PolicyLayer, SmtpPolicy};
use crate::request::{SessionInfo, SmtpRequest};

/// `smtpd_etrn_restrictions` as a layer: a [`PolicyLayer`] over
/// [`EtrnRestrictions`].
pub type EtrnRestrictionsLayer = PolicyLayer<EtrnRestrictions>;

/// The restriction list and what `permit_mynetworks` needs.
#[derive(Debug)]
pub struct EtrnRestrictions {
    restrictions: Vec<Restriction>,
    mynetworks: Vec<IpNet>,
}

impl EtrnRestrictions {
    /// A layer applying `restrictions`; `mynetworks` serves
    /// `permit_mynetworks`.
    pub fn layer(restrictions: Vec<Restriction>, mynetworks: Vec<IpNet>) -> EtrnRestrictionsLayer {
        PolicyLayer::new(Self {
            restrictions,
            mynetworks,
        })
    }
}

fn rejected(code: u16, site: &str, class: &str, text: &str) -> Reply {
    let enhanced = if code >= 500 {
        EnhancedCode::new(5, 7, 1)
    } else {
        EnhancedCode::new(4, 7, 1)
    };
    Reply::enhanced(
        code,
        enhanced,
        format!("<{site}>: {class} rejected: {text}"),
    )
}

/// Postfix's answer for an access table result, or `None` to go on.
fn access(action: &AccessAction, name: &str, class: &str) -> Option<Decision> {
    match action {
        AccessAction::Ok => Some(Decision::Permit),
        AccessAction::Dunno => None,
        AccessAction::Reject(text) => Some(Decision::Refuse(rejected(
            554,
            name,
            class,
            text.as_deref().unwrap_or("Access denied"),
        ))),
        AccessAction::Defer(text) => Some(Decision::Refuse(rejected(
            450,
            name,
            class,
            text.as_deref().unwrap_or("Access denied"),
        ))),
        AccessAction::Reply { code, text } => {
            Some(Decision::Refuse(rejected(*code, name, class, text)))
        }
    }
}

enum Decision {
    Permit,
    Refuse(Reply),
}

fn valid_helo(helo: &str) -> bool {
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

impl EtrnRestrictions {
    fn decide(&self, session: &SessionInfo, node: &str) -> Option<Reply> {
        let site = node.strip_prefix(['@', '#']).unwrap_or(node);
        let client = session.client.ip();
        for r in &self.restrictions {
            let decision = match r {
                Restriction::Permit => Some(Decision::Permit),
                Restriction::Reject => Some(Decision::Refuse(rejected(
                    554,
                    site,
                    "Etrn command",
                    "Access denied",
                ))),
                Restriction::Defer => Some(Decision::Refuse(Reply::enhanced(
                    450,
                    EnhancedCode::new(4, 3, 2),
                    format!("<{site}>: Etrn command rejected: Try again later"),
                ))),
                Restriction::PermitMynetworks => self
                    .mynetworks
                    .iter()
                    .any(|n| n.contains(&client))
                    .then_some(Decision::Permit),
                Restriction::PermitSaslAuthenticated => {
                    session.auth.is_some().then_some(Decision::Permit)
                }
                Restriction::RejectInvalidHeloHostname => match &session.helo {
                    Some(helo) if !valid_helo(helo) => Some(Decision::Refuse(Reply::enhanced(
                        501,
                        EnhancedCode::new(5, 5, 2),
                        format!("<{helo}>: Helo command rejected: Invalid name"),
                    ))),
                    _ => None,
                },
                Restriction::CheckEtrnAccess(table) => table
                    .lookup_domain(site)
                    .and_then(|a| access(a, site, "Etrn command")),
                Restriction::CheckClientAccess(table) => table
                    .lookup_client(client, None)
                    .and_then(|a| access(a, &session.client_name(), "Client host")),
            };
            match decision {
                Some(Decision::Permit) => return None,
                Some(Decision::Refuse(reply)) => return Some(reply),
                None => {}
            }
        }
        None
    }
}

impl SmtpPolicy for EtrnRestrictions {
    fn check(&self, request: &SmtpRequest) -> Option<Reply> {
        let Some(Command::Etrn { node }) = request.command() else {
            return None;
        };
        let reply = self.decide(&request.session, node)?;
        tracing::info!(
            target: "towerpost::smtpd",
            "NOQUEUE: reject: ETRN from {}: {reply}",
            request.session.client_name()
        );
        Some(reply)
    }
}
