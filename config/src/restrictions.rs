//! Restriction lists: `smtpd_client_restrictions`, `smtpd_helo_restrictions`,
//! `smtpd_sender_restrictions`, `smtpd_relay_restrictions`,
//! `smtpd_recipient_restrictions` and `smtpd_etrn_restrictions`, in
//! Postfix syntax.

use std::fmt;
use std::path::PathBuf;

use figment::value::Value;

use crate::access::AccessTable;
use crate::convert::list;
use crate::keys::suggest;

/// One element of a restriction list, evaluated in order; the first that
/// decides wins.
///
/// Its [`Display`](fmt::Display) output is the configuration syntax, such
/// as `permit_mynetworks` or `check_client_access /etc/towerpost/access`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Restriction {
    /// `permit`: allow (ends this list).
    Permit,
    /// `reject`: refuse (554 5.7.1, Postfix's `reject_code`).
    Reject,
    /// `defer`: refuse temporarily (450 4.7.1, Postfix's `defer_code`).
    Defer,
    /// `permit_mynetworks`: allow clients in `mynetworks`.
    PermitMynetworks,
    /// `permit_sasl_authenticated`: allow authenticated clients.
    PermitSaslAuthenticated,
    /// `reject_unauth_destination`: refuse a recipient outside
    /// `relay_domains`, or with sender-specified routing (554 5.7.1 `Relay
    /// access denied`).
    RejectUnauthDestination,
    /// `defer_unauth_destination`: the same test, answered 454 4.7.1.
    DeferUnauthDestination,
    /// `reject_invalid_helo_hostname`: refuse a HELO/EHLO argument that is
    /// not a host name or address literal.
    RejectInvalidHeloHostname,
    /// `reject_non_fqdn_helo_hostname`: refuse a HELO/EHLO name that is not
    /// a fully-qualified domain name.
    RejectNonFqdnHeloHostname,
    /// `reject_non_fqdn_sender`: refuse a sender domain that is not fully
    /// qualified.
    RejectNonFqdnSender,
    /// `reject_non_fqdn_recipient`: refuse a recipient domain that is not
    /// fully qualified.
    RejectNonFqdnRecipient,
    /// `reject_unknown_sender_domain`: refuse a sender domain without MX or
    /// address records in DNS.
    RejectUnknownSenderDomain,
    /// `reject_unknown_recipient_domain`: refuse a recipient domain without
    /// MX or address records in DNS.
    RejectUnknownRecipientDomain,
    /// `reject_unlisted_recipient`: refuse a recipient of a relay domain
    /// that `relay_recipient_maps` does not list.
    RejectUnlistedRecipient,
    /// `reject_sender_login_mismatch`: refuse a sender that
    /// `smtpd_sender_login_maps` gives to another login, or to any login
    /// when the client is not authenticated.
    RejectSenderLoginMismatch,
    /// `check_etrn_access TABLE`: look up the ETRN domain
    /// ([`AccessTable::lookup_domain`]); only in `smtpd_etrn_restrictions`.
    CheckEtrnAccess(AccessTable),
    /// `check_client_access TABLE`: look up the client host name and
    /// address ([`AccessTable::lookup_client`]).
    CheckClientAccess(AccessTable),
    /// `check_helo_access TABLE`: look up the HELO/EHLO name
    /// ([`AccessTable::lookup_domain`]).
    CheckHeloAccess(AccessTable),
    /// `check_sender_access TABLE`: look up the sender address
    /// ([`AccessTable::lookup_address`]).
    CheckSenderAccess(AccessTable),
    /// `check_recipient_access TABLE`: look up the recipient address
    /// ([`AccessTable::lookup_address`]).
    CheckRecipientAccess(AccessTable),
}

/// Which list a restriction is parsed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// `smtpd_etrn_restrictions`: what makes sense for ETRN.
    Etrn,
    /// The client, HELO, sender, relay and recipient lists, evaluated at
    /// RCPT (`smtpd_delay_reject = yes`): every restriction but
    /// `check_etrn_access`.
    Smtpd,
}

