//! Command line framing.

/// What [`CommandReceiver::frame`] found at the front of the input buffer.
/// Every variant says how many octets the caller must drop from its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete line: `buf[..len]` is the command without its line ending.
    Line {
        /// Length of the command text.
        len: usize,
        /// Octets to drop from the buffer (the line and its ending).
        consumed: usize,
        /// The line ended in LF without CR.
        bare_lf: bool,
    },
    /// A line longer than the limit ended; answer `500 5.5.2 … line too long`.
    TooLong {
        /// Octets to drop from the buffer.
        consumed: usize,
    },
    /// No complete line yet: read more. `consumed` octets (the middle of an
    /// overlong line) can be dropped already, which keeps memory bounded.
    Incomplete {
        /// Octets to drop from the buffer.
        consumed: usize,
    },
}

/// Frames SMTP command lines out of a byte stream.
///
/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including the
/// verb and CRLF. A longer line is skipped, never buffered, and reported as
/// [`Frame::TooLong`] once it ends.
#[derive(Debug, Clone)]
pub struct CommandReceiver {
    limit: usize,
    discarding: bool,
}

impl Default for CommandReceiver {
    fn default() -> Self {
        Self::new(512)
    }
}

impl CommandReceiver {
    /// A receiver for lines of at most `limit` octets including CRLF
    /// (at least 512).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(512),
            discarding: false,
        }
    }

    /// Looks for the next command line at the front of `buf`.
    pub fn frame(&mut self, buf: &[u8]) -> Frame {
        if self.discarding {
            return match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    self.discarding = false;
                    Frame::TooLong { consumed: i + 1 }
                }
                None => Frame::Incomplete {
                    consumed: buf.len(),
                },
            };
        }
        let window = &buf[..buf.len().min(self.limit)];
        if let Some(i) = memchr::memchr(b'\n', window) {
            let bare_lf = i == 0 || buf[i - 1] != b'\r';
            return Frame::Line {
                len: if bare_lf { i } else { i - 1 },
                consumed: i + 1,
                bare_lf,
            };
        }
        if buf.len() < self.limit {
            return Frame::Incomplete { consumed: 0 };
        }
        match memchr::memchr(b'\n', &buf[self.limit..]) {
            Some(i) => Frame::TooLong {
                consumed: self.limit + i + 1,
            },
            None => {
                self.discarding = true;
                Frame::Incomplete {
                    consumed: buf.len(),
                }
            }
        }
    }

    /// Whether the receiver is in the middle of skipping an overlong line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }
}
