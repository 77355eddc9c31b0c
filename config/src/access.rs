//! Access tables (Postfix access(5), text form), read when the
//! configuration is loaded.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use towerpost_protocol::valid_domain;

/// An access table: a text file in Postfix access(5) syntax, read when the
/// configuration is loaded (`check_etrn_access` and `check_client_access`
/// in `smtpd_etrn_restrictions`).
///
/// Each logical line is `key action`; empty lines and lines whose first
/// non-blank character is `#` are ignored, and a line that starts with
/// whitespace continues the previous one (as with `postmap`). A key is a
/// domain (also matching its subdomains), `.domain` (subdomains only), an
/// IP address, an address prefix on octet (IPv4) or `:` (IPv6) boundaries
/// such as `192.0.2`, or an e-mail address pattern (`user@domain`, `user@`,
/// `@domain`), which is accepted but never looked up. Keys are
/// case-insensitive; each may appear once. The action is one of
/// [`AccessAction`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessTable {
    /// The file the table was read from, as configured.
    pub path: PathBuf,
    /// The entries by lower-cased key (`.domain` keys keep their dot).
    entries: BTreeMap<String, AccessAction>,
}

/// The action of an access table entry.
///
/// Its [`Display`](fmt::Display) output is the table syntax (`OK`,
/// `REJECT text`, `550 text`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessAction {
    /// `OK`: permit (stop evaluating the restriction list).
    Ok,
    /// `DUNNO`: stop looking in this table (no parent domain or shorter
    /// prefix is tried) and go on with the next restriction.
    Dunno,
    /// `REJECT [text]`: a permanent refusal, with the optional text.
    Reject(Option<String>),
    /// `DEFER [text]`: a temporary refusal, with the optional text.
    Defer(Option<String>),
    /// `4NN text` / `5NN text`: a refusal with this reply code (400 to
    /// 599) and text (which may start with an enhanced status code).
    Reply {
        /// The SMTP reply code.
        code: u16,
        /// The reply text, not empty.
        text: String,
    },
}

impl fmt::Display for AccessAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessAction::Ok => f.write_str("OK"),
            AccessAction::Dunno => f.write_str("DUNNO"),
            AccessAction::Reject(None) => f.write_str("REJECT"),
            AccessAction::Reject(Some(text)) => write!(f, "REJECT {text}"),
            AccessAction::Defer(None) => f.write_str("DEFER"),
            AccessAction::Defer(Some(text)) => write!(f, "DEFER {text}"),
            AccessAction::Reply { code, text } => write!(f, "{code} {text}"),
        }
    }
}

impl AccessTable {
    /// Reads and parses the table at `path`. The error has one line per
    /// problem, each starting with `path:line:` (or naming the file when it
    /// cannot be read).
    pub fn load(path: impl Into<PathBuf>) -> Result<AccessTable, String> {
        Self::load_problems(path.into()).map_err(|problems| problems.join("\n"))
    }