/// Restrictions without an argument: name, value, allowed in ETRN lists.
const SIMPLE: &[(&str, Restriction, bool)] = &[
    ("defer", Restriction::Defer, true),
    (
        "defer_unauth_destination",
        Restriction::DeferUnauthDestination,
        false,
    ),
    ("permit", Restriction::Permit, true),
    ("permit_mynetworks", Restriction::PermitMynetworks, true),
    (
        "permit_sasl_authenticated",
        Restriction::PermitSaslAuthenticated,
        true,
    ),
    ("reject", Restriction::Reject, true),
    (
        "reject_invalid_helo_hostname",
        Restriction::RejectInvalidHeloHostname,
        true,
    ),
    (
        "reject_non_fqdn_helo_hostname",
        Restriction::RejectNonFqdnHeloHostname,
        false,
    ),
    (
        "reject_non_fqdn_recipient",
        Restriction::RejectNonFqdnRecipient,
        false,
    ),
    (
        "reject_non_fqdn_sender",
        Restriction::RejectNonFqdnSender,
        false,
    ),
    (
        "reject_sender_login_mismatch",
        Restriction::RejectSenderLoginMismatch,
        false,
    ),
    (
        "reject_unauth_destination",
        Restriction::RejectUnauthDestination,
        false,
    ),
    (
        "reject_unknown_recipient_domain",
        Restriction::RejectUnknownRecipientDomain,
        false,
    ),
    (
        "reject_unknown_sender_domain",
        Restriction::RejectUnknownSenderDomain,
        false,
    ),
    (
        "reject_unlisted_recipient",
        Restriction::RejectUnlistedRecipient,
        false,
    ),
];

/// Restrictions with a table argument: name, allowed in ETRN lists,
/// allowed in the other lists.
const WITH_TABLE: &[(&str, bool, bool)] = &[
    ("check_client_access", true, true),
    ("check_etrn_access", true, false),
    ("check_helo_access", false, true),
    ("check_recipient_access", false, true),
    ("check_sender_access", false, true),
];

/// Postfix restrictions that towerpost does not support.
const UNSUPPORTED: &[&str] = &[
    "check_client_a_access",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_helo_a_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_policy_service",
    "check_recipient_a_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_reverse_client_hostname_access",
    "check_sender_a_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "defer_if_permit",
    "defer_if_reject",
    "permit_auth_destination",
    "permit_dnswl_client",
    "permit_inet_interfaces",
    "permit_mx_backup",
    "permit_naked_ip_address",
    "permit_rhswl_client",
    "permit_tls_all_clientcerts",
    "permit_tls_clientcerts",
    "reject_authenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
    "reject_multi_recipient_bounce",
    "reject_non_fqdn_hostname",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_recipient",
    "reject_rhsbl_sender",
    "reject_unauth_pipelining",
    "reject_unauthenticated_sender_login_mismatch",
    "reject_unknown_client_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_reverse_client_hostname",
    "reject_unverified_recipient",
    "reject_unverified_sender",
    "sleep",
    "warn_if_reject",
];

impl Restriction {
    /// The restriction's name, such as `check_client_access`.
    pub fn name(&self) -> &'static str {
        match self {
            Restriction::CheckEtrnAccess(_) => "check_etrn_access",
            Restriction::CheckClientAccess(_) => "check_client_access",
            Restriction::CheckHeloAccess(_) => "check_helo_access",
            Restriction::CheckSenderAccess(_) => "check_sender_access",
            Restriction::CheckRecipientAccess(_) => "check_recipient_access",
            simple => SIMPLE
                .iter()
                .find(|(_, r, _)| r == simple)
                .map_or("unknown", |(name, _, _)| name),
        }
    }

    /// The access table of the `check_*_access` restrictions.
    pub fn table(&self) -> Option<&AccessTable> {
        match self {
            Restriction::CheckEtrnAccess(table)
            | Restriction::CheckClientAccess(table)
            | Restriction::CheckHeloAccess(table)
            | Restriction::CheckSenderAccess(table)
            | Restriction::CheckRecipientAccess(table) => Some(table),
            _ => None,
        }
    }

    /// Whether this restriction refuses what nothing before it permitted,
    /// in the sense of Postfix's open-relay safety check: `reject`,
    /// `defer`, `reject_unauth_destination` or `defer_unauth_destination`.
    pub fn is_relay_safeguard(&self) -> bool {
        matches!(
            self,
            Restriction::Reject
                | Restriction::Defer
                | Restriction::RejectUnauthDestination
                | Restriction::DeferUnauthDestination
        )
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Some(table) = self.table() {
            write!(f, " {}", table.path.display())?;
        }
        Ok(())
    }
}

