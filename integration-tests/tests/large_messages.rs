//! Large messages take the content-file path: beyond their first 256 KiB
//! they are written to `queue/content/<id>` as they arrive, made durable
//! before the envelope that names them, and streamed to the next hop.
//! Each is checked against Python's aiosmtpd (a server we did not write)
//! as the next hop, byte for byte, across a `kill -9` right after the 250.
//! A crash in the middle of a large DATA leaves a file that no envelope
//! names: the next start removes it, and it is never delivered.

use std::time::{Duration, Instant};

use integration_tests::sink::Sink;
use integration_tests::{PythonServer, Server, have_aiosmtpd, queued_id};

/// A next hop that writes each message's content, as received, to
/// `<dir>/<n>.eml`, and its recipients to `<dir>/<n>.rcpt`.
const NEXT_HOP: &str = r#"
import socket, sys, time, os
from aiosmtpd.controller import Controller
out = sys.argv[1]
count = 0
class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        with open(os.path.join(out, "%d.eml.part" % count), "wb") as f:
            f.write(envelope.original_content)
        os.rename(os.path.join(out, "%d.eml.part" % count), os.path.join(out, "%d.eml" % count))
        return "250 2.0.0 stored"
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
controller = Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=64 << 20)
controller.start()
print("READY", port, flush=True)
try:
    time.sleep(300)
finally:
    controller.stop()
"#;

struct NextHop {
    server: PythonServer,
    dir: tempfile::TempDir,
}

impl NextHop {
    /// aiosmtpd on loopback; `None` (with the reason printed) without it.
    fn start() -> Option<NextHop> {
        if !have_aiosmtpd() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let server = PythonServer::start(NEXT_HOP, &[dir.path().as_os_str()]);
        Some(NextHop { server, dir })
    }

    /// The first `n` messages received, waiting up to `timeout`.
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let got: Vec<Vec<u8>> = (1..=n)
                .map_while(|i| std::fs::read(self.dir.path().join(format!("{i}.eml"))).ok())
                .collect();
            if got.len() == n {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "{} of {n} messages arrived within {timeout:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Parks mail for `big.test` behind an `etrn-only` transport to `port`.
fn parked_to(port: u16) -> String {
    format!(
        "queue_run_delay = \"1s\"\nminimal_backoff_time = \"1s\"\nmaximal_backoff_time = \"2s\"\n\
         message_size_limit = 0\nfast_flush_domains = [\"big.test\"]\n\
         defer_transports = [\"etrn-only\"]\n\
         [transport.etrn-only]\ntype = \"smtp\"\n\
         [transport_maps]\n\"big.test\" = \"etrn-only:[127.0.0.1]:{port}\"\n"
    )
}

/// `n` octets of text whose lines say where they are, with lines that
/// start with a dot (to be stuffed on the way out) and long lines.
fn body(n: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 200);
    let mut line = 0u64;
    while out.len() < n {
        match line % 7 {
            0 => out.extend_from_slice(format!(".dot line {line} {seed}\r\n").as_bytes()),
            3 => out.extend_from_slice(format!("{}\r\n", "x".repeat(900)).as_bytes()),
            _ => out.extend_from_slice(format!("line {line} of message {seed}\r\n").as_bytes()),
        }
        line += 1;
    }
    out
}

/// The content as the client sent it: header and body, CRLF lines.
fn message(subject: &str, body: &[u8]) -> Vec<u8> {
    let mut m =
        format!("Subject: {subject}\r\nMessage-ID: <{subject}@big.test>\r\n\r\n").into_bytes();
    m.extend_from_slice(body);
    m
}

/// Dot-stuffs `content` for DATA.
fn stuffed(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 1024);
    for line in content.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn content_files(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.spool().join("queue/content"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What the next hop received, without the `Received:` header towerpost
/// put first (one line and its folded continuations).
fn without_received(got: &[u8]) -> &[u8] {
    assert!(
        got.starts_with(b"Received: "),
        "{:?}",
        String::from_utf8_lossy(&got[..80])
    );
    let mut at = 0;
    loop {
        let end = at + got[at..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        at = end;
        if !matches!(got.get(at), Some(b' ' | b'\t')) {
            return &got[at..];
        }
    }
}

#[test]
fn large_messages_survive_kill_9_after_their_250_and_arrive_intact() {
    let Some(next_hop) = NextHop::start() else {
        return;
    };
    let mut server = Server::start(&parked_to(next_hop.server.port));

    // 8 MiB by DATA.
    let by_data = message("data", &body(8 << 20, 1));
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<r1@big.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&stuffed(&by_data));
    let first = queued_id(&c.read_reply());

    // 3 MiB by BDAT, in chunks that split lines (and a CRLF) anywhere.
    let by_bdat = message("bdat", &body(3 << 20, 2));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<r2@big.test>"), "250 2.1.5 Ok");
    let cuts = [0, 700_001, 1_900_000, by_bdat.len()];
    for (i, pair) in cuts.windows(2).enumerate() {
        let chunk = &by_bdat[pair[0]..pair[1]];
        let last = if i == cuts.len() - 2 { " LAST" } else { "" };
        c.send(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        c.send(chunk);
        let reply = c.read_reply();
        if last.is_empty() {
            assert_eq!(reply, format!("250 2.0.0 Ok: {} bytes", chunk.len()));
        } else {
            assert!(reply.starts_with("250"), "{reply}");
            assert!(queued_id(&reply) > first);
        }
    }
    // No QUIT: the process dies the instant after the last 250.
    server.kill9();
    assert_eq!(
        content_files(&server).len(),
        2,
        "both went to content files"
    );
    server.restart();
    let mut c = server.client();
    assert_eq!(c.cmd("ETRN big.test"), "250 Queuing started");
    let got = next_hop.wait_for(2, Duration::from_secs(60));
    let mut got: Vec<&[u8]> = got.iter().map(|m| without_received(m)).collect();
    got.sort_by_key(|m| m.len());
    assert!(
        got[0] == by_bdat.as_slice(),
        "the BDAT message arrived changed"
    );
    assert!(
        got[1] == by_data.as_slice(),
        "the DATA message arrived changed"
    );
    // Gone from the queue, and their files with them.
    let start = Instant::now();
    while !(server.queue_ids().is_empty() && content_files(&server).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            content_files(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_crash_during_a_large_data_leaves_nothing_that_is_ever_delivered() {
    let sink = Sink::start();
    let mut server = Server::start(&parked_to(sink.addr().port()));
    let mut c = server.client();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<r@big.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let content = message("cut", &body(4 << 20, 3));
    c.send(&stuffed(&content)[..3 << 20]); // no end of data
    let start = Instant::now();
    while content_files(&server).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no content file was written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill9();
    let orphan = content_files(&server);
    assert_eq!(orphan.len(), 1);

    server.restart();
    server.wait_for_log(&format!("{}: removed orphaned content file", orphan[0]));
    assert!(content_files(&server).is_empty());
    assert!(server.queue_ids().is_empty());
    let mut c = server.client();
    let reply = c.cmd("ETRN big.test");
    assert!(reply.starts_with("250"), "{reply}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(sink.messages().is_empty(), "the cut message was delivered");
}
