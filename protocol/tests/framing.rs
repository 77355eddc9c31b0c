//! Table tests for command framing, DATA decoding and BDAT chunks.

use towerpost_protocol::{
    BareNewline, BdatDecoder, CommandReceiver, DataDecoder, DataProgress, Frame,
};

/// Feeds `input` to a fresh decoder in pieces of `step` octets, the way a
/// socket delivers it, and returns (stored content, octets left after the
/// end of data, done).
fn decode(input: &[u8], step: usize) -> (Vec<u8>, Vec<u8>, bool) {
    let mut decoder = DataDecoder::new(0, 1000);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut fed = 0;
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let DataProgress { consumed, done } = decoder.feed(&buf, &mut out);
        buf.drain(..consumed);
        if done {
            buf.extend_from_slice(&input[fed..]);
            return (out, buf, true);
        }
    }
    (out, buf, false)
}

/// (input, stored content, remainder after the end, done)
type DataCase = (&'static [u8], &'static [u8], &'static [u8], bool);

#[test]
fn only_crlf_dot_crlf_ends_data() {
    // (input, stored content, remainder after the end, done)
    let table: &[DataCase] = &[
        (
            b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
            b"Subject: x\r\n\r\nbody\r\n",
            b"QUIT\r\n",
            true,
        ),
        (b".\r\n", b"", b"", true),
        (b"..hidden\r\n.\r\n", b".hidden\r\n", b"", true),
        (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", b"", true),
        // The SMTP smuggling sequences: none of them ends the message, and
        // the command that follows them stays content.
        (
            b"a\n.\nMAIL FROM:<x@y.test>\r\n",
            b"a\r\nMAIL FROM:<x@y.test>\r\n",
            b"",
            false,
        ),
        (
            b"a\n.\r\nMAIL FROM:<x@y.test>\r\n",
            b"a\r\nMAIL FROM:<x@y.test>\r\n",
            b"",
            false,
        ),
        (
            b"a\r\n.\nMAIL FROM:<x@y.test>\r\n",
            b"a\r\nMAIL FROM:<x@y.test>\r\n",
            b"",
            false,
        ),
        // A bare CR is content, stored as a space: nothing stored can be
        // taken for a line end by a next hop.
        (
            b"a\r.\rMAIL FROM:<x@y.test>\r\n",
            b"a . MAIL FROM:<x@y.test>\r\n",
            b"",
            false,
        ),
        // A line that starts with a dot and has more is unstuffed.
        (
            b"a\r\n.\rMAIL FROM:<x@y.test>\r\n",
            b"a\r\n MAIL FROM:<x@y.test>\r\n",
            b"",
            false,
        ),
        (b"a\r\n.\r\r\n", b"a\r\n \r\n", b"", false),
        (b"a\r\r\n.\r\n", b"a \r\n", b"", true),
    ];
    for (input, content, rest, done) in table {
        for step in [1, 2, 3, 7, 4096] {
            let (got, got_rest, got_done) = decode(input, step);
            assert_eq!(
                (got.as_slice(), got_rest.as_slice(), got_done),
                (*content, *rest, *done),
                "input {:?} in steps of {step}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn smuggled_sequence_followed_by_real_end_is_one_message() {
    let input = b"Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\n\r\nspoofed\r\n.\r\n";
    let (content, rest, done) = decode(input, 5);
    assert!(done);
    assert!(rest.is_empty());
    assert!(content.windows(7).any(|w| w == b"spoofed"));
}

#[test]
fn bare_lf_is_normalized_or_rejected() {
    let mut d = DataDecoder::new(0, 1000);
    let mut out = Vec::new();
    let p = d.feed(b"line one\nline two\r\n.\r\n", &mut out);
    assert!(p.done);
    assert_eq!(out, b"line one\r\nline two\r\n");
    let issues = d.issues();
    assert!(issues.bare_lf);
    assert!(
        issues
            .rejection(BareNewline::Normalize, 1000, "mx.test")
            .is_none()
    );
    assert_eq!(
        issues
            .rejection(BareNewline::Reject, 1000, "mx.test")
            .unwrap()
            .to_string(),
        "550 5.5.2 mx.test Error: bare <LF> received"
    );
}

#[test]
fn size_limit_stops_storing_but_keeps_reading_to_the_end() {
    let mut d = DataDecoder::new(10, 1000);
    let mut out = Vec::new();
    let p = d.feed(b"0123456789abcdef\r\nmore\r\n.\r\nNOOP\r\n", &mut out);
    assert!(p.done);
    assert_eq!(
        &b"0123456789abcdef\r\nmore\r\n.\r\nNOOP\r\n"[p.consumed..],
        b"NOOP\r\n"
    );
    assert!(out.len() <= 10);
    assert_eq!(
        d.issues()
            .rejection(BareNewline::Normalize, 1000, "mx")
            .unwrap()
            .to_string(),
        "552 5.3.4 Error: message file too big"
    );
}

#[test]
fn long_lines_and_nul_are_flagged_with_bounded_buffering() {
    let mut d = DataDecoder::new(0, 1000);
    let mut out = Vec::new();
    let mut input = vec![b'x'; 5000];
    // Without a line end the decoder still takes what it cannot need to
    // look at again, so the caller's buffer never grows past a line.
    let p = d.feed(&input, &mut out);
    assert_eq!(p.consumed, 5000);
    input.clear();
    input.extend_from_slice(b"\r\nnul\0here\r\n.\r\n");
    let p = d.feed(&input, &mut out);
    assert!(p.done);
    let issues = d.issues();
    assert!(issues.long_line && issues.nul);
    assert_eq!(out.len(), 5000 + 2 + 10);
    // Exactly 1000 octets including CRLF is fine.
    let mut d = DataDecoder::new(0, 1000);
    let mut line = vec![b'y'; 998];
    line.extend_from_slice(b"\r\n.\r\n");
    assert!(d.feed(&line, &mut Vec::new()).done);
    assert!(!d.issues().long_line);
}

#[test]
fn command_framing() {
    let mut r = CommandReceiver::new(512);
    assert_eq!(r.frame(b"NOOP"), Frame::Incomplete { consumed: 0 });
    assert_eq!(
        r.frame(b"NOOP\r\nQUIT\r\n"),
        Frame::Line {
            len: 4,
            consumed: 6,
            bare_lf: false
        }
    );
    assert_eq!(
        r.frame(b"NOOP\nQUIT"),
        Frame::Line {
            len: 4,
            consumed: 5,
            bare_lf: true
        }
    );
    // 510 characters plus CRLF is the longest allowed line.
    let mut ok = vec![b'a'; 510];
    ok.extend_from_slice(b"\r\n");
    assert!(matches!(r.frame(&ok), Frame::Line { len: 510, .. }));
    let mut long = vec![b'a'; 511];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(r.frame(&long), Frame::TooLong { consumed: 513 });
}

#[test]
fn overlong_command_is_skipped_without_buffering() {
    let mut r = CommandReceiver::new(512);
    let junk = vec![b'z'; 4000];
    assert_eq!(r.frame(&junk), Frame::Incomplete { consumed: 4000 });
    assert!(r.is_discarding());
    assert_eq!(r.frame(b"zzz\r\nNOOP\r\n"), Frame::TooLong { consumed: 5 });
    assert!(matches!(r.frame(b"NOOP\r\n"), Frame::Line { len: 4, .. }));
}

#[test]
fn bdat_takes_exactly_the_announced_octets() {
    let mut d = BdatDecoder::new(0, 1000);
    let mut out = Vec::new();
    d.start_chunk(5);
    assert_eq!(d.feed(b"abc", Some(&mut out)), 3);
    assert_eq!(d.feed(b"de\r\nBDAT", Some(&mut out)), 2);
    assert_eq!(d.remaining(), 0);
    assert_eq!(out, b"abcde");
    d.start_chunk(4);
    assert_eq!(d.feed(b"x\ny\nQUIT", None), 4);
    assert_eq!(out, b"abcde", "a skipped chunk is not stored");
    d.start_chunk(3);
    d.feed(b"q\nr", Some(&mut out));
    assert!(d.issues().bare_lf);
}

/// Feeds BDAT chunks (`chunks`) and returns what is stored and the issues.
fn bdat(chunks: &[&[u8]]) -> (Vec<u8>, towerpost_protocol::ContentIssues) {
    let mut d = BdatDecoder::new(0, 1000);
    let mut out = Vec::new();
    for chunk in chunks {
        d.start_chunk(chunk.len() as u64);
        assert_eq!(d.feed(chunk, Some(&mut out)), chunk.len());
    }
    d.finish(&mut out);
    (out, d.issues())
}

#[test]
fn bdat_content_is_stored_as_canonical_crlf_text() {
    // (chunks, stored, bare LF seen, bare CR seen)
    type Case = (&'static [&'static [u8]], &'static [u8], bool, bool);
    let table: &[Case] = &[
        (&[b"a\r\nb\r\n"], b"a\r\nb\r\n", false, false),
        (&[b"a\r", b"\nb\r\n"], b"a\r\nb\r\n", false, false),
        (
            &[b"x\r.\rMAIL FROM:<e@x>\r\n"],
            b"x . MAIL FROM:<e@x>\r\n",
            false,
            true,
        ),
        (&[b"a\n.\nb"], b"a\r\n.\r\nb", true, false),
        (&[b"a\r\n.\nb"], b"a\r\n.\r\nb", true, false),
        (&[b"a\r"], b"a ", false, true),
        (&[b"a\r", b"b"], b"a b", false, true),
        (&[b"a\r", b"\r", b"\n"], b"a \r\n", false, true),
        (&[b"\r\r\r\n"], b"  \r\n", false, true),
    ];
    for (chunks, want, lf, cr) in table {
        let (got, issues) = bdat(chunks);
        assert_eq!(
            (got.as_slice(), issues.bare_lf, issues.bare_cr),
            (*want, *lf, *cr),
            "{chunks:?}"
        );
    }
}

#[test]
fn bare_cr_is_rejected_only_under_reject() {
    let mut d = DataDecoder::new(0, 1000);
    let mut out = Vec::new();
    assert!(d.feed(b"one\rtwo\r\n.\r\n", &mut out).done);
    assert_eq!(out, b"one two\r\n");
    let issues = d.issues();
    assert!(issues.bare_cr && !issues.bare_lf);
    assert!(
        issues
            .rejection(BareNewline::Normalize, 1000, "mx.test")
            .is_none()
    );
    assert_eq!(
        issues
            .rejection(BareNewline::Reject, 1000, "mx.test")
            .unwrap()
            .to_string(),
        "550 5.5.2 mx.test Error: bare <CR> received"
    );
}
