//! `BDAT` chunk framing (RFC 3030).

use crate::content::{ContentIssues, LineScanner, StrayNormalizer};

/// Receives the octets of `BDAT` chunks for one message.
///
/// BDAT content is counted, not delimited: no dot-stuffing and no end
/// marker. It is stored as canonical CRLF text, like DATA content: a bare
/// LF becomes CRLF and a bare CR a space (and both are flagged, for
/// `smtpd_forbid_bare_newline = reject`). The session must always consume every announced octet, even
/// for a chunk it refuses, or the stream falls out of step; with `out` set
/// to `None`, [`BdatDecoder::feed`] skips the octets without storing them.
#[derive(Debug, Clone)]
pub struct BdatDecoder {
    max_size: u64,
    line_limit: usize,
    remaining: u64,
    scanner: LineScanner,
    normalizer: StrayNormalizer,
    issues: ContentIssues,
}

impl BdatDecoder {
    /// A decoder for one message, storing at most `max_size` octets
    /// (0 = no limit).
    pub fn new(max_size: u64, line_limit: usize) -> Self {
        Self {
            max_size,
            line_limit,
            remaining: 0,
            scanner: LineScanner::default(),
            normalizer: StrayNormalizer::default(),
            issues: ContentIssues::default(),
        }
    }

    /// Starts a chunk of `size` octets.
    pub fn start_chunk(&mut self, size: u64) {
        self.remaining = size;
    }

    /// Octets of the current chunk still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// What was found in the content so far.
    pub fn issues(&self) -> ContentIssues {
        self.issues
    }

    /// Takes the current chunk's octets from the front of `input`; returns
    /// how many were used. The chunk is complete when
    /// [`remaining`](Self::remaining) is 0.
    pub fn feed(&mut self, input: &[u8], out: Option<&mut Vec<u8>>) -> usize {
        let take = input
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let chunk = &input[..take];
        self.remaining -= take as u64;
        if let Some(out) = out {
            self.scanner.scan(chunk, self.line_limit, &mut self.issues);
            self.normalizer
                .store(chunk, self.max_size, &mut self.issues, out);
        }
        take
    }

    /// The last chunk is complete: stores what was held back (a CR at the
    /// very end is bare). Call before reading [`issues`](Self::issues) for
    /// the message.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.normalizer.finish(self.max_size, &mut self.issues, out);
    }
}
