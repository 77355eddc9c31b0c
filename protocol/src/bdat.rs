//! `BDAT` chunk framing (RFC 3030).

use crate::content::{ContentIssues, LineScanner};

/// Receives the octets of `BDAT` chunks for one message.
///
/// BDAT content is counted, not delimited: no dot-stuffing and no end
/// marker. The session must always consume every announced octet, even
/// for a chunk it refuses, or the stream falls out of step; with `out` set
/// to `None`, [`BdatDecoder::feed`] skips the octets without storing them.
#[derive(Debug, Clone)]
pub struct BdatDecoder {
    max_size: u64,
    line_limit: usize,
    remaining: u64,
    scanner: LineScanner,
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
            self.issues.store(chunk, self.max_size, out);
        }
        take
    }
}
