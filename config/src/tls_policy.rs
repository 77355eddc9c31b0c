//! `smtp_tls_policy_maps`: per-destination TLS policy for the SMTP client,
//! as in Postfix's TLS_README ("TLS policy table").
//!
//! The table is indexed by the next-hop destination exactly as routing
//! produced it: the recipient domain, or the next hop of `relayhost` or
//! `transport_maps` with its brackets and non-default port
//! (`[mail.example.com]:587`). A `.example.com` entry matches subdomains of
//! `example.com` for MX-lookup destinations, closest parent first; as in
//! Postfix, a plain domain entry does not match its subdomains.

use std::collections::BTreeMap;
use std::fmt;

use figment::value::Value;

use crate::convert::{nexthop, smtp_tls_level, text};
use crate::error::{Origin, Problem};
use crate::{Nexthop, SmtpTlsLevel};
use towerpost_protocol::valid_domain;

/// One entry: a security level and, for `verify` and `secure`, the names
/// the server certificate may be valid for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsPolicy {
    /// The security level, as in `smtp_tls_security_level`.
    pub level: SmtpTlsLevel,
    /// `match=`: acceptable certificate names, any of which will do. Empty
    /// for the level's default: `hostname` for `verify`, `nexthop` for
    /// `secure` (Postfix's `smtp_tls_verify_cert_match` and
    /// `smtp_tls_secure_cert_match`, without `dot-nexthop`).
    pub matches: Vec<TlsMatch>,
}

/// A certificate name a `match=` attribute accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsMatch {
    /// `hostname`: the name of the server connected to (an MX host name
    /// from DNS, or the next-hop host).
    Hostname,
    /// `nexthop`: the next-hop domain or host as configured.
    Nexthop,
    /// A literal host name (lower-case).
    Name(String),
}

impl TlsPolicy {
    /// The names a certificate may be valid for, with the level's default
    /// when `match=` is absent.
    pub fn effective_matches(&self) -> Vec<TlsMatch> {
        match (self.matches.is_empty(), self.level) {
            (false, _) => self.matches.clone(),
            (true, SmtpTlsLevel::Secure) => vec![TlsMatch::Nexthop],
            (true, _) => vec![TlsMatch::Hostname],
        }
    }
}

impl fmt::Display for TlsMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsMatch::Hostname => f.write_str("hostname"),
            TlsMatch::Nexthop => f.write_str("nexthop"),
            TlsMatch::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for TlsPolicy {
    /// The table's value syntax: `secure match=nexthop:mx.example.com`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.level.as_str())?;
        if !self.matches.is_empty() {
            let names: Vec<String> = self.matches.iter().map(ToString::to_string).collect();
            write!(f, " match={}", names.join(":"))?;
        }
        Ok(())
    }
}

/// The whole table, keyed by canonical next-hop text (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsPolicyMap {
    entries: BTreeMap<String, TlsPolicy>,
}