/// A restriction list: restriction names, and `check_*_access` followed by
/// their table (in the same string or as the next word). The tables are
/// read. One message per problem.
pub(crate) fn restrictions(value: &Value, kind: ListKind) -> Result<Vec<Restriction>, Vec<String>> {
    let mut words = list(value).map_err(|message| vec![message])?.into_iter();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    while let Some(word) = words.next() {
        let name = word.to_ascii_lowercase();
        let etrn = kind == ListKind::Etrn;
        if let Some((_, restriction, in_etrn)) = SIMPLE.iter().find(|(n, _, _)| *n == name) {
            if etrn && !in_etrn {
                return Err(vec![not_here(&word, kind)]);
            }
            out.push(restriction.clone());
            continue;
        }
        let Some((_, in_etrn, in_smtpd)) = WITH_TABLE.iter().find(|(n, _, _)| *n == name) else {
            return Err(vec![unknown(&word, &name, kind)]);
        };
        if (etrn && !in_etrn) || (!etrn && !in_smtpd) {
            return Err(vec![not_here(&word, kind)]);
        }
        let argument = words
            .next()
            .filter(|arg| !is_restriction_name(&arg.to_ascii_lowercase()));
        let Some(argument) = argument else {
            return Err(vec![format!(
                "{name} needs a table, as in \"{name} /etc/towerpost/access\""
            )]);
        };
        let path = table_path(&name, &argument).map_err(|message| vec![message])?;
        match AccessTable::load_problems(path) {
            Ok(table) => out.push(match name.as_str() {
                "check_etrn_access" => Restriction::CheckEtrnAccess(table),
                "check_helo_access" => Restriction::CheckHeloAccess(table),
                "check_sender_access" => Restriction::CheckSenderAccess(table),
                "check_recipient_access" => Restriction::CheckRecipientAccess(table),
                _ => Restriction::CheckClientAccess(table),
            }),
            Err(messages) => problems.extend(
                messages
                    .into_iter()
                    .map(|message| format!("{name} {argument}: {message}")),
            ),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The restriction names supported in lists of `kind`.
fn supported(kind: ListKind) -> Vec<&'static str> {
    let etrn = kind == ListKind::Etrn;
    let mut names: Vec<&str> = SIMPLE
        .iter()
        .filter(|(_, _, in_etrn)| !etrn || *in_etrn)
        .map(|(n, _, _)| *n)
        .chain(
            WITH_TABLE
                .iter()
                .filter(|(_, in_etrn, in_smtpd)| if etrn { *in_etrn } else { *in_smtpd })
                .map(|(n, _, _)| *n),
        )
        .collect();
    names.sort_unstable();
    names
}

/// Whether `name` (lower-case) names a restriction, supported or not.
fn is_restriction_name(name: &str) -> bool {
    SIMPLE.iter().any(|(n, _, _)| *n == name)
        || WITH_TABLE.iter().any(|(n, _, _)| *n == name)
        || UNSUPPORTED.contains(&name)
}

fn not_here(word: &str, kind: ListKind) -> String {
    let list = match kind {
        ListKind::Etrn => "smtpd_etrn_restrictions",
        ListKind::Smtpd => "this list",
    };
    format!(
        "restriction '{word}' cannot be used in {list}; supported are {}",
        supported(kind).join(", ")
    )
}

/// The message for a word that is not a supported restriction.
fn unknown(word: &str, name: &str, kind: ListKind) -> String {
    let supported = supported(kind);
    if UNSUPPORTED.contains(&name) {
        return format!(
            "restriction '{word}' is not supported; supported are {}",
            supported.join(", ")
        );
    }
    let hint = suggest(name, &supported)
        .map(|s| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default();
    format!("unknown restriction '{word}'{hint}")
}

/// The file of a table argument: a path, or `texthash:` and a path (the
/// same text file); other table types are refused.
pub(crate) fn table_path(restriction: &str, argument: &str) -> Result<PathBuf, String> {
    let table_type = argument.split_once(':').filter(|(kind, _)| {
        !kind.is_empty()
            && kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    let path = match table_type {
        Some((kind, path)) if kind.eq_ignore_ascii_case("texthash") => path,
        Some((kind, path)) => {
            return Err(format!(
                "{restriction} {argument}: table type '{kind}' is not supported; use a text \
                 file in access(5) syntax, as in \"{restriction} {path}\" or \
                 \"{restriction} texthash:{path}\""
            ));
        }
        None => argument,
    };
    if path.is_empty() {
        return Err(format!(
            "{restriction} {argument}: expected the path of a table file"
        ));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restriction_lists_are_sorted() {
        assert!(SIMPLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(WITH_TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(UNSUPPORTED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn table_arguments_are_files() {
        assert_eq!(
            table_path("check_etrn_access", "texthash:/etc/x"),
            Ok(PathBuf::from("/etc/x"))
        );
        assert_eq!(
            table_path("check_etrn_access", "/etc/x"),
            Ok(PathBuf::from("/etc/x"))
        );
        let error = table_path("check_etrn_access", "hash:/etc/x").unwrap_err();
        assert!(error.contains("table type 'hash'"), "{error}");
        assert!(table_path("check_etrn_access", "texthash:").is_err());
    }

    #[test]
    fn every_simple_restriction_has_its_name() {
        for (name, restriction, _) in SIMPLE {
            assert_eq!(restriction.name(), *name);
        }
    }
}
