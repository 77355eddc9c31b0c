//! The `ETRN` argument (RFC 1985) as Postfix's `etrn_cmd()` reads it:
//! exactly one token by smtpd's tokenizer, one leading `@` or `#` dropped
//! (their RFC 1985 meanings are not implemented, as in Postfix), then a
//! host name or an address literal.

use crate::Reply;
use crate::hostname::{valid_hostname, valid_mailhost_literal};

/// Why an `ETRN` argument is refused. The session checks it after the
/// HELO and transaction checks, as Postfix does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtrnError {
    /// Not exactly one argument.
    Count,
    /// Not a host name or address literal.
    Syntax,
}

impl EtrnError {
    /// Postfix's reply (ETRN replies carry no enhanced status code).
    pub fn reply(self) -> Reply {
        match self {
            EtrnError::Count => Reply::new(500, "Syntax: ETRN domain"),
            EtrnError::Syntax => Reply::new(501, "Error: invalid parameter syntax"),
        }
    }
}

/// The site an `ETRN` argument names: the single token without one
/// leading `@` or `#`, in its original case (Postfix echoes it so).
pub fn etrn_site(argument: &str) -> Result<&str, EtrnError> {
    let mut tokens = tokens(argument);
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return Err(EtrnError::Count);
    };
    let site = token.strip_prefix(['@', '#']).unwrap_or(token);
    if valid_hostname(site) || valid_mailhost_literal(site) {
        Ok(site)
    } else {
        Err(EtrnError::Syntax)
    }
}

/// smtpd's tokenizer (`smtpd_token()`), for counting and taking the
/// argument: white space is C's `isspace` (VT and FF too); `<…>` and
/// `"…"` are one token with their delimiters, spaces and all; a backslash
/// keeps the next character in the token; a token that has become `to:`
/// or `from:` ends there.
fn tokens(line: &str) -> impl Iterator<Item = &str> {
    let b = line.as_bytes();
    let mut p = 0;
    std::iter::from_fn(move || {
        while p < b.len() && is_space(b[p]) {
            p += 1;
        }
        if p == b.len() {
            return None;
        }
        let start = p;
        while p < b.len() && !is_space(b[p]) {
            match b[p] {
                open @ (b'<' | b'"') => {
                    let close = if open == b'<' { b'>' } else { b'"' };
                    p = quoted_end(b, p + 1, close);
                }
                b'\\' => p = (p + 2).min(b.len()),
                b':' => {
                    p += 1;
                    let token = &line[start..p];
                    if token.eq_ignore_ascii_case("to:") || token.eq_ignore_ascii_case("from:") {
                        break;
                    }
                }
                _ => p += 1,
            }
        }
        Some(&line[start..p])
    })
}

/// Where a quoted part that opened before `p` ends: after its closing
/// byte, skipping backslash escapes and, inside `<…>`, nested `"…"`; an
/// unclosed one runs to the end.
fn quoted_end(b: &[u8], mut p: usize, close: u8) -> usize {
    while p < b.len() {
        match b[p] {
            b'\\' => p += 2,
            c if c == close => return p + 1,
            b'"' if close == b'>' => p = quoted_end(b, p + 1, b'"'),
            _ => p += 1,
        }
    }
    b.len()
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_smtpd_token() {
        let cases: &[(&str, &[&str])] = &[
            ("a.test", &["a.test"]),
            ("  a.test\t ", &["a.test"]),
            ("a b", &["a", "b"]),
            ("\"a b\"", &["\"a b\""]),
            ("<a b>", &["<a b>"]),
            ("a\\ b", &["a\\ b"]),
            ("to:x.test", &["to:", "x.test"]),
            ("FROM:x", &["FROM:", "x"]),
            ("a:b", &["a:b"]),
            ("a\x0bb", &["a", "b"]),
            ("<a \"b> c\" d>", &["<a \"b> c\" d>"]),
            ("\"open", &["\"open"]),
            ("", &[]),
        ];
        for (line, want) in cases {
            let got: Vec<&str> = tokens(line).collect();
            assert_eq!(&got, want, "{line:?}");
        }
    }
}