    /// Parses `text` as the contents of the table at `path` (which is not
    /// read). The error has one line per problem, each starting with
    /// `path:line:`.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<AccessTable, String> {
        Self::parse_problems(path.into(), text).map_err(|problems| problems.join("\n"))
    }

    /// Like [`AccessTable::load`], with one message per problem.
    pub(crate) fn load_problems(path: PathBuf) -> Result<AccessTable, Vec<String>> {
        match crate::read::read_text(&path) {
            Ok(text) => Self::parse_problems(path, &text),
            Err(e) => Err(vec![format!(
                "cannot read the access table {}: {e}",
                path.display()
            )]),
        }
    }

    /// Like [`AccessTable::parse`], with one message per problem.
    pub(crate) fn parse_problems(path: PathBuf, text: &str) -> Result<AccessTable, Vec<String>> {
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        let mut lines_of: BTreeMap<String, usize> = BTreeMap::new();
        for TableLine {
            line: line_no,
            key,
            value,
        } in table_lines(&path, text, &mut problems)
        {
            let at = |message: String| at_line(&path, line_no, message);
            if value.is_empty() {
                problems.push(at(format!(
                    "expected \"key action\", found {key:?} (missing the action; {ACTIONS})"
                )));
                continue;
            }
            let key = match access_key(&key) {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(message) => {
                    problems.push(at(message));
                    continue;
                }
            };
            let action = match access_action(&value) {
                Ok(action) => action,
                Err(message) => {
                    problems.push(at(format!("entry {key:?}: {message}")));
                    continue;
                }
            };
            if let Some(first) = lines_of.get(&key) {
                problems.push(at(format!("duplicate key {key:?} (first on line {first})")));
                continue;
            }
            lines_of.insert(key.clone(), line_no);
            entries.insert(key, action);
        }
        if problems.is_empty() {
            Ok(AccessTable { path, entries })
        } else {
            Err(problems)
        }
    }

    /// The action for a domain: the exact domain, then each parent domain
    /// from the closest up, as Postfix with `parent_domain_matches_subdomains`
    /// for `smtpd_access_maps`: `example.com` also matches
    /// `sub.example.com`, and `.example.com` matches only subdomains; the
    /// closest match wins. At one level, a `.example.com` entry is tried
    /// before an `example.com` entry.
    ///
    /// The domain is matched case-insensitively, ignoring a trailing dot.
    /// An address literal such as `[192.0.2.1]` only matches exactly.
    pub fn lookup_domain(&self, domain: &str) -> Option<&AccessAction> {
        let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
        if domain.is_empty() {
            return None;
        }
        if let Some(action) = self.entries.get(&domain) {
            return Some(action);
        }
        if domain.starts_with('[') {
            return None;
        }
        domain
            .match_indices('.')
            .map(|(i, _)| &domain[i..])
            .filter(|parent| parent.len() > 1)
            .find_map(|parent| {
                self.entries
                    .get(parent)
                    .or_else(|| self.entries.get(&parent[1..]))
            })
    }

    /// The action for a client, as Postfix's `check_client_access`: first
    /// the client host name as a domain (see
    /// [`AccessTable::lookup_domain`]) when it is known, then the IP address
    /// and its prefixes, from the longest: the string form of the address
    /// is cut at the last `.` (IPv4: `192.0.2.1`, `192.0.2`, `192.0`,
    /// `192`) or `:` (IPv6, compressed form: `2001:db8::1`, `2001:db8:`,
    /// `2001:db8`, `2001`) until there is none left. An IPv4-mapped IPv6
    /// address is looked up as IPv4. The first match wins.
    pub fn lookup_client(&self, ip: IpAddr, name: Option<&str>) -> Option<&AccessAction> {
        if let Some(action) = name.and_then(|name| self.lookup_domain(name)) {
            return Some(action);
        }
        let ip = ip.to_canonical();
        let delimiter = if ip.is_ipv4() { '.' } else { ':' };
        let mut address = ip.to_string();
        loop {
            if let Some(action) = self.entries.get(&address) {
                return Some(action);
            }
            let end = address.rfind(delimiter)?;
            address.truncate(end);
        }
    }

    /// The action for an e-mail address, as Postfix's
    /// `check_sender_access` and `check_recipient_access`: the whole
    /// address `user@domain`, then the domain (see
    /// [`AccessTable::lookup_domain`]), then `user@`. The null sender is
    /// looked up as `<>` (Postfix's `smtpd_null_access_lookup_key`). The
    /// first match wins; the address is matched in its lookup form
    /// (case-insensitive, no trailing dot, needless quotes removed).
    pub fn lookup_address(&self, address: &str) -> Option<&AccessAction> {
        if address.is_empty() {
            return self.entries.get(NULL_SENDER_KEY);
        }
        let address = crate::address_map::lookup_form(address);
        let Some((local, domain)) = address.rsplit_once('@') else {
            return self.entries.get(&address);
        };
        self.entries
            .get(&address)
            .or_else(|| self.lookup_domain(domain))
            .or_else(|| self.entries.get(&format!("{local}@")))
    }

    /// The entries, by lower-cased key in key order (`.domain` keys keep
    /// their dot; e-mail address keys and `<>` are left out).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &AccessAction)> + '_ {
        self.entries
            .iter()
            .filter(|(k, _)| !is_address_key(k))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The number of entries (e-mail address keys and `<>` are not
    /// counted).
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    /// Whether the table has no entries (of those [`AccessTable::len`]
    /// counts).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key the null sender is looked up with.
const NULL_SENDER_KEY: &str = "<>";

fn is_address_key(key: &str) -> bool {
    key == NULL_SENDER_KEY || key.contains('@')
}

const ACTIONS: &str = "expected OK, DUNNO, REJECT [text], DEFER [text] or a reply code and \
     text such as \"550 Access denied\"";

/// One `key value` line of a text table (the value trimmed, maybe empty).
pub(crate) struct TableLine {
    /// The number of its first physical line.
    pub(crate) line: usize,
    pub(crate) key: String,
    pub(crate) value: String,
}

/// A problem on a line of a table: `path:line: message`.
pub(crate) fn at_line(path: &Path, line: usize, message: String) -> String {
    format!("{}:{line}: {message}", path.display())
}

/// The `key value` lines of a text table; a malformed continuation line
/// is pushed to `problems`.
pub(crate) fn table_lines(path: &Path, text: &str, problems: &mut Vec<String>) -> Vec<TableLine> {
    let mut out = Vec::new();
    for (line_no, line) in logical_lines(text) {
        let line = match line {
            Ok(line) => line,
            Err(message) => {
                problems.push(at_line(path, line_no, message));
                continue;
            }
        };
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((key, value)) => (key, value.trim()),
            None => (line.as_str(), ""),
        };
        out.push(TableLine {
            line: line_no,
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    out
}

/// The logical lines of a table with their first line numbers: comments
/// and empty lines dropped, continuation lines joined with a space. A
/// continuation line without a line to continue is an error.
fn logical_lines(text: &str) -> Vec<(usize, Result<String, String>)> {
    let mut out: Vec<(usize, Result<String, String>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            out.push((line_no, Ok(trimmed.to_owned())));
            continue;
        }
        match out.last_mut() {
            Some((_, Ok(logical))) => {
                logical.push(' ');
                logical.push_str(trimmed);
            }
            Some((_, Err(_))) => {}
            None => out.push((
                line_no,
                Err(
                    "a line that starts with whitespace continues the previous entry, and \
                     there is none"
                        .to_owned(),
                ),
            )),
        }
    }
    out
}

/// A table key, lower-cased; `None` for keys that can never match
/// (`@domain`, which access(5) does not define).
fn access_key(key: &str) -> Result<Option<String>, String> {
    let key = key.to_lowercase();
    if key == NULL_SENDER_KEY {
        return Ok(Some(key));
    }
    if let Some((local, domain)) = key.rsplit_once('@') {
        if local.is_empty() {
            return Ok(None);
        }
        if !domain.is_empty() && !valid_domain(domain.strip_suffix('.').unwrap_or(domain)) {
            return Err(format!(
                "expected an address such as \"user@example.com\" or \"user@\", found {key:?}"
            ));
        }
        return Ok(Some(key));
    }
    let bad = |hint: &str| {
        Err(format!(
            "expected a domain, \".domain\", an IP address or prefix, or user@domain as the \
             key, found {key:?}{hint}"
        ))
    };
    if key.starts_with('[') {
        return bad(" (write addresses without '[]')");
    }
    if key.contains('/') {
        return bad(" (use an address or a prefix such as \"192.0.2\", not a network/mask)");
    }
    if key.contains(':') {
        let ipv6 = key
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            && key.chars().any(|c| c.is_ascii_hexdigit())
            && key.split(':').count() <= 8;
        return if ipv6 { Ok(Some(key)) } else { bad("") };
    }
    let name = key.strip_prefix('.').unwrap_or(&key);
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    let numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()));
    if numeric {
        let octet = |l: &&str| l.parse::<u8>().is_ok() && (l.len() == 1 || !l.starts_with('0'));
        if key.starts_with('.') || labels.len() > 4 || !labels.iter().all(octet) {
            return bad(" (an IPv4 address or prefix has one to four octets from 0 to 255)");
        }
    } else if !valid_domain(name) {
        return bad("");
    }
    let dot = if key.starts_with('.') { "." } else { "" };
    Ok(Some(format!("{dot}{name}")))
}

