//! Address maps: text tables keyed by e-mail address, for
//! `relay_recipient_maps` and `smtpd_sender_login_maps`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::access::{TableLine, at_line, table_lines};
use towerpost_protocol::valid_domain;

/// A text table keyed by e-mail address, read when the configuration is
/// loaded: each logical line is `key value` (the value may be omitted in
/// `relay_recipient_maps`, where only the key matters); comments,
/// empty lines and continuation lines as in access(5). A key is
/// `user@domain` or `@domain` (every address of the domain), matched
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressMap {
    /// The file the table was read from, as configured.
    pub path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl AddressMap {
    /// Reads the table at `path`; the error has one line per problem, each
    /// starting with `path:line:`.
    pub fn load(path: impl Into<PathBuf>) -> Result<AddressMap, String> {
        Self::load_problems(path.into()).map_err(|p| p.join("\n"))
    }

    /// Parses `text` as the table at `path` (which is not read).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<AddressMap, String> {
        Self::parse_problems(path.into(), text).map_err(|p| p.join("\n"))
    }

    pub(crate) fn load_problems(path: PathBuf) -> Result<AddressMap, Vec<String>> {
        match crate::read::read_text(&path) {
            Ok(text) => Self::parse_problems(path, &text),
            Err(e) => Err(vec![format!("cannot read {}: {e}", path.display())]),
        }
    }

    pub(crate) fn parse_problems(path: PathBuf, text: &str) -> Result<AddressMap, Vec<String>> {
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        for TableLine {
            line: line_no,
            key,
            value,
        } in table_lines(&path, text, &mut problems)
        {
            let at = |message: String| at_line(&path, line_no, message);
            let key = key.to_lowercase();
            let valid = key.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.contains('@') && valid_domain(domain.strip_suffix('.').unwrap_or(domain))
            });
            if !valid {
                problems.push(at(format!(
                    "expected \"user@example.com\" or \"@example.com\" as the key, found {key:?}"
                )));
                continue;
            }
            if entries.insert(key.clone(), value).is_some() {
                problems.push(at(format!("duplicate key {key:?}")));
            }
        }
        if problems.is_empty() {
            Ok(AddressMap { path, entries })
        } else {
            Err(problems)
        }
    }

    /// The value for `address`: the whole address, then `@domain`
    /// (matched in [`lookup_form`]).
    pub fn lookup(&self, address: &str) -> Option<&str> {
        let address = lookup_form(address);
        let (_, domain) = address.rsplit_once('@')?;
        self.entries
            .get(&address)
            .or_else(|| self.entries.get(&format!("@{domain}")))
            .map(String::as_str)
    }

    /// Whether `address` has an entry.
    pub fn contains(&self, address: &str) -> bool {
        self.lookup(address).is_some()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The form an address is looked up in: lower-cased, the domain without a
/// trailing dot, and a quoted local part that needs no quotes unquoted, so
/// that `"Alice"@Example.COM.` finds the entry for `alice@example.com`
/// (the client chooses the spelling; the table must not depend on it).
pub(crate) fn lookup_form(address: &str) -> String {
    let address = address.to_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address;
    };
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let local = match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner)
            if !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)) =>
        {
            inner
        }
        _ => local,
    };
    format!("{local}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_then_domains_match() {
        let map = AddressMap::parse("m", "a@x.example alice\n@y.example bob, carol\n").unwrap();
        assert_eq!(map.lookup("A@X.EXAMPLE"), Some("alice"));
        assert_eq!(map.lookup("b@x.example"), None);
        assert_eq!(map.lookup("z@y.example"), Some("bob, carol"));
        assert!(AddressMap::parse("m", "nodomain x\n").is_err());
        assert_eq!(map.lookup("\"a\"@x.example."), Some("alice"));
        assert_eq!(map.lookup("\"a b\"@x.example"), None);
    }
}
