//! Deterministic pseudo-random inputs, shaped like SMTP sessions, through
//! the framer, the parser and the decoders: the invariants the server
//! relies on, checked on every test run (the fuzz target in `fuzz/` checks
//! the same ones with coverage guidance, on nightly).

use towerpost_protocol::{BdatDecoder, Command, CommandReceiver, DataDecoder, Frame};

/// xorshift64*: small, deterministic, good enough to shuffle tokens.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"..",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\0",
    b"MAIL FROM:<a@b.test>",
    b"RCPT TO:<c@d.test>",
    b"DATA",
    b"BDAT 5",
    b"BDAT 0 LAST",
    b"EHLO x",
    b"NOOP",
    b"<",
    b">",
    b" ",
    b"SIZE=99999999999999999999",
    b"\xff\xfe",
    b"j\xc3\xb6rg@b\xc3\xbccher.test",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(200) {
        if rng.below(10) == 0 {
            // A run of one byte, sometimes longer than any line limit.
            let len = rng.below(1500);
            out.extend(std::iter::repeat_n(b"a.\r\n\0z"[rng.below(6)], len));
        } else {
            out.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
        }
    }
    out
}

#[test]
fn framing_never_panics_and_keeps_buffers_bounded() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let input = random_input(&mut rng);
        let step = 1 + rng.below(64);
        let mut receiver = CommandReceiver::new(512);
        let mut buf = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match receiver.frame(&buf) {
                    Frame::Line { len, consumed, .. } => {
                        assert!(len < consumed && consumed <= buf.len());
                        if let Err(e) = Command::parse(&buf[..len]) {
                            let wire = e.reply().to_bytes();
                            assert!(wire.ends_with(b"\r\n"));
                            assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
                        }
                        buf.drain(..consumed);
                    }
                    Frame::TooLong { consumed } => {
                        buf.drain(..consumed);
                    }
                    Frame::Incomplete { consumed } => {
                        buf.drain(..consumed);
                        break;
                    }
                }
            }
            assert!(buf.len() < 512, "command buffer grew to {}", buf.len());
        }
    }
}

#[test]
fn data_ends_only_at_crlf_dot_crlf() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..3000 {
        let input = random_input(&mut rng);
        let step = 1 + rng.below(64);
        let mut decoder = DataDecoder::new(1 << 20, 1000);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut end = None;
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            fed += piece.len();
            let p = decoder.feed(&buf, &mut out);
            assert!(p.consumed <= buf.len());
            buf.drain(..p.consumed);
            if p.done {
                end = Some(fed - buf.len());
                break;
            }
            assert!(buf.len() < 1000, "data buffer grew to {}", buf.len());
        }
        // The decoder stops right after the first "\r\n.\r\n" that starts
        // a line (the data itself starts at a line start).
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(&input);
        let first = framed
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .map(|i| i + 5 - 2);
        match end {
            Some(end) => {
                let end_marker = &input[end - 3..end];
                assert_eq!(end_marker, b".\r\n");
                assert!(first.is_some_and(|f| f <= end), "ended without CRLF.CRLF");
            }
            None => assert!(
                first.is_none() || fed < input.len(),
                "missed the end of data"
            ),
        }
    }
}

#[test]
fn bdat_consumes_exactly_the_announced_octets() {
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    for _ in 0..1000 {
        let input = random_input(&mut rng);
        let size = rng.below(input.len() + 1) as u64;
        let mut d = BdatDecoder::new(64, 1000);
        d.start_chunk(size);
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(1 + rng.below(64)) {
            used += d.feed(piece, Some(&mut out));
            if d.remaining() == 0 {
                break;
            }
        }
        assert_eq!(used as u64, size);
        assert!(out.len() <= 64, "stored past the size limit");
        assert_eq!(d.issues().too_big, size > 64);
    }
}
