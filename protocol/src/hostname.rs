//! Postfix's host name and address literal syntax (`valid_hostname()`,
//! `valid_mailhost_literal()`), byte for byte, so that what towerpost
//! accepts as a site name is exactly what Postfix accepts — and the one
//! domain rule the configuration, the flush service and DSNs share.

use std::borrow::Cow;

/// A domain name as a configuration value, a table key or a site name
/// spells one: [`valid_hostname`] for an ASCII name, and for a UTF-8
/// name the same rule over its IDNA A-label form. A trailing dot is the
/// caller's to strip (a table key may carry one, a site name may not).
pub fn valid_domain(name: &str) -> bool {
    ascii_domain(name).is_some()
}

/// `name` as an ASCII domain (A-labels, as given when already ASCII), or
/// `None` when it is not a [`valid_domain`].
pub fn ascii_domain(name: &str) -> Option<Cow<'_, str>> {
    if name.is_ascii() {
        return valid_hostname(name).then_some(Cow::Borrowed(name));
    }
    // The lenient mapping: valid_hostname() below is the syntax rule, and
    // it allows the underscore that UTS 46's STD3 rules would refuse.
    let ascii = idna::domain_to_ascii(name).ok()?;
    valid_hostname(&ascii).then_some(Cow::Owned(ascii))
}

/// `valid_hostname()`: labels of ASCII letters, digits, `_` and inner
/// `-`, at most 63 bytes each, separated by single dots (none leading or
/// trailing), at most 255 bytes in all, and not all digits and dots.
pub fn valid_hostname(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 255 {
        return false;
    }
    let mut label = 0usize;
    let mut non_numeric = false;
    for (i, &ch) in b.iter().enumerate() {
        let next = b.get(i + 1).copied();
        match ch {
            // "grr.." — Postfix allows the underscore.
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                label += 1;
                if label > 63 {
                    return false;
                }
                if !c.is_ascii_digit() {
                    non_numeric = true;
                }
            }
            b'.' => {
                if label == 0 || next.is_none() {
                    return false;
                }
                label = 0;
            }
            b'-' => {
                non_numeric = true;
                label += 1;
                if label == 1 || next.is_none() || next == Some(b'.') {
                    return false;
                }
            }
            _ => return false,
        }
    }
    non_numeric
}

/// `valid_mailhost_literal()`: `[dotted.quad]` or `[IPv6:address]`, at
/// most 45 bytes between the brackets.
pub fn valid_mailhost_literal(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('[') else {
        return false;
    };
    let Some(close) = inner.find(']') else {
        return false;
    };
    if close + 1 != inner.len() || close >= 46 {
        return false;
    }
    let inner = &inner[..close];
    match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("IPv6:") => valid_ipv6(&inner.as_bytes()[5..]),
        _ => valid_ipv4(inner.as_bytes()),
    }
}

/// `valid_ipv4_hostaddr()`: four decimal octets (leading zeros allowed),
/// a first octet of zero only in `0.0.0.0`.
fn valid_ipv4(s: &[u8]) -> bool {
    let (mut in_byte, mut count, mut val) = (false, 0, 0u32);
    for (i, &ch) in s.iter().enumerate() {
        if ch.is_ascii_digit() {
            if !in_byte {
                in_byte = true;
                val = 0;
                count += 1;
            }
            val = val * 10 + u32::from(ch - b'0');
            if val > 255 {
                return false;
            }
        } else if ch == b'.' {
            if !in_byte || i + 1 == s.len() {
                return false;
            }
            if count == 1 && val == 0 && s.iter().any(|&c| c != b'0' && c != b'.') {
                return false;
            }
            in_byte = false;
        } else {
            return false;
        }
    }
    count == 4
}

/// `valid_ipv6_hostaddr()`: Postfix's deliberately loose check — groups of
/// up to four hex digits, 2 to 7 colons, at most one `::`, an IPv4 tail.
fn valid_ipv6(s: &[u8]) -> bool {
    let (mut null_field, mut field, mut len, mut p) = (0usize, 0usize, 0usize, 0usize);
    loop {
        match s.get(p) {
            None => {
                if field < 2 {
                    return false;
                }
                // A trailing single colon.
                return !(len == 0 && null_field + 1 != field);
            }
            Some(b'.') => {
                if !(2..=6).contains(&field) {
                    return false;
                }
                return valid_ipv4(&s[p - len..]);
            }
            Some(b':') => {
                // A leading single colon.
                if field == 0 && len == 0 && s.get(p + 1).is_some_and(u8::is_ascii_alphanumeric) {
                    return false;
                }
                field += 1;
                if field > 7 {
                    return false;
                }
                p += 1;
                len = 0;
                if s.get(p) == Some(&b':') {
                    if null_field > 0 {
                        return false;
                    }
                    null_field = field;
                }
            }
            Some(_) => {
                len = s[p..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
                if len == 0 || len > 4 {
                    return false;
                }
                p += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in [
            "example.com",
            "mail_relay.example",
            "xn--bcher-kva.example",
            "a-b.c",
        ] {
            assert!(valid_domain(ok), "{ok}");
            assert_eq!(ascii_domain(ok).as_deref(), Some(ok));
        }
        assert_eq!(
            ascii_domain("Bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        for bad in [
            "",
            "example.com.",
            ".example.com",
            "a..b",
            "-a.example",
            "a-.example",
            "192.0.2.1",
            "ex ample.com",
            "ex@mple.com",
            "[192.0.2.1]",
            "bü cher.example",
        ] {
            assert!(!valid_domain(bad), "{bad:?}");
        }
        assert!(!valid_domain(&format!("{}.example", "a".repeat(64))));
    }
}
