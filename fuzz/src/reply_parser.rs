//! The SMTP client's reply parser, fed the lines a next hop might send:
//! no panic, a reply only with a code in 200–599 and at most
//! [`MAX_REPLY_LINES`] lines, and a reply reads back as itself from its
//! own wire form.

use towerpost_protocol::{MAX_REPLY_LINES, Reply, ReplyParser};

/// What replies are made of.
pub const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"250-",
    b"250 ",
    b"220 mx.test ESMTP\r\n",
    b"250-PIPELINING\r\n250-SIZE 10240000\r\n250 CHUNKING\r\n",
    b"2.0.0 ",
    b"5.7.1 ",
    b"4.3.2",
    b"02.00.000 ",
    b"+1.-2.3",
    b"999",
    b"599 ",
    b"199-",
    b"\xc3\xa9",
    b"\xff",
];

/// Panics when an invariant does not hold for `data`.
pub fn check(data: &[u8]) {
    let mut parser = ReplyParser::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = String::from_utf8_lossy(line);
        match parser.line(&line) {
            Ok(None) => {}
            Ok(Some(reply)) => {
                assert!((200..600).contains(&reply.code()), "{reply:?}");
                assert!(reply.lines().count() <= MAX_REPLY_LINES);
                assert_eq!(read_back(&reply), reply);
            }
            Err(_) => parser = ReplyParser::new(),
        }
    }
}

fn read_back(reply: &Reply) -> Reply {
    let wire = reply.to_bytes();
    let text = String::from_utf8(wire).expect("a reply is written as UTF-8");
    let mut parser = ReplyParser::new();
    let mut lines = text.split_terminator("\r\n");
    loop {
        let line = lines.next().expect("the wire form ends with a last line");
        match parser.line(line) {
            Ok(Some(again)) => {
                assert!(lines.next().is_none(), "lines after the last one: {text:?}");
                return again;
            }
            Ok(None) => {}
            Err(e) => panic!("{text:?} does not parse back: {e}"),
        }
    }
}
