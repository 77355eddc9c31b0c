//! What a message's content may and may not contain, shared by DATA and BDAT.

use crate::reply::{EnhancedCode, Reply};

/// Postfix's `smtpd_forbid_bare_newline`: what to do with a line that ends
/// in a bare LF instead of CRLF.
///
/// There is deliberately no `no`: treating a bare LF as a line end in DATA
/// is exactly what SMTP smuggling (CVE-2023-51764) exploits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareNewline {
    /// Accept the line as if it ended in CRLF (stored with CRLF); only
    /// `<CRLF>.<CRLF>` ends DATA, and a lone `.` next to a bare LF is dropped.
    #[default]
    Normalize,
    /// Refuse the message with `550 5.5.2 … bare <LF> received` once the
    /// client has sent all of it.
    Reject,
}

/// Problems found in a message's content while it was received. The
/// session reads the whole message anyway (to stay in sync with the client)
/// and then answers with [`ContentIssues::rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContentIssues {
    /// Octets of content seen, after dot-unstuffing.
    pub size: u64,
    /// The content is larger than the size limit; only the part up to the
    /// limit was stored.
    pub too_big: bool,
    /// A line ended in a bare LF.
    pub bare_lf: bool,
    /// A CR not followed by LF was found (stored as a space).
    pub bare_cr: bool,
    /// A line was longer than the text line limit.
    pub long_line: bool,
    /// The content contains a NUL octet.
    pub nul: bool,
}

impl ContentIssues {
    /// The reply refusing the message, or `None` when it may be queued.
    ///
    /// `myhostname` goes into the bare-LF text, as Postfix writes it.
    pub fn rejection(
        &self,
        bare_newline: BareNewline,
        line_limit: usize,
        myhostname: &str,
    ) -> Option<Reply> {
        let e = EnhancedCode::new;
        if self.too_big {
            return Some(Reply::enhanced(
                552,
                e(5, 3, 4),
                "Error: message file too big",
            ));
        }
        if self.bare_lf && bare_newline == BareNewline::Reject {
            return Some(Reply::enhanced(
                550,
                e(5, 5, 2),
                format!("{myhostname} Error: bare <LF> received"),
            ));
        }
        if self.bare_cr && bare_newline == BareNewline::Reject {
            return Some(Reply::enhanced(
                550,
                e(5, 5, 2),
                format!("{myhostname} Error: bare <CR> received"),
            ));
        }
        if self.long_line {
            return Some(Reply::enhanced(
                554,
                e(5, 6, 0),
                format!("Error: message has a line longer than {line_limit} octets"),
            ));
        }
        if self.nul {
            return Some(Reply::enhanced(
                554,
                e(5, 6, 0),
                "Error: message contains NUL characters",
            ));
        }
        None
    }

    /// Stores the text of a line (no line end): a CR in it is bare, and
    /// becomes a space, as Postfix's `cleanup_replace_stray_cr_lf` does, so
    /// that no stored byte sequence can read as a line end to a next hop.
    pub(crate) fn store_text(&mut self, text: &[u8], max_size: u64, out: &mut Vec<u8>) {
        let mut rest = text;
        while let Some(i) = memchr::memchr(b'\r', rest) {
            self.bare_cr = true;
            self.store(&rest[..i], max_size, out);
            self.store(b" ", max_size, out);
            rest = &rest[i + 1..];
        }
        self.store(rest, max_size, out);
    }

    /// Counts `bytes` of content and stores them in `out` unless the size
    /// limit (`max_size`, 0 = unlimited) has been passed.
    pub(crate) fn store(&mut self, bytes: &[u8], max_size: u64, out: &mut Vec<u8>) {
        if memchr::memchr(0, bytes).is_some() {
            self.nul = true;
        }
        self.size += bytes.len() as u64;
        if max_size != 0 && self.size > max_size {
            self.too_big = true;
        }
        if !self.too_big {
            out.extend_from_slice(bytes);
        }
    }
}

/// Line bookkeeping for content that is not line-framed by the protocol
/// (BDAT chunks): finds bare LFs and long lines across chunk boundaries.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineScanner {
    line_len: usize,
    prev: u8,
}

impl LineScanner {
    pub(crate) fn scan(&mut self, bytes: &[u8], line_limit: usize, issues: &mut ContentIssues) {
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let before = if i > 0 { rest[i - 1] } else { self.prev };
            if before != b'\r' {
                issues.bare_lf = true;
            }
            // The line's octets including its CR LF.
            if self.line_len + i + 1 > line_limit {
                issues.long_line = true;
            }
            self.line_len = 0;
            self.prev = b'\n';
            rest = &rest[i + 1..];
        }
        if let Some(&last) = rest.last() {
            self.line_len += rest.len();
            self.prev = last;
            if self.line_len + 1 > line_limit {
                issues.long_line = true;
            }
        }
    }
}

/// Turns content that is not line-framed (BDAT chunks) into canonical
/// CRLF text as it is stored: a bare LF becomes CRLF and a bare CR a
/// space, across chunk boundaries (a CR that ends a chunk waits for the
/// next one). So BDAT content is stored exactly as DATA content would be.
#[derive(Debug, Clone, Default)]
pub(crate) struct StrayNormalizer {
    pending_cr: bool,
}

impl StrayNormalizer {
    pub(crate) fn store(
        &mut self,
        bytes: &[u8],
        max_size: u64,
        issues: &mut ContentIssues,
        out: &mut Vec<u8>,
    ) {
        let mut rest = bytes;
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                issues.store(b"\r\n", max_size, out);
                rest = &rest[1..];
            } else {
                issues.bare_cr = true;
                issues.store(b" ", max_size, out);
            }
        }
        while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
            issues.store(&rest[..i], max_size, out);
            if rest[i] == b'\n' {
                // A bare LF (a CRLF's LF is consumed with its CR below).
                issues.store(b"\r\n", max_size, out);
                rest = &rest[i + 1..];
                continue;
            }
            match rest.get(i + 1) {
                Some(b'\n') => {
                    issues.store(b"\r\n", max_size, out);
                    rest = &rest[i + 2..];
                }
                Some(_) => {
                    issues.bare_cr = true;
                    issues.store(b" ", max_size, out);
                    rest = &rest[i + 1..];
                }
                None => {
                    self.pending_cr = true;
                    rest = &[];
                }
            }
        }
        issues.store(rest, max_size, out);
    }

    /// The content is complete: a CR left waiting was bare.
    pub(crate) fn finish(&mut self, max_size: u64, issues: &mut ContentIssues, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            issues.bare_cr = true;
            issues.store(b" ", max_size, out);
        }
    }
}
