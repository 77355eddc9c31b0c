//! SMTP replies (RFC 5321 §4.2) with RFC 2034 enhanced status codes.

use std::borrow::Cow;
use std::fmt;

/// An RFC 3463 enhanced status code such as `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// Class: 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// Subject (for example 7 = security or policy status).
    pub subject: u16,
    /// Detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An SMTP reply: a three-digit code, an optional enhanced status code and
/// one or more lines of text.
///
/// Rejections are values of this type: a policy layer that refuses a command
/// answers with a `Reply`, it does not fail. Text is sanitised when the reply
/// is built, so a client-supplied value (a domain echoed back, say) can never
/// smuggle a line break into the reply stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    lines: Vec<Cow<'static, str>>,
}

impl Reply {
    /// A one-line reply without an enhanced status code (greeting, EHLO,
    /// 354, and Postfix's ETRN replies, which carry none).
    pub fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            enhanced: None,
            lines: vec![sanitize(text.into())],
        }
    }

    /// A one-line reply with an enhanced status code.
    ///
    /// `code` and `enhanced` must agree in class (RFC 2034 §4); a mismatch
    /// is a programming error and is caught in debug builds.
    pub fn enhanced(code: u16, enhanced: EnhancedCode, text: impl Into<Cow<'static, str>>) -> Self {
        debug_assert_eq!(
            u16::from(enhanced.class),
            code / 100,
            "reply class mismatch"
        );
        Self {
            code,
            enhanced: Some(enhanced),
            lines: vec![sanitize(text.into())],
        }
    }

    /// A multi-line reply without enhanced codes (the EHLO reply).
    pub fn multiline<I, S>(code: u16, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'static, str>>,
    {
        let lines: Vec<_> = lines.into_iter().map(|l| sanitize(l.into())).collect();
        let lines = if lines.is_empty() {
            vec![Cow::Borrowed("")]
        } else {
            lines
        };
        Self {
            code,
            enhanced: None,
            lines,
        }
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, if the reply carries one.
    pub fn enhanced_code(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text lines, without code prefixes.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.as_ref())
    }

    /// The first line of text (what a log line quotes).
    pub fn text(&self) -> &str {
        &self.lines[0]
    }

    /// 2xx: the command was accepted.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: the server waits for more (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx or 5xx: the command failed.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// 4xx: a temporary failure.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 421 or 521: the server closes the connection after this reply.
    pub fn closes_connection(&self) -> bool {
        matches!(self.code, 421 | 521)
    }

    /// Appends the wire form (`250-first\r\n250 last\r\n`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(itoa3(self.code).as_slice());
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(e) = self.enhanced {
                out.extend_from_slice(e.to_string().as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    /// The reply as one line, as log lines quote it (`550 5.1.1 User unknown`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        for line in &self.lines {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

fn itoa3(code: u16) -> [u8; 3] {
    let code = code.min(999);
    [
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]
}

/// Replaces CR, LF and other control characters so that a reply line stays
/// one line on the wire whatever text was put into it.
pub(crate) fn sanitize(text: Cow<'static, str>) -> Cow<'static, str> {
    if text.chars().any(|c| c.is_control()) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_enhanced_single_line() {
        let r = Reply::enhanced(250, EnhancedCode::new(2, 0, 0), "Ok");
        assert_eq!(r.to_bytes(), b"250 2.0.0 Ok\r\n");
    }

    #[test]
    fn renders_multiline_with_dashes_until_the_last_line() {
        let r = Reply::multiline(250, ["mx.test", "PIPELINING", "CHUNKING"]);
        assert_eq!(
            r.to_bytes(),
            b"250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
        );
    }

    #[test]
    fn client_text_cannot_inject_a_line_break() {
        let r = Reply::new(459, "evil\r\n250 Ok: service unavailable");
        assert_eq!(r.to_bytes(), b"459 evil  250 Ok: service unavailable\r\n");
    }
}
