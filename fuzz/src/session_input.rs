//! The command framer, the command parser and the DATA and BDAT decoders,
//! fed in pieces whose size comes from the input's first byte: no panic,
//! every call consumes within bounds, buffered input never exceeds one
//! line limit, and a rejected command's reply is one well-formed line.

use towerpost_protocol::{BdatDecoder, Command, CommandReceiver, DataDecoder, Frame};

/// What an SMTP session is made of.
pub const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\0",
    b"MAIL FROM:<a@b.test>",
    b"RCPT TO:<c@d.test>",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 18446744073709551616\r\n",
    b"EHLO x\r\n",
    b"STARTTLS\r\n",
    b" SIZE=99999999999999999999",
    b" BODY=8BITMIME",
    b" RET=FULL RET=HDRS",
    b" NOTIFY=SUCCESS,NEVER",
    b" ORCPT=rfc822;a+2Bb@c",
    b"<@route,@x:user@d.test>",
    b"\"quoted local\"@d.test",
    b"j\xc3\xb6rg@b\xc3\xbccher.test",
    b"[IPv6:::1]",
    b"\xff\xfe",
];

/// Panics when an invariant does not hold for `data`.
pub fn check(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut receiver = CommandReceiver::new(512);
    let mut decoder: Option<DataDecoder> = None;
    let mut bdat: Option<BdatDecoder> = None;
    let mut content = Vec::new();
    let mut buf = Vec::new();
    for piece in input.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            if let Some(d) = bdat.as_mut() {
                let used = d.feed(&buf, Some(&mut content));
                buf.drain(..used);
                if d.remaining() > 0 {
                    break;
                }
                bdat = None;
                continue;
            }
            if let Some(d) = decoder.as_mut() {
                let p = d.feed(&buf, &mut content);
                assert!(p.consumed <= buf.len());
                buf.drain(..p.consumed);
                if p.done {
                    decoder = None;
                    continue;
                }
                assert!(buf.len() <= 1000);
                break;
            }
            match receiver.frame(&buf) {
                Frame::Line { len, consumed, .. } => {
                    assert!(len < consumed && consumed <= buf.len());
                    match Command::parse(&buf[..len]) {
                        Ok(Command::Data) => decoder = Some(DataDecoder::new(1 << 20, 1000)),
                        Ok(Command::Bdat { size, .. }) => {
                            let mut d = BdatDecoder::new(1 << 20, 1000);
                            d.start_chunk(size.min(1 << 16));
                            bdat = Some(d);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let wire = e.reply().to_bytes();
                            assert!(wire.ends_with(b"\r\n"));
                            assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
                        }
                    }
                    buf.drain(..consumed);
                }
                Frame::TooLong { consumed } | Frame::Incomplete { consumed } => {
                    assert!(consumed <= buf.len());
                    buf.drain(..consumed);
                    if consumed == 0 || buf.is_empty() {
                        break;
                    }
                }
            }
        }
        assert!(buf.len() <= 1000 + step);
    }
    assert!(content.len() <= 1 << 21);
}