impl TlsPolicyMap {
    /// The policy for a next hop: the exact entry, then (for an MX-lookup
    /// destination) `.parent` entries from the closest parent up.
    pub fn lookup(&self, nexthop: &Nexthop) -> Option<&TlsPolicy> {
        let nexthop = without_default_port(nexthop.clone());
        if let Some(policy) = self.entries.get(&nexthop.to_string()) {
            return Some(policy);
        }
        // As Postfix: parent domains only for a bare domain.
        if !nexthop.mx_lookup || nexthop.port.is_some() {
            return None;
        }
        let host = &nexthop.host;
        host.match_indices('.')
            .find_map(|(i, _)| self.entries.get(&host[i..]))
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TlsPolicy)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

const KEY: &str = "smtp_tls_policy_maps";

/// Port 25 is the default: `[relay]:25` and `[relay]` are one destination.
fn without_default_port(mut nexthop: Nexthop) -> Nexthop {
    if nexthop.port == Some(25) {
        nexthop.port = None;
    }
    nexthop
}

/// Parses the `[smtp_tls_policy_maps]` table; problems are pushed with
/// `origin`, and `None` is returned if there were any.
pub(crate) fn tls_policy_maps(
    value: &Value,
    origin: &Origin,
    problems: &mut Vec<Problem>,
) -> Option<TlsPolicyMap> {
    let Value::Dict(_, dict) = value else {
        problems.push(Problem::value(
            origin,
            KEY,
            "expected a table of destination = \"level [match=name:name]\"",
        ));
        return None;
    };
    let before = problems.len();
    let mut entries = BTreeMap::new();
    for (key, value) in dict {
        let mut fail = |message: String| {
            problems.push(Problem::value(
                origin,
                KEY,
                format!("entry {key:?}: {message}"),
            ));
        };
        let canonical = match destination_key(key) {
            Ok(k) => k,
            Err(message) => {
                fail(message);
                continue;
            }
        };
        let policy = match text(value).and_then(|v| policy(&v)) {
            Ok(p) => p,
            Err(message) => {
                fail(message);
                continue;
            }
        };
        if entries.insert(canonical.clone(), policy).is_some() {
            fail(format!("same destination as another entry ({canonical})"));
        }
    }
    (problems.len() == before).then_some(TlsPolicyMap { entries })
}

/// A table key in canonical form: `.domain`, or a next hop as
/// [`Nexthop`]'s display renders it.
fn destination_key(key: &str) -> Result<String, String> {
    if let Some(parent) = key.strip_prefix('.') {
        let parent = parent.strip_suffix('.').unwrap_or(parent);
        return if valid_domain(parent) {
            Ok(format!(".{}", parent.to_lowercase()))
        } else {
            Err(
                "expected a domain, \".domain\" (its subdomains) or a next hop such as \
                 \"[mail.example.com]:587\" as the key"
                    .to_owned(),
            )
        };
    }
    nexthop(key).map(|n| without_default_port(n).to_string())
}

/// The value: a level, then attributes. Only `match=` is supported: rustls
/// never negotiates below TLS 1.2 or without AEAD ciphers, so the
/// `protocols=` and `ciphers=` of Postfix tables have nothing to say here.
fn policy(value: &str) -> Result<TlsPolicy, String> {
    let mut words = value.split_whitespace();
    let level = words
        .next()
        .ok_or_else(|| "expected a security level such as \"secure\", found nothing".to_owned())?;
    let level = smtp_tls_level(&Value::from(level))?;
    let mut matches = Vec::new();
    for word in words {
        let Some(names) = word.strip_prefix("match=") else {
            let attribute = word.split('=').next().unwrap_or(word);
            return Err(format!(
                "attribute {attribute:?} is not supported (only match= is; rustls always uses \
                 TLS 1.2 or later with forward-secret AEAD ciphers)"
            ));
        };
        if !matches!(level, SmtpTlsLevel::Verify | SmtpTlsLevel::Secure) {
            return Err(format!(
                "match= applies to the verify and secure levels, not {level}"
            ));
        }
        for name in names.split(':') {
            matches.push(match name.to_ascii_lowercase().as_str() {
                "hostname" => TlsMatch::Hostname,
                "nexthop" => TlsMatch::Nexthop,
                "dot-nexthop" => {
                    return Err("match=dot-nexthop is not supported; name the hosts".to_owned());
                }
                n if valid_domain(n) => TlsMatch::Name(n.to_owned()),
                _ => {
                    return Err(format!(
                        "match= expects host names, hostname or nexthop, separated by ':', \
                         found {name:?}"
                    ));
                }
            });
        }
    }
    Ok(TlsPolicy { level, matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> Result<TlsPolicyMap, Vec<String>> {
        let dict = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let mut problems = Vec::new();
        tls_policy_maps(
            &Value::Dict(figment::value::Tag::Default, dict),
            &Origin::Default,
            &mut problems,
        )
        .ok_or_else(|| problems.iter().map(|p| p.to_string()).collect())
    }

    fn hop(s: &str) -> Nexthop {
        nexthop(s).unwrap()
    }

    #[test]
    fn lookup_is_by_next_hop_then_parent_domains() {
        let m = map(&[
            ("example.com", "secure match=mx1.example.com:nexthop"),
            (".example.com", "verify"),
            ("[Relay.Example.net]:submission", "encrypt"),
        ])
        .unwrap();
        let level = |s: &str| m.lookup(&hop(s)).map(|p| p.level);
        assert_eq!(level("example.com"), Some(SmtpTlsLevel::Secure));
        assert_eq!(level("a.b.example.com"), Some(SmtpTlsLevel::Verify));
        assert_eq!(
            level("[relay.example.net]:587"),
            Some(SmtpTlsLevel::Encrypt)
        );
        // Brackets and ports are part of the key, as in Postfix.
        assert_eq!(level("[relay.example.net]"), None);
        assert_eq!(level("[a.example.com]"), None);
        assert_eq!(level("other.org"), None);
        let secure = m.lookup(&hop("example.com")).unwrap();
        assert_eq!(
            secure.matches,
            [TlsMatch::Name("mx1.example.com".into()), TlsMatch::Nexthop]
        );
        assert_eq!(secure.to_string(), "secure match=mx1.example.com:nexthop");
    }

    #[test]
    fn defaults_follow_postfix() {
        let m = map(&[("a.test", "verify"), ("b.test", "secure")]).unwrap();
        let matches = |s: &str| m.lookup(&hop(s)).unwrap().effective_matches();
        assert_eq!(matches("a.test"), [TlsMatch::Hostname]);
        assert_eq!(matches("b.test"), [TlsMatch::Nexthop]);
    }

    #[test]
    fn bad_entries_name_the_entry() {
        let problems = map(&[
            ("a.test", "dane"),
            ("b.test", "may match=x.test"),
            ("c.test", "secure protocols=!SSLv2"),
            ("d test", "may"),
            ("e.test", "secure match=dot-nexthop"),
            ("f.test", ""),
        ])
        .unwrap_err()
        .join("\n");
        for needle in [
            "entry \"a.test\": \"dane\" is not supported",
            "entry \"b.test\": match= applies to the verify and secure levels, not may",
            "entry \"c.test\": attribute \"protocols\" is not supported",
            "entry \"d test\": expected",
            "entry \"e.test\": match=dot-nexthop is not supported",
            "entry \"f.test\": expected a security level",
        ] {
            assert!(problems.contains(needle), "{needle}\n{problems}");
        }
    }
}