/// The action of an entry.
fn access_action(value: &str) -> Result<AccessAction, String> {
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!(
            "the action contains a control character {c:?}, found {value:?}"
        ));
    }
    let (word, rest) = match value.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (value, ""),
    };
    let text = (!rest.is_empty()).then(|| rest.to_owned());
    let no_text = |action: AccessAction| match &text {
        None => Ok(action),
        Some(_) => Err(format!("{action} takes no text, found {value:?}")),
    };
    match word.to_ascii_uppercase().as_str() {
        "OK" => return no_text(AccessAction::Ok),
        "DUNNO" => return no_text(AccessAction::Dunno),
        "REJECT" => return Ok(AccessAction::Reject(text)),
        "DEFER" => return Ok(AccessAction::Defer(text)),
        _ => {}
    }
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit()) {
        let code = word.parse::<u16>().ok().filter(|_| word.len() == 3);
        return match (code, text) {
            (Some(code @ 400..=599), Some(text)) => Ok(AccessAction::Reply { code, text }),
            (Some(400..=599), None) | (None, None) => Err(format!(
                "a number alone (which Postfix takes as OK) is not supported; write OK, or \
                 a reply code with text such as \"550 Access denied\", found {value:?}"
            )),
            _ => Err(format!(
                "expected a reply code from 400 to 599 followed by text, found {value:?}"
            )),
        };
    }
    Err(format!("action {word:?} is not supported; {ACTIONS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalized_and_checked() {
        assert_eq!(access_key("Example.COM."), Ok(Some("example.com".into())));
        assert_eq!(access_key(".example.com"), Ok(Some(".example.com".into())));
        assert_eq!(access_key("192.0.2"), Ok(Some("192.0.2".into())));
        assert_eq!(access_key("2001:DB8::1"), Ok(Some("2001:db8::1".into())));
        assert_eq!(access_key("2001:db8"), Ok(Some("2001:db8".into())));
        assert_eq!(
            access_key("User@Example.com"),
            Ok(Some("user@example.com".into()))
        );
        assert_eq!(access_key("postmaster@"), Ok(Some("postmaster@".into())));
        assert_eq!(access_key("@example.com"), Ok(None));
        assert_eq!(access_key("<>"), Ok(Some("<>".into())));
        for bad in [
            "192.0.2.0/24",
            "192.0.02",
            "1.2.3.4.5",
            "256.1",
            "[192.0.2.1]",
            "a..b",
            "hash:/etc/x",
        ] {
            assert!(access_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actions_are_parsed() {
        assert_eq!(access_action("ok"), Ok(AccessAction::Ok));
        assert_eq!(access_action("DUNNO"), Ok(AccessAction::Dunno));
        assert_eq!(access_action("REJECT"), Ok(AccessAction::Reject(None)));
        assert_eq!(
            access_action("defer  try  later"),
            Ok(AccessAction::Defer(Some("try  later".into())))
        );
        assert_eq!(
            access_action("554 5.7.1 go away"),
            Ok(AccessAction::Reply {
                code: 554,
                text: "5.7.1 go away".into()
            })
        );
        for bad in [
            "550", "12345", "250 fine", "600 x", "HOLD", "OK fine", "0550 x",
        ] {
            assert!(access_action(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_looked_up_whole_then_domain_then_local_part() {
        let table = AccessTable::parse(
            "t",
            "a@x.example OK\nx.example REJECT\nabuse@ 550 no\n<> DEFER\n",
        )
        .unwrap();
        assert_eq!(table.lookup_address("A@X.example"), Some(&AccessAction::Ok));
        assert_eq!(
            table.lookup_address("b@sub.x.example"),
            Some(&AccessAction::Reject(None))
        );
        assert!(matches!(
            table.lookup_address("abuse@y.example"),
            Some(AccessAction::Reply { code: 550, .. })
        ));
        assert_eq!(table.lookup_address(""), Some(&AccessAction::Defer(None)));
        assert_eq!(table.lookup_address("c@y.example"), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn continuation_lines_are_joined() {
        let table = AccessTable::parse("t", "a.example REJECT go\n  away\n").unwrap();
        assert_eq!(
            table.lookup_domain("a.example"),
            Some(&AccessAction::Reject(Some("go away".into())))
        );
        let error = AccessTable::parse("t", "  x OK\n").unwrap_err();
        assert!(error.starts_with("t:1: "), "{error}");
    }
}
