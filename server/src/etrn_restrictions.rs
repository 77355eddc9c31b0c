//! `smtpd_etrn_restrictions`: who may use ETRN, as a tower layer on the
//! SMTP stack. Everything but ETRN passes through untouched.
//!
//! Evaluated left to right, first decision wins, the end of the list
//! permits (Postfix's default is an empty list: anyone may ETRN). Refusals
//! use Postfix's UCE format, `<code> <dsn> <name>: Etrn command rejected:
//! <text>`, rather than RFC 1985's 459, exactly as Postfix does.

use ipnet::IpNet;
use towerpost_config::Restriction;
use towerpost_protocol::{Command, EnhancedCode, Reply};

use crate::policy::{PolicyLayer, SmtpPolicy};
use crate::request::{SessionInfo, SmtpRequest};
use crate::restrictions::{Decision, access_decision, rejected, valid_helo};

/// `smtpd_etrn_restrictions` as a layer: a [`PolicyLayer`] over
/// [`EtrnRestrictions`].
pub(crate) type EtrnRestrictionsLayer = PolicyLayer<EtrnRestrictions>;

/// The restriction list and what `permit_mynetworks` needs.
#[derive(Debug)]
pub(crate) struct EtrnRestrictions {
    restrictions: Vec<Restriction>,
    mynetworks: Vec<IpNet>,
}

impl EtrnRestrictions {
    /// A layer applying `restrictions`; `mynetworks` serves
    /// `permit_mynetworks`.
    pub(crate) fn layer(
        restrictions: Vec<Restriction>,
        mynetworks: Vec<IpNet>,
    ) -> EtrnRestrictionsLayer {
        PolicyLayer::new(Self {
            restrictions,
            mynetworks,
        })
    }
}

impl EtrnRestrictions {
    fn decide(&self, session: &SessionInfo, site: &str) -> Option<Reply> {
        // The session has checked the argument and taken off `@`/`#`.
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
                    .and_then(|a| access_decision(a, site, "Etrn command")),
                Restriction::CheckClientAccess(table) => table
                    .lookup_client(client, None)
                    .and_then(|a| access_decision(a, &session.client_name(), "Client host")),
                // Only the restrictions above are valid in this list
                // (config makes sure).
                _ => None,
            };
            match decision {
                Some(Decision::Permit) => return None,
                Some(Decision::Refuse(reply)) => {
                    towerpost_metrics::metrics().reject("ETRN", r.name());
                    return Some(reply);
                }
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
