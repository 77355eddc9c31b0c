//! Parsing replies, for the SMTP client side.

use crate::reply::{EnhancedCode, Reply};

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; servers in
/// the wild send longer, so allow some slack but stay bounded).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply (an EHLO reply has a dozen).
pub const MAX_REPLY_LINES: usize = 100;

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line is not `NNN<SP or ->text`, or its code changed mid-reply.
    Malformed(String),
    /// Longer or more lines than the limits above.
    TooLong,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Malformed(line) => write!(f, "malformed reply line: {line:?}"),
            ReplyError::TooLong => f.write_str("reply too long"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Collects the lines of one reply (`250-…` lines, then `250 …`).
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// A parser for one reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one line (without CRLF). Returns the reply once its last line
    /// has been seen.
    pub fn line(&mut self, line: &str) -> Result<Option<Reply>, ReplyError> {
        if line.len() > MAX_REPLY_LINE || self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooLong);
        }
        let bytes = line.as_bytes();
        let malformed = || ReplyError::Malformed(line.chars().take(80).collect());
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(malformed());
        }
        let code: u16 = line[..3].parse().map_err(|_| malformed())?;
        if !(200..600).contains(&code) || self.code.is_some_and(|c| c != code) {
            return Err(malformed());
        }
        self.code = Some(code);
        let (last, text) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(malformed()),
        };
        // Control characters become spaces here, before the enhanced code
        // is looked for, as Reply would do after: otherwise a reply with a
        // tab after its code would read back differently from how it was
        // first read.
        self.lines
            .push(crate::reply::sanitize(text.to_owned().into()).into_owned());
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(build(code, lines)))
    }
}

/// Keeps a leading enhanced status code of a one-line reply as such, so
/// that `Reply::enhanced_code` works on what a server said.
fn build(code: u16, lines: Vec<String>) -> Reply {
    if let [only] = lines.as_slice()
        && let Some((enhanced, rest)) = split_enhanced(only, code)
    {
        return Reply::enhanced(code, enhanced, rest.to_owned());
    }
    Reply::multiline(code, lines)
}

fn split_enhanced(text: &str, code: u16) -> Option<(EnhancedCode, &str)> {
    let (head, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut parts = head.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || u16::from(class) != code / 100 {
        return None;
    }
    Some((EnhancedCode::new(class, subject, detail), rest))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_control_character_after_the_code_reads_back_the_same() {
        // Found by the reply_parser fuzz check.
        let first = ReplyParser::new()
            .line("451 4.3.0\t thyrd")
            .unwrap()
            .unwrap();
        let wire = String::from_utf8(first.to_bytes()).unwrap();
        let again = ReplyParser::new().line(wire.trim_end()).unwrap().unwrap();
        assert_eq!(again, first);
    }

    use super::*;

    #[test]
    fn one_and_multi_line_replies() {
        let mut p = ReplyParser::new();
        let r = p.line("250 2.1.5 Ok").unwrap().unwrap();
        assert_eq!(r.code(), 250);
        assert_eq!(r.enhanced_code(), Some(EnhancedCode::new(2, 1, 5)));
        assert_eq!(r.text(), "Ok");
        assert_eq!(p.line("250-mx.test").unwrap(), None);
        assert_eq!(p.line("250-PIPELINING").unwrap(), None);
        let r = p.line("250 CHUNKING").unwrap().unwrap();
        assert_eq!(
            r.lines().collect::<Vec<_>>(),
            ["mx.test", "PIPELINING", "CHUNKING"]
        );
        let r = p.line("354").unwrap().unwrap();
        assert_eq!(r.code(), 354);
        // A 4xx text that starts with a 5.x.x code is not an enhanced code.
        let r = p.line("451 5.0.0 odd").unwrap().unwrap();
        assert_eq!(r.enhanced_code(), None);
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in ["", "25", "abc", "2500 x", "250_x", "999 x", "100 x"] {
            assert!(ReplyParser::new().line(bad).is_err(), "{bad:?}");
        }
        let mut p = ReplyParser::new();
        p.line("250-a").unwrap();
        assert!(p.line("251 b").is_err(), "code changed mid-reply");
    }
}
