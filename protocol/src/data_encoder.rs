//! The sending side of DATA: RFC 5321 §4.5.2 transparency and the end of
//! data, applied to content as it is read, chunk by chunk.
//!
//! Content is stored as canonical CRLF text, but whatever a store holds (a
//! spool written before stray CR and LF were normalised on receipt, a
//! message from a local program), nothing but CRLF leaves as a line end
//! (RFC 5321 §2.3.8): a bare LF is sent as CRLF and a bare CR as a space,
//! so no byte sequence can end the data early at a receiver that is lax
//! about line ends (outbound SMTP smuggling). A CR at the end of one chunk
//! is decided by the first octet of the next.

/// Dot-stuffs content for DATA, one chunk at a time.
#[derive(Debug, Clone)]
pub struct DataEncoder {
    /// The next octet starts a line.
    line_start: bool,
    /// The last chunk ended in a CR, not yet known to be part of CRLF.
    pending_cr: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataEncoder {
    /// An encoder at the start of the content.
    pub fn new() -> Self {
        Self {
            line_start: true,
            pending_cr: false,
        }
    }

    /// Appends `chunk`, dot-stuffed, to `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                out.extend_from_slice(b"\r\n");
                self.line_start = true;
                rest = &rest[1..];
            } else {
                out.push(b' ');
            }
        }
        out.reserve(rest.len() + rest.len() / 64);
        while !rest.is_empty() {
            if self.line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            let Some(i) = memchr::memchr2(b'\r', b'\n', rest) else {
                out.extend_from_slice(rest);
                self.line_start = false;
                break;
            };
            out.extend_from_slice(&rest[..i]);
            match (rest[i], rest.get(i + 1)) {
                (b'\r', None) => {
                    self.pending_cr = true;
                    self.line_start = false;
                    rest = &[];
                }
                (b'\r', Some(b'\n')) => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    rest = &rest[i + 2..];
                }
                (b'\r', Some(_)) => {
                    out.push(b' ');
                    self.line_start = false;
                    rest = &rest[i + 1..];
                }
                _ => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    rest = &rest[i + 1..];
                }
            }
        }
    }

    /// Appends the end of data to `out`: a line end for a last line
    /// without one, then `.` CRLF.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b' ');
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }

    /// `content` dot-stuffed in one piece, with the end of data.
    pub fn encode_all(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
        let mut encoder = Self::new();
        encoder.encode(content, &mut out);
        encoder.finish(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::DataEncoder;

    #[test]
    fn dot_stuffing_and_end_of_data() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"no newline", b"no newline\r\n.\r\n"),
            (b"", b".\r\n"),
            (
                b"x\r.\rMAIL FROM:<e@x>\r\n",
                b"x . MAIL FROM:<e@x>\r\n.\r\n",
            ),
            (b"a\n.\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\r\n.\r", b"a\r\n.. \r\n.\r\n"),
            (b"a\r", b"a \r\n.\r\n"),
            (b"\r\n\r\n.\r\n.", b"\r\n\r\n..\r\n..\r\n.\r\n"),
        ];
        for (content, sent) in cases {
            assert_eq!(
                DataEncoder::encode_all(content),
                *sent,
                "{:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    #[test]
    fn every_split_into_chunks_sends_the_same() {
        let content: &[u8] = b"a\r\n.b\r\rc\n.\r\n..\r\nend\r";
        let whole = DataEncoder::encode_all(content);
        for cut in 0..=content.len() {
            for cut2 in cut..=content.len() {
                let mut out = Vec::new();
                let mut encoder = DataEncoder::new();
                encoder.encode(&content[..cut], &mut out);
                encoder.encode(&content[cut..cut2], &mut out);
                encoder.encode(&content[cut2..], &mut out);
                encoder.finish(&mut out);
                assert_eq!(out, whole, "cut at {cut} and {cut2}");
            }
        }
    }
}
