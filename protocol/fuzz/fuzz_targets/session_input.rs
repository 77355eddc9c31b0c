//! Feeds arbitrary bytes through the command framer, the command parser and
//! the DATA and BDAT decoders, in pieces whose sizes come from the input, and
//! checks the invariants the server relies on: no panic, every call consumes
//! within bounds, and buffered input never exceeds one line limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use towerpost_protocol::{BdatDecoder, Command, CommandReceiver, DataDecoder, Frame};

fuzz_target!(|data: &[u8]| {
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
                            let _ = e.reply().to_bytes();
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
});
