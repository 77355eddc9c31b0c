//! A small seeded mutator for the stable tests: flips, deletes, repeats
//! and splices in a target's tokens, as a fuzzer's havoc stage does,
//! without coverage guidance. Deterministic, so a failing seed repeats.

/// xorshift64*: a repeatable stream is all this needs.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (never stuck at zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes that break parsers more often than random ones.
const SPECIAL: &[u8] = b"\0\r\n\t \"\\.:<>@[]{},=-+0129\x7f\x80\xc3\xff";

/// `seed` changed by a few random edits, at most `max_len` long.
pub fn mutate(rng: &mut Rng, seed: &[u8], tokens: &[&[u8]], max_len: usize) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = SPECIAL[rng.below(SPECIAL.len())],
            2 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !tokens.is_empty() => {
                let token = tokens[rng.below(tokens.len())];
                out.splice(at..at, token.iter().copied());
            }
            4 => {
                // A run, sometimes past a line or field limit.
                let byte = SPECIAL[rng.below(SPECIAL.len())];
                let len = [1, 7, 100, 1000, 70_000][rng.below(5)];
                out.splice(at..at, std::iter::repeat_n(byte, len));
            }
            5 if at < out.len() => {
                // Repeat a slice of the input itself.
                let end = (at + 1 + rng.below(64)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(
                    end..end,
                    piece
                        .iter()
                        .copied()
                        .cycle()
                        .take(piece.len() * (1 + rng.below(4))),
                );
            }
            _ => out.truncate(at),
        }
    }
    out.truncate(max_len);
    out
}
