//! Fast flush and ETRN: `fast_flush_domains`, `smtpd_etrn_restrictions`
//! and `authorized_flush_users`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use figment::value::Value;

use crate::Config;
use crate::convert::{list, unsupported_hint};
use towerpost_protocol::valid_domain;

/// One element of `authorized_flush_users`: a pattern, possibly negated.
///
/// Its [`Display`](fmt::Display) output is the configuration syntax
/// (`name`, `!name`, `static:anyone`, `/file/name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserRule {
    /// Written with a leading `!`: a user that matches is refused.
    pub exclude: bool,
    /// What the rule matches.
    pub pattern: UserPattern,
}

/// What an [`UserRule`] matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserPattern {
    /// `static:anyone`: every user.
    Anyone,
    /// A user name (lower-cased; user names match case-insensitively, as in
    /// Postfix).
    Name(String),
    /// `/file/name`: the user names in a file, read when the configuration
    /// is loaded: names separated by whitespace or commas; empty lines and
    /// lines starting with `#` are ignored.
    File {
        /// The file, as configured.
        path: PathBuf,
        /// The names in it, lower-cased.
        names: BTreeSet<String>,
    },
}

impl UserRule {
    /// Whether the pattern matches `user` (ignoring `exclude`).
    fn matches(&self, user: &str) -> bool {
        match &self.pattern {
            UserPattern::Anyone => true,
            UserPattern::Name(name) => *name == user,
            UserPattern::File { names, .. } => names.contains(user),
        }
    }
}

