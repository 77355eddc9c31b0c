//! Mailbox and domain syntax (RFC 5321 §4.1.2, §4.1.3; RFC 6531 for UTF-8).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1: the longest local part a server must accept.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: the longest domain.
const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: the longest path, angle brackets included.
const MAX_PATH: usize = 256;

/// A syntactically valid envelope address: `local-part@domain`, or the
/// special recipient `postmaster` without a domain (RFC 5321 §4.1.1.3).
///
/// The text is kept as received (a quoted local part keeps its quotes), so
/// that relaying passes it on unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    text: String,
    at: Option<usize>,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Not an RFC 5321 mailbox.
    Syntax,
    /// Longer than RFC 5321 allows for a local part, domain or path.
    TooLong,
}

impl Address {
    /// Parses a mailbox without angle brackets (`user@example.com`).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.len() + 2 > MAX_PATH {
            return Err(AddressError::TooLong);
        }
        if text.eq_ignore_ascii_case("postmaster") {
            return Ok(Self {
                text: text.to_owned(),
                at: None,
            });
        }
        let at = split_at_sign(text).ok_or(AddressError::Syntax)?;
        let (local, domain) = (&text[..at], &text[at + 1..]);
        if local.len() > MAX_LOCAL_PART || domain.len() > MAX_DOMAIN {
            return Err(AddressError::TooLong);
        }
        if !is_local_part(local) || !is_domain_or_literal(domain) {
            return Err(AddressError::Syntax);
        }
        Ok(Self {
            text: text.to_owned(),
            at: Some(at),
        })
    }

    /// The address as text, without angle brackets.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part left of the `@` (the whole text for `postmaster`).
    pub fn local_part(&self) -> &str {
        match self.at {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }

    /// The domain (or `[address literal]`), `None` for bare `postmaster`.
    pub fn domain(&self) -> Option<&str> {
        self.at.map(|at| &self.text[at + 1..])
    }

    /// Whether the address is plain ASCII; a non-ASCII address needs
    /// `SMTPUTF8` on the `MAIL` command (RFC 6531 §3.4).
    pub fn is_ascii(&self) -> bool {
        self.text.is_ascii()
    }
}

/// Compares the text as received (tests and lookups by literal address).
impl PartialEq<str> for Address {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Address {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Finds the `@` that separates local part and domain: the last one outside
/// a quoted string.
fn split_at_sign(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut at = None;
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == b'@' && !in_quotes {
            at = Some(i);
        }
    }
    at.filter(|_| !in_quotes)
}

/// RFC 5322 `atext`, widened by RFC 6531 to any non-ASCII character.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_local_part(local: &str) -> bool {
    if local.is_empty() {
        return false;
    }
    if let Some(inner) = local.strip_prefix('"') {
        let Some(inner) = inner.strip_suffix('"') else {
            return false;
        };
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(q) if (' '..='~').contains(&q) => {}
                    _ => return false,
                },
                '"' => return false,
                c if (' '..='~').contains(&c) || !c.is_ascii() => {}
                _ => return false,
            }
        }
        return true;
    }
    local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn is_domain_or_literal(domain: &str) -> bool {
    match domain.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').is_some_and(is_address_literal),
        None => is_domain(domain),
    }
}

/// The inside of an RFC 5321 address literal: IPv4 or `IPv6:` form.
pub(crate) fn is_address_literal(inner: &str) -> bool {
    if let Some(v6) = inner
        .get(..5)
        .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
        .map(|_| &inner[5..])
    {
        return v6.parse::<Ipv6Addr>().is_ok();
    }
    inner.parse::<Ipv4Addr>().is_ok()
}

/// A domain name: LDH labels, or UTF-8 labels that IDNA accepts.
pub(crate) fn is_domain(domain: &str) -> bool {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return false;
    }
    if !domain.is_ascii() {
        return idna::domain_to_ascii_strict(domain).is_ok_and(|ascii| is_ldh_domain(&ascii));
    }
    is_ldh_domain(domain)
}

fn is_ldh_domain(domain: &str) -> bool {
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            "user@example.com",
            "first.last@sub.example.com",
            "\"quoted user\"@example.com",
            "\"a@b\"@example.com",
            "user@[192.0.2.1]",
            "user@[IPv6:2001:db8::1]",
            "Postmaster",
            "jörg@bücher.example",
            "user+tag@example.com",
        ];
        for a in ok {
            assert!(Address::parse(a).is_ok(), "{a} should parse");
        }
        let bad = [
            "",
            "user",
            "@example.com",
            "user@",
            "user@@example.com",
            "us er@example.com",
            "user.@example.com",
            ".user@example.com",
            "user@-example.com",
            "user@exa_mple.com",
            "user@[300.1.1.1]",
            "user@[IPv6:zz::1]",
            "\"unterminated@example.com",
            "user@example..com",
        ];
        for a in bad {
            assert!(Address::parse(a).is_err(), "{a} should be refused");
        }
    }

    #[test]
    fn limits_follow_rfc_5321() {
        let local = "a".repeat(65);
        assert_eq!(
            Address::parse(&format!("{local}@example.com")),
            Err(AddressError::TooLong)
        );
        let ok_local = "a".repeat(64);
        assert!(Address::parse(&format!("{ok_local}@example.com")).is_ok());
    }

    #[test]
    fn domain_is_right_of_the_last_unquoted_at() {
        let a = Address::parse("\"x@y\"@example.com").unwrap();
        assert_eq!(a.domain(), Some("example.com"));
        assert_eq!(a.local_part(), "\"x@y\"");
        assert_eq!(Address::parse("postmaster").unwrap().domain(), None);
    }
}
