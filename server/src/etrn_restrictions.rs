//! `smtpd_etrn_restrictions`: who may use ETRN, as a tower layer on the
//! SMTP stack. Everything but ETRN passes through untouched.
//!
//! Evaluated left to right, first decision wins, the end of the list
//! permits (Postfix's default is an empty list: anyone may ETRN). Refusals
//! use Postfix's UCE format, `<code> <dsn> <name>: Etrn command rejected:
//! <text>`, rather than RFC 1985's 459, exactly as Postfix does.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ipnet::IpNet;
use tower_layer::Layer;
use tower_service::Service;
use towerpost_config::{AccessAction, Restriction};
use towerpost_protocol::{Command, EnhancedCode, Reply};

use crate::request::{SessionInfo, SmtpRequest};

/// Builds [`EtrnRestrictions`].
#[derive(Debug, Clone)]
pub struct EtrnRestrictionsLayer {
    policy: Arc<Policy>,
}

#[derive(Debug)]
struct Policy {
    restrictions: Vec<Restriction>,
    mynetworks: Vec<IpNet>,
}

impl EtrnRestrictionsLayer {
    /// A layer applying `restrictions`; `mynetworks` serves
    /// `permit_mynetworks`.
    pub fn new(restrictions: Vec<Restriction>, mynetworks: Vec<IpNet>) -> Self {
        Self {
            policy: Arc::new(Policy {
                restrictions,
                mynetworks,
            }),
        }
    }
}

impl<S> Layer<S> for EtrnRestrictionsLayer {
    type Service = EtrnRestrictions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EtrnRestrictions {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Refuses ETRN requests that `smtpd_etrn_restrictions` does not permit.
#[derive(Debug, Clone)]
pub struct EtrnRestrictions<S> {
    inner: S,
    policy: Arc<Policy>,
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

impl Policy {
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

impl<S> Service<SmtpRequest> for EtrnRestrictions<S>
where
    S: Service<SmtpRequest, Response = Reply>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: SmtpRequest) -> Self::Future {
        if let Some(Command::Etrn { node }) = request.command()
            && let Some(reply) = self.policy.decide(&request.session, node)
        {
            tracing::info!(
                target: "towerpost::smtpd",
                "NOQUEUE: reject: ETRN from {}: {reply}",
                request.session.client_name()
            );
            return Box::pin(async move { Ok(reply) });
        }
        Box::pin(self.inner.call(request))
    }
}