impl fmt::Display for UserRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclude {
            f.write_str("!")?;
        }
        match &self.pattern {
            UserPattern::Anyone => f.write_str(ANYONE),
            UserPattern::Name(name) => f.write_str(name),
            UserPattern::File { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

/// The spelling of [`UserPattern::Anyone`].
pub(crate) const ANYONE: &str = "static:anyone";

impl Config {
    /// Whether mail for `domain` may be flushed by ETRN or `sendmail -qR`:
    /// `domain` (case-insensitive, a trailing dot ignored) equals a
    /// `fast_flush_domains` entry or is a subdomain of one (Postfix's
    /// `parent_domain_matches_subdomains` includes `fast_flush_domains`); an
    /// entry `.example.com` matches subdomains only. An address literal
    /// such as `[192.0.2.1]` or `[IPv6:2001:db8::1]` matches the same
    /// address literal only.
    pub fn fast_flush_eligible(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        if domain.starts_with('[') {
            return match address_literal(&domain) {
                Some(Ok(literal)) => self.fast_flush_domains.contains(&literal),
                _ => false,
            };
        }
        domain_list_matches(&self.fast_flush_domains, &domain)
    }

    /// Whether towerpost relays mail for `domain` to anyone: it equals a
    /// `relay_domains` entry or is a subdomain of one (Postfix's
    /// `parent_domain_matches_subdomains` includes `relay_domains`); an
    /// entry `.example.com` matches subdomains only. Case-insensitive, a
    /// trailing dot ignored; address literals never match.
    pub fn is_relay_domain(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        !domain.starts_with('[') && domain_list_matches(&self.relay_domains, &domain)
    }

    /// Whether `user` may flush the queue (`postqueue -f`, `-s`, `-i`), by
    /// `authorized_flush_users`: the rules are tried left to right and the
    /// first that matches decides (allowed, or refused for a `!` rule); no
    /// match means not allowed. User names match case-insensitively.
    ///
    /// Root and the queue owner are always allowed; that is up to the
    /// caller. As in Postfix, a user ID without a name should be checked as
    /// the name `unknown`.
    pub fn flush_user_allowed(&self, user: &str) -> bool {
        let user = user.to_lowercase();
        self.authorized_flush_users
            .iter()
            .find(|rule| rule.matches(&user))
            .is_some_and(|rule| !rule.exclude)
    }
}

/// Whether the lower-cased `domain` equals an entry of `list` or is a
/// subdomain of one; `.domain` entries match subdomains only, address
/// literal entries never.
fn domain_list_matches(list: &[String], domain: &str) -> bool {
    if domain.is_empty() {
        return false;
    }
    list.iter().any(|entry| {
        if entry.starts_with('.') {
            domain.len() > entry.len() && domain.ends_with(entry.as_str())
        } else if entry.starts_with('[') {
            false
        } else {
            domain == entry
                || domain
                    .strip_suffix(entry.as_str())
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
        }
    })
}

/// An address literal (`[192.0.2.1]`, `[ipv6:2001:db8::1]`, also
/// `[2001:db8::1]`) in canonical form (`ipv6:` lower-case); `None` if `s` is
/// not in brackets.
fn address_literal(s: &str) -> Option<Result<String, String>> {
    let inside = s.strip_prefix('[')?.strip_suffix(']')?;
    let v6 = match inside.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("ipv6:") => &inside[5..],
        _ => inside,
    };
    Some(if let Ok(address) = v6.parse::<Ipv6Addr>() {
        Ok(format!("[ipv6:{address}]"))
    } else if let Ok(address) = inside.parse::<Ipv4Addr>() {
        Ok(format!("[{address}]"))
    } else {
        Err(format!(
            "expected an address literal such as \"[192.0.2.1]\" or \"[ipv6:2001:db8::1]\", \
             found {s:?}"
        ))
    })
}

/// `fast_flush_domains`: domains (lower-cased, without a trailing dot),
/// `.domain` (subdomains only) and address literals.
pub(crate) fn flush_domains(value: &Value) -> Result<Vec<String>, String> {
    list(value)?
        .into_iter()
        .map(|item| {
            if let Some(literal) = address_literal(&item) {
                return literal;
            }
            let (dot, name) = match item.strip_prefix('.') {
                Some(name) => (".", name),
                None => ("", item.as_str()),
            };
            let name = name.strip_suffix('.').unwrap_or(name);
            if valid_domain(name) {
                Ok(format!("{dot}{}", name.to_lowercase()))
            } else {
                Err(format!(
                    "expected domain names such as \"example.com\" or address literals such as \
                     \"[192.0.2.1]\", found {item:?}{}",
                    unsupported_hint(&item)
                ))
            }
        })
        .collect()
}

/// `authorized_flush_users`: user names, `static:anyone` and `/file/name`,
/// each possibly preceded by `!`. The files are read. One message per
/// problem.
pub(crate) fn flush_users(value: &Value) -> Result<Vec<UserRule>, Vec<String>> {
    const EXPECTED: &str = "expected user names, \"static:anyone\" or \"/file/name\", each \
         possibly preceded by '!'";
    let items = list(value).map_err(|message| vec![message])?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for item in items {
        let (exclude, pattern) = match item.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, item.as_str()),
        };
        let pattern = if pattern.starts_with('/') {
            match user_file(PathBuf::from(pattern)) {
                Ok(pattern) => pattern,
                Err(messages) => {
                    problems.extend(messages);
                    continue;
                }
            }
        } else if let Some((kind, rest)) = pattern.split_once(':') {
            if !kind.eq_ignore_ascii_case("static") {
                problems.push(format!(
                    "{EXPECTED}, found {item:?} (lookup tables are not supported)"
                ));
                continue;
            }
            if !rest.eq_ignore_ascii_case("anyone") {
                problems.push(format!(
                    "{EXPECTED}, found {item:?} (a static: table matches every user whatever \
                     its value; write \"static:anyone\")"
                ));
                continue;
            }
            UserPattern::Anyone
        } else if user_name(pattern) {
            UserPattern::Name(pattern.to_lowercase())
        } else {
            problems.push(format!("{EXPECTED}, found {item:?}"));
            continue;
        };
        out.push(UserRule { exclude, pattern });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Whether `name` can be a user name.
fn user_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "!/:,".contains(c))
}

/// Reads a file of user names.
fn user_file(path: PathBuf) -> Result<UserPattern, Vec<String>> {
    let text = crate::read::read_text(&path)
        .map_err(|e| vec![format!("cannot read the user list {}: {e}", path.display())])?;
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for word in line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            if user_name(word) {
                names.insert(word.to_lowercase());
            } else {
                problems.push(format!(
                    "{}:{}: expected user names, found {word:?} (only names are supported in \
                     a user list file)",
                    path.display(),
                    i + 1
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(UserPattern::File { path, names })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals_are_canonical() {
        let lit = |s: &str| address_literal(s).map(|r| r.ok());
        assert_eq!(lit("[192.0.2.1]"), Some(Some("[192.0.2.1]".into())));
        assert_eq!(
            lit("[IPv6:2001:DB8:0::1]"),
            Some(Some("[ipv6:2001:db8::1]".into()))
        );
        assert_eq!(
            lit("[2001:db8::1]"),
            Some(Some("[ipv6:2001:db8::1]".into()))
        );
        assert_eq!(lit("[example.com]"), Some(None));
        assert_eq!(lit("example.com"), None);
    }
}
