//! SMTP smuggling (CVE-2023-51764 and relatives): no sequence but
//! `<CRLF>.<CRLF>` may end DATA, so one DATA never becomes two messages.

use integration_tests::{Server, queued_id};

const SEQUENCES: &[(&str, &str)] = &[
    ("<LF>.<LF>", "\n.\n"),
    ("<LF>.<CR><LF>", "\n.\r\n"),
    ("<CR><LF>.<LF>", "\r\n.\n"),
    ("<CR>.<CR>", "\r.\r"),
    ("<CR><LF>.<CR>", "\r\n.\r"),
];

#[test]
fn no_smuggling_sequence_ends_data() {
    for forbid in ["normalize", "reject"] {
        let server = Server::start(&format!("smtpd_forbid_bare_newline = \"{forbid}\""));
        for (name, seq) in SEQUENCES {
            let mut c = server.client();
            assert!(c.cmd("EHLO client.test").starts_with("250"));
            assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
            assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
            assert!(c.cmd("DATA").starts_with("354"));
            let payload = format!(
                "Subject: first\r\n\r\nbody{seq}MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nspoofed\r\n.\r\n"
            );
            c.send(payload.as_bytes());
            // Exactly one answer for the whole payload: either the single
            // message is queued, or (reject mode, bare LF) refused.
            let reply = c.read_reply();
            assert!(
                reply.starts_with("250 2.0.0 Ok: queued as")
                    || (forbid == "reject" && reply.starts_with("550 5.5.2")),
                "{forbid} {name}: {reply}"
            );
            assert_eq!(
                c.cmd("NOOP"),
                "250 2.0.0 Ok",
                "{forbid} {name}: stream out of step"
            );
            assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
        }
        let queue = server.queue();
        for m in &queue {
            let rcpts = m["recipients"].as_array().unwrap();
            assert_eq!(rcpts.len(), 1);
            assert_eq!(
                rcpts[0]["address"], "b@example.test",
                "{forbid}: smuggled message queued"
            );
        }
        if forbid == "normalize" {
            assert_eq!(queue.len(), SEQUENCES.len(), "one message per DATA");
        }
    }
}

#[test]
fn smuggled_content_stays_inside_the_first_message() {
    let server = Server::start("");
    let mut c = server.client();
    let reply = c.send_mail(
        "a@example.test",
        &["b@example.test"],
        "Subject: first\r\n\r\nbody\n.\nMAIL FROM:<admin@example.test>\r\n",
    );
    queued_id(&reply);
    assert_eq!(server.queue().len(), 1);
    assert!(!server.log().contains("admin@example.test"));
}

/// A next hop that records every byte of every DATA it is sent, up to the
/// only end it knows, `<CRLF>.<CRLF>`. It offers no CHUNKING, so towerpost
/// relays with DATA whatever way the mail came in.
struct Recorder {
    addr: std::net::SocketAddr,
    data: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = data.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut out) = stream else { return };
                let store = store.clone();
                std::thread::spawn(move || {
                    let _ = out.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                    let mut input = BufReader::new(out.try_clone().unwrap());
                    let _ = out.write_all(b"220 recorder.test ESMTP\r\n");
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        if input.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = String::from_utf8_lossy(&line).to_ascii_uppercase();
                        let reply: &[u8] = if verb.starts_with("EHLO") {
                            b"250-recorder.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                        } else if verb.starts_with("DATA") {
                            let _ = out.write_all(b"354 go ahead\r\n");
                            let mut body = Vec::new();
                            let mut byte = [0u8];
                            while !body.ends_with(b"\r\n.\r\n") {
                                if input.read(&mut byte).unwrap_or(0) == 0 {
                                    return;
                                }
                                body.push(byte[0]);
                            }
                            store.lock().unwrap().push(body);
                            b"250 2.0.0 recorded\r\n"
                        } else if verb.starts_with("QUIT") {
                            let _ = out.write_all(b"221 2.0.0 bye\r\n");
                            return;
                        } else {
                            b"250 2.0.0 ok\r\n"
                        };
                        let _ = out.write_all(reply);
                    }
                });
            }
        });
        Recorder { addr, data }
    }

    fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let start = std::time::Instant::now();
        loop {
            let got = self.data.lock().unwrap().clone();
            if got.len() >= n || start.elapsed() > std::time::Duration::from_secs(30) {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Where a CR or LF in `bytes` is not part of a CRLF.
fn stray_line_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find(|&i| match bytes[i] {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        _ => false,
    })
}

/// The outbound half of smuggling: whatever a client sends, through DATA
/// or BDAT, nothing but CRLF leaves towerpost as a line end.
#[test]
fn no_bare_cr_or_lf_is_ever_relayed() {
    let mut sequences: Vec<(&str, &str)> = SEQUENCES.to_vec();
    sequences.push(("<LF>.<CR>", "\n.\r"));
    sequences.push(("bare <CR> in a line", "x\rMAIL"));
    for forbid in ["normalize", "reject"] {
        let next_hop = Recorder::start();
        let server = Server::start(&format!(
            "smtpd_forbid_bare_newline = \"{forbid}\"\nrelayhost = \"[127.0.0.1]:{}\"\nqueue_run_delay = \"1s\"",
            next_hop.addr.port()
        ));
        let mut accepted = 0;
        for (name, seq) in &sequences {
            let body = format!("Subject: t\r\n\r\nbody{seq}MAIL FROM:<e@x.test>\r\nend\r\n");
            for bdat in [false, true] {
                let mut c = server.client();
                assert!(c.cmd("EHLO client.test").starts_with("250"));
                assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
                assert_eq!(c.cmd("RCPT TO:<b@remote.test>"), "250 2.1.5 Ok");
                let reply = if bdat {
                    c.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
                    c.send(body.as_bytes());
                    c.read_reply()
                } else {
                    assert!(c.cmd("DATA").starts_with("354"));
                    c.send(format!("{body}.\r\n").as_bytes());
                    c.read_reply()
                };
                let how = if bdat { "BDAT" } else { "DATA" };
                if reply.starts_with("250") {
                    accepted += 1;
                } else {
                    assert!(
                        forbid == "reject" && reply.starts_with("550 5.5.2"),
                        "{forbid} {how} {name}: {reply}"
                    );
                }
                assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
            }
        }
        if forbid == "normalize" {
            assert_eq!(accepted, 2 * sequences.len(), "normalize accepts them all");
        } else {
            assert_eq!(accepted, 0, "reject refuses every bare CR and LF");
        }
        let relayed = next_hop.wait_for(accepted);
        assert_eq!(relayed.len(), accepted, "{forbid}: relayed");
        for data in &relayed {
            assert_eq!(
                stray_line_end(data),
                None,
                "{forbid}: a bare CR or LF left towerpost: {:?}",
                String::from_utf8_lossy(data)
            );
        }
    }
}
