//! SASL and server TLS settings: `smtpd_tls_security_level`, the SMTP
//! client's `smtp_sasl_password_maps` and `smtp_sasl_*security_options`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use figment::value::Value;

use crate::Nexthop;
use crate::access::{TableLine, at_line, table_lines};
use crate::convert::{list, nexthop, text};

/// `smtpd_tls_security_level`: whether a listener requires TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SmtpdTlsLevel {
    /// `none` (or empty): TLS is what the listener's `tls` mode offers.
    #[default]
    None,
    /// `may`: STARTTLS is offered (on a `starttls` listener), not required.
    May,
    /// `encrypt`: TLS is required before MAIL, AUTH and the rest (`530
    /// 5.7.0 Must issue a STARTTLS command first`); implies
    /// `smtpd_tls_auth_only`.
    Encrypt,
}

impl SmtpdTlsLevel {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpdTlsLevel::None => "none",
            SmtpdTlsLevel::May => "may",
            SmtpdTlsLevel::Encrypt => "encrypt",
        }
    }
}

impl fmt::Display for SmtpdTlsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn smtpd_tls_level(value: &Value) -> Result<SmtpdTlsLevel, String> {
    let s = text(value)?;
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "none" => Ok(SmtpdTlsLevel::None),
        "may" => Ok(SmtpdTlsLevel::May),
        "encrypt" => Ok(SmtpdTlsLevel::Encrypt),
        _ => Err(format!(
            "expected \"none\", \"may\" or \"encrypt\", found {s:?}"
        )),
    }
}

/// A SASL security option of the SMTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslSecurityOption {
    /// `noplaintext`: no mechanism that sends the password as it is
    /// (PLAIN, LOGIN).
    NoPlaintext,
    /// `noanonymous`: no anonymous mechanism.
    NoAnonymous,
}

impl SaslSecurityOption {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslSecurityOption::NoPlaintext => "noplaintext",
            SaslSecurityOption::NoAnonymous => "noanonymous",
        }
    }
}

pub(crate) fn security_options(value: &Value) -> Result<Vec<SaslSecurityOption>, String> {
    let mut out = Vec::new();
    for item in list(value)? {
        let option = match item.to_ascii_lowercase().as_str() {
            "noplaintext" => SaslSecurityOption::NoPlaintext,
            "noanonymous" => SaslSecurityOption::NoAnonymous,
            "noactive" | "nodictionary" | "mutual_auth" | "forward_secrecy" => {
                return Err(format!(
                    "option '{item}' is not supported (towerpost's client mechanisms are PLAIN \
                     and LOGIN); expected noplaintext, noanonymous"
                ));
            }
            _ => {
                return Err(format!("expected noplaintext, noanonymous, found {item:?}"));
            }
        };
        if !out.contains(&option) {
            out.push(option);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// A login the SMTP client presents to a next hop.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Login {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `smtp_sasl_password_maps`: a text table of `nexthop username:password`
/// lines (comments and continuation lines as in access(5)), read when the
/// configuration is loaded.
///
/// Keys are next hops as in `relayhost` (`[smtp.example.com]:587`,
/// `example.com`) or bare host names; `[smtp.example.com]:submission`
/// and `[smtp.example.com]:587` are the same key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PasswordMap {
    /// The file the map was read from, as configured.
    pub path: PathBuf,
    entries: BTreeMap<String, Login>,
}

impl fmt::Debug for PasswordMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordMap")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl PasswordMap {
    /// Reads the map at `path`; the error has one line per problem.
    pub fn load(path: impl Into<PathBuf>) -> Result<PasswordMap, String> {
        let path = path.into();
        match crate::read::read_text(&path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Parses `text` as the map at `path` (which is not read).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<PasswordMap, String> {
        let path = path.into();
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        for TableLine {
            line: line_no,
            key,
            value,
        } in table_lines(&path, text, &mut problems)
        {
            let at = |message: String| at_line(&path, line_no, message);
            if value.is_empty() {
                problems.push(at(
                    "expected \"nexthop username:password\", found a key alone".to_owned(),
                ));
                continue;
            }
            let key = match nexthop(&key) {
                Ok(hop) => hop.to_string(),
                Err(message) => {
                    problems.push(at(message));
                    continue;
                }
            };
            let Some((username, password)) = value.trim().split_once(':') else {
                problems.push(at(format!(
                    "entry {key:?}: expected \"username:password\" (the password is not shown)"
                )));
                continue;
            };
            let login = Login {
                username: username.to_owned(),
                password: password.to_owned(),
            };
            if entries.insert(key.clone(), login).is_some() {
                problems.push(at(format!("duplicate key {key:?}")));
            }
        }
        if problems.is_empty() {
            Ok(PasswordMap { path, entries })
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The login for a delivery to `nexthop` through the server `host`
    /// (the MX or host name connected to), in Postfix's SMTP client's
    /// order: the server's host name, then the next hop as configured
    /// (`[smtp.example.com]:587`, `example.com`).
    pub fn lookup(&self, nexthop: &Nexthop, host: &str) -> Option<&Login> {
        self.entries
            .get(&host.to_ascii_lowercase())
            .or_else(|| self.entries.get(&nexthop.to_string()))
    }
}

pub(crate) fn password_map(value: &Value) -> Result<Option<PasswordMap>, String> {
    let s = text(value)?;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let path = crate::restrictions::table_path("smtp_sasl_password_maps", s)?;
    PasswordMap::load(path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_found_by_nexthop_then_host() {
        let map = PasswordMap::parse(
            "p",
            "[smarthost.example]:submission alice:s3cr:et\nmx.example.net bob:pw\n",
        )
        .unwrap();
        let hop = nexthop("[smarthost.example]:587").unwrap();
        let login = map.lookup(&hop, "other").unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "s3cr:et")
        );
        let hop = nexthop("example.net").unwrap();
        assert_eq!(map.lookup(&hop, "MX.example.net").unwrap().username, "bob");
        assert!(map.lookup(&hop, "mx2.example.net").is_none());
        assert!(
            !format!(
                "{:?}",
                map.lookup(&nexthop("[smarthost.example]:587").unwrap(), "")
                    .unwrap()
            )
            .contains("s3cr")
        );
    }

    #[test]
    fn bad_lines_name_the_line_but_not_the_password() {
        let error = PasswordMap::parse("p", "[h.example] nocolon\n").unwrap_err();
        assert!(error.starts_with("p:1: "), "{error}");
        assert!(!error.contains("nocolon"), "{error}");
    }
}
