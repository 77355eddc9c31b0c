//! `DATA` content decoding (RFC 5321 §4.1.1.4, §4.5.2).

use crate::content::ContentIssues;

/// Result of one [`DataDecoder::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataProgress {
    /// Octets of the input that were used; the caller drops them and keeps
    /// the rest (the start of a line not yet complete, or, once `done`, the
    /// client's next command).
    pub consumed: usize,
    /// The end-of-data line was seen.
    pub done: bool,
}

/// Decodes the content that follows `354`: removes dot-stuffing, stores
/// lines with CRLF endings, and stops at the end-of-data line.
///
/// Only `<CRLF>.<CRLF>` ends the data: a line consisting of `.` ends it only
/// when both that line and the line before it ended in CRLF. A `.` line next
/// to a bare LF (`<LF>.<LF>`, `<LF>.<CR><LF>`, `<CR><LF>.<LF>`) is dropped,
/// as Postfix does with `smtpd_forbid_bare_newline = normalize`, and a bare
/// CR is content, stored as a space (so `<CR>.<CR>` is content, and can
/// never reach a next hop as anything a receiver might take for a line
/// end). This is what defeats SMTP smuggling: no byte sequence other than
/// the standard one can end a message and start a second one, and what is
/// stored is canonical CRLF text.
///
/// Memory is bounded: at most one line limit of input stays unconsumed, and
/// content past `max_size` is counted but not stored.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    max_size: u64,
    line_limit: usize,
    prev_crlf: bool,
    mid_line: bool,
    line_len: usize,
    issues: ContentIssues,
}

impl DataDecoder {
    /// A decoder storing at most `max_size` octets (0 = no limit) and
    /// flagging lines longer than `line_limit` octets including CRLF.
    pub fn new(max_size: u64, line_limit: usize) -> Self {
        Self {
            max_size,
            line_limit,
            // The DATA command line itself ended in CRLF.
            prev_crlf: true,
            mid_line: false,
            line_len: 0,
            issues: ContentIssues::default(),
        }
    }

    /// What was found in the content so far.
    pub fn issues(&self) -> ContentIssues {
        self.issues
    }

    /// Decodes as much of `input` as possible into `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> DataProgress {
        let mut pos = 0;
        while pos < input.len() {
            let Some(offset) = memchr::memchr(b'\n', &input[pos..]) else {
                return DataProgress {
                    consumed: pos + self.feed_partial(&input[pos..], out),
                    done: false,
                };
            };
            let lf = pos + offset;
            let crlf = lf > pos && input[lf - 1] == b'\r';
            let text = &input[pos..if crlf { lf - 1 } else { lf }];
            pos = lf + 1;
            let starts_line = !self.mid_line;
            let total_len = self.line_len + text.len() + if crlf { 2 } else { 1 };
            self.mid_line = false;
            self.line_len = 0;
            if !crlf {
                self.issues.bare_lf = true;
            }
            if starts_line && text == b"." {
                if crlf && self.prev_crlf {
                    return DataProgress {
                        consumed: pos,
                        done: true,
                    };
                }
                // A smuggling-shaped end of data: not an end, not content.
                self.issues.bare_lf = true;
                self.prev_crlf = crlf;
                continue;
            }
            self.prev_crlf = crlf;
            if total_len > self.line_limit {
                self.issues.long_line = true;
            }
            let text = if starts_line {
                text.strip_prefix(b".").unwrap_or(text)
            } else {
                text
            };
            self.issues.store_text(text, self.max_size, out);
            self.issues.store(b"\r\n", self.max_size, out);
        }
        DataProgress {
            consumed: pos,
            done: false,
        }
    }

    /// Handles input without a line end. A short piece is left for the
    /// next call (it may be the `.` line); a piece that is already longer
    /// than any allowed line is stored now, keeping a trailing CR back in
    /// case the LF follows. Returns the octets used.
    fn feed_partial(&mut self, rest: &[u8], out: &mut Vec<u8>) -> usize {
        if !self.mid_line && rest.len() < self.line_limit {
            return 0;
        }
        let take = if rest.last() == Some(&b'\r') {
            rest.len() - 1
        } else {
            rest.len()
        };
        if take == 0 {
            return 0;
        }
        let mut chunk = &rest[..take];
        if !self.mid_line {
            chunk = chunk.strip_prefix(b".").unwrap_or(chunk);
        }
        self.mid_line = true;
        self.line_len += take;
        if self.line_len > self.line_limit {
            self.issues.long_line = true;
        }
        self.issues.store_text(chunk, self.max_size, out);
        take
    }
}
