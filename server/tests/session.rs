//! Whole SMTP sessions over `tokio::io::duplex`, against a `service_fn`
//! stack: the session's state machine, pipelining, DATA and BDAT, error
//! limits and deadlines, without a socket, a queue or the binary.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;
use tower::util::BoxCloneService;
use towerpost::session::{ConnectionParts, IdSource, Load};
use towerpost::{
    Command, Connection, Reply, RequestKind, SessionInfo, SessionSettings, SmtpRequest,
};
use towerpost_protocol::{BareNewline, EnhancedCode};
use towerpost_queue::QueueId;

/// What the stack saw.
#[derive(Default)]
struct Seen {
    commands: Vec<String>,
    messages: Vec<Vec<u8>>,
}

/// A stack that answers like the core, records what reaches it, and
/// refuses recipients whose address starts with `refuse`.
fn stack(seen: Arc<Mutex<Seen>>) -> towerpost::SmtpService {
    BoxCloneService::new(tower::service_fn(move |req: SmtpRequest| {
        let seen = seen.clone();
        async move {
            let e = EnhancedCode::new;
            let reply = match req.kind {
                RequestKind::Connect => Reply::new(220, "test.example ESMTP"),
                RequestKind::Disconnect => Reply::new(221, "bye"),
                RequestKind::Message(m) => {
                    seen.lock().unwrap().messages.push(m.content);
                    Reply::enhanced(250, e(2, 0, 0), format!("Ok: queued as {}", m.id))
                }
                RequestKind::Command(c) => {
                    seen.lock().unwrap().commands.push(format!("{c:?}"));
                    match c {
                        Command::Ehlo { .. } => Reply::multiline(
                            250,
                            ["test.example", "PIPELINING", "CHUNKING", "8BITMIME"],
                        ),
                        Command::Helo { .. } => Reply::new(250, "test.example"),
                        Command::Mail { .. } => Reply::enhanced(250, e(2, 1, 0), "Ok"),
                        Command::Rcpt { to, .. } if to.as_str().starts_with("refuse") => {
                            Reply::enhanced(550, e(5, 1, 1), "User unknown")
                        }
                        Command::Rcpt { .. } => Reply::enhanced(250, e(2, 1, 5), "Ok"),
                        Command::Data => Reply::new(354, "End data with <CR><LF>.<CR><LF>"),
                        Command::Bdat { .. } => Reply::enhanced(250, e(2, 0, 0), "Ok"),
                        Command::Rset | Command::Noop => Reply::enhanced(250, e(2, 0, 0), "Ok"),
                        Command::Quit => Reply::enhanced(221, e(2, 0, 0), "Bye"),
                        _ => Reply::enhanced(502, e(5, 5, 2), "Error: command not implemented"),
                    }
                }
            };
            Ok::<_, Infallible>(reply)
        }
    }))
}

fn settings() -> SessionSettings {
    SessionSettings {
        myhostname: "test.example".into(),
        timeout: Duration::from_secs(300),
        helo_required: false,
        hard_error_limit: 20,
        soft_error_limit: 10,
        error_sleep_time: Duration::ZERO,
        junk_command_limit: 100,
        bare_newline: BareNewline::Normalize,
        forbid_unauth_pipelining: true,
        command_line_limit: 512,
        text_line_limit: 1000,
        message_size_limit: 10_240_000,
        sasl: None,
        tls_auth_only: true,
        tls_required: false,
        per_record_deadline: false,
        min_data_rate: 500,
    }
}

/// The client's end of a session, and what the stack saw.
struct Session {
    io: DuplexStream,
    buf: Vec<u8>,
    seen: Arc<Mutex<Seen>>,
    done: tokio::task::JoinHandle<()>,
}

impl Session {
    fn start(settings: SessionSettings, load: Arc<Load>) -> Session {
        let (client, server) = tokio::io::duplex(1 << 20);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let next = Arc::new(AtomicU64::new(1));
        let ids: IdSource =
            Arc::new(move || QueueId::from_u64(next.fetch_add(1, Ordering::SeqCst)));
        let addr = "192.0.2.1:4000".parse().unwrap();
        let local = "192.0.2.25:25".parse().unwrap();
        let connection = Connection::new(
            server,
            ConnectionParts {
                tls: None,
                info: SessionInfo::new(addr, local, "smtp"),
                service: stack(seen.clone()),
                settings: Arc::new(settings),
                ids,
                content_files: None,
                load,
                shutdown: CancellationToken::new(),
            },
        );
        Session {
            io: client,
            buf: Vec::new(),
            seen,
            done: tokio::spawn(connection.run()),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next reply, its lines joined by `\n`; `None` at EOF.
    async fn reply(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf.drain(..end + 2).collect()).unwrap();
                let line = line.trim_end().to_owned();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return Some(lines.join("\n"));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a byte every `every` until the server's reply arrives (or
    /// `max` passes); returns the reply and when it came.
    async fn trickle(&mut self, every: Duration, max: Duration) -> (Option<String>, Duration) {
        let start = tokio::time::Instant::now();
        let mut chunk = [0u8; 4096];
        {
            let (mut read, mut write) = tokio::io::split(&mut self.io);
            loop {
                tokio::select! {
                    n = read.read(&mut chunk) => {
                        let n = n.unwrap_or(0);
                        self.buf.extend_from_slice(&chunk[..n]);
                        break;
                    }
                    _ = tokio::time::sleep(every) => {
                        if start.elapsed() >= max {
                            return (None, start.elapsed());
                        }
                        if write.write_all(b"x").await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let at = start.elapsed();
        (self.reply().await, at)
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await.expect("a reply")
    }
}

fn load() -> Arc<Load> {
    Load::new(0, 0)
}

#[tokio::test]
async fn greeting_ehlo_and_quit() {
    let mut s = Session::start(settings(), load());
    assert_eq!(s.reply().await.unwrap(), "220 test.example ESMTP");
    assert!(
        s.cmd("EHLO client.test")
            .await
            .starts_with("250-test.example")
    );
    assert_eq!(s.cmd("QUIT").await, "221 2.0.0 Bye");
    assert_eq!(s.reply().await, None);
    s.done.await.unwrap();
}

#[tokio::test]
async fn a_pipelined_transaction_is_answered_in_order_and_unstuffed() {
    let mut s = Session::start(settings(), load());
    s.reply().await.unwrap();
    s.cmd("EHLO client.test").await;
    s.send(
        b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n\
          RCPT TO:<refuse@example.test>\r\nDATA\r\n",
    )
    .await;
    assert_eq!(s.reply().await.unwrap(), "250 2.1.0 Ok");
    assert_eq!(s.reply().await.unwrap(), "250 2.1.5 Ok");
    assert_eq!(s.reply().await.unwrap(), "550 5.1.1 User unknown");
    assert!(s.reply().await.unwrap().starts_with("354"));
    s.send(b"Subject: t\r\n\r\n..leading dot\r\n.\r\n").await;
    let queued = s.reply().await.unwrap();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    let seen = s.seen.lock().unwrap();
    let message = String::from_utf8_lossy(&seen.messages[0]).into_owned();
    assert!(
        message.starts_with("Received: from client.test"),
        "{message}"
    );
    assert!(
        message.ends_with("Subject: t\r\n\r\n.leading dot\r\n"),
        "{message}"
    );
}

#[tokio::test]
async fn sequence_errors_are_the_session_s_own_answers() {
    let mut s = Session::start(settings(), load());
    s.reply().await.unwrap();
    assert_eq!(
        s.cmd("RCPT TO:<b@example.test>").await,
        "503 5.5.1 Error: need MAIL command"
    );
    assert_eq!(s.cmd("DATA").await, "503 5.5.1 Error: need MAIL command");
    assert_eq!(s.cmd("MAIL FROM:<a@example.test>").await, "250 2.1.0 Ok");
    assert_eq!(
        s.cmd("MAIL FROM:<a@example.test>").await,
        "503 5.5.1 Error: nested MAIL command"
    );
    assert_eq!(
        s.cmd("RCPT TO:<refuse@example.test>").await,
        "550 5.1.1 User unknown"
    );
    assert_eq!(s.cmd("DATA").await, "554 5.5.1 Error: no valid recipients");
    // None of these reached the stack as a command it had to judge.
    let seen = s.seen.lock().unwrap();
    assert_eq!(seen.commands.len(), 2, "{:?}", seen.commands);
}

#[tokio::test]
async fn bdat_chunks_make_one_message_and_a_null_chunk_spoils_the_transfer() {
    let mut s = Session::start(settings(), load());
    s.reply().await.unwrap();
    s.cmd("EHLO client.test").await;
    s.cmd("MAIL FROM:<a@example.test>").await;
    s.cmd("RCPT TO:<b@example.test>").await;
    s.send(b"BDAT 12\r\nSubject: t\r\n").await;
    assert_eq!(s.reply().await.unwrap(), "250 2.0.0 Ok: 12 bytes");
    // A bare LF inside BDAT becomes CRLF.
    s.send(b"BDAT 8 LAST\r\n\r\nhi\nyo\n").await;
    assert!(
        s.reply()
            .await
            .unwrap()
            .starts_with("250 2.0.0 Ok: queued as")
    );
    let message = String::from_utf8_lossy(&s.seen.lock().unwrap().messages[0]).into_owned();
    assert!(
        message.ends_with("Subject: t\r\n\r\nhi\r\nyo\r\n"),
        "{message:?}"
    );

    // As Postfix: after a null chunk, the rest of the transfer is
    // discarded up to LAST, and the next transaction starts clean.
    s.cmd("MAIL FROM:<a@example.test>").await;
    s.cmd("RCPT TO:<b@example.test>").await;
    assert_eq!(s.cmd("BDAT 0").await, "551 5.7.1 Null BDAT request");
    s.send(b"BDAT 4\r\nabcd").await;
    assert_eq!(
        s.reply().await.unwrap(),
        "551 5.0.0 Discarded 4 bytes after earlier error"
    );
    s.send(b"BDAT 2 LAST\r\nef").await;
    assert_eq!(
        s.reply().await.unwrap(),
        "551 5.0.0 Discarded 6 bytes after earlier error"
    );
    assert_eq!(s.cmd("MAIL FROM:<a@example.test>").await, "250 2.1.0 Ok");
    assert_eq!(s.seen.lock().unwrap().messages.len(), 1);
}

#[tokio::test]
async fn the_hard_error_limit_closes_the_session() {
    let mut s = Session::start(
        SessionSettings {
            hard_error_limit: 3,
            ..settings()
        },
        load(),
    );
    s.reply().await.unwrap();
    for _ in 0..2 {
        assert!(s.cmd("BOGUS").await.starts_with("502"));
    }
    assert!(s.cmd("BOGUS").await.starts_with("502"));
    assert_eq!(
        s.reply().await.unwrap(),
        "421 4.7.0 test.example Error: too many errors"
    );
    assert_eq!(s.reply().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_per_record_deadline_ends_a_trickled_command_line() {
    let mut s = Session::start(
        SessionSettings {
            timeout: Duration::from_secs(10),
            per_record_deadline: true,
            ..settings()
        },
        load(),
    );
    s.reply().await.unwrap();
    // A byte every second: each read comes in time, the line never does.
    let (reply, at) = s
        .trickle(Duration::from_secs(1), Duration::from_secs(60))
        .await;
    assert_eq!(
        reply.as_deref(),
        Some("421 4.4.2 test.example Error: timeout exceeded")
    );
    assert!(at <= Duration::from_secs(11), "cut off after {at:?}");
}

#[tokio::test(start_paused = true)]
async fn without_deadlines_each_byte_resets_the_timeout() {
    let mut s = Session::start(
        SessionSettings {
            timeout: Duration::from_secs(10),
            ..settings()
        },
        load(),
    );
    s.reply().await.unwrap();
    let (reply, at) = s
        .trickle(Duration::from_secs(1), Duration::from_secs(30))
        .await;
    assert!(
        at >= Duration::from_secs(30),
        "answered {reply:?} after {at:?}"
    );
    s.send(b"\r\n").await;
    assert!(s.reply().await.unwrap().starts_with("502"), "still open");
}

#[tokio::test(start_paused = true)]
async fn under_stress_deadlines_apply_and_the_timeout_shortens() {
    let load = Load::new(5, 0);
    let _others: Vec<_> = (0..4).map(|_| load.try_session().unwrap()).collect();
    assert!(load.stressed());
    let mut s = Session::start(settings(), load.clone()); // smtpd_timeout 300 s
    s.reply().await.unwrap();
    let (reply, at) = s
        .trickle(Duration::from_secs(1), Duration::from_secs(600))
        .await;
    assert_eq!(
        reply.as_deref(),
        Some("421 4.4.2 test.example Error: timeout exceeded")
    );
    assert!(
        at <= Duration::from_secs(11),
        "cut off after {at:?}, not by 10 s"
    );
}

#[tokio::test]
async fn data_beyond_the_shared_memory_is_refused_and_the_session_goes_on() {
    let load = Load::new(0, 256 * 1024);
    let mut s = Session::start(settings(), load.clone());
    s.reply().await.unwrap();
    s.cmd("EHLO client.test").await;
    s.cmd("MAIL FROM:<a@example.test>").await;
    s.cmd("RCPT TO:<b@example.test>").await;
    assert!(s.cmd("DATA").await.starts_with("354"));
    let line = format!("{}\r\n", "z".repeat(98));
    s.send(line.repeat(3000).as_bytes()).await; // 300 kB
    s.send(b".\r\n").await;
    // Bigger than all the memory there is: permanent, never retried.
    assert_eq!(
        s.reply().await.unwrap(),
        "552 5.3.4 Message size exceeds fixed limit"
    );
    assert_eq!(load.memory(), 0, "nothing is held after the refusal");
    assert_eq!(s.cmd("MAIL FROM:<a@example.test>").await, "250 2.1.0 Ok");
    assert!(s.seen.lock().unwrap().messages.is_empty());
}

#[tokio::test(start_paused = true)]
async fn junk_commands_past_the_limit_are_tarpitted() {
    let mut s = Session::start(
        SessionSettings {
            junk_command_limit: 3,
            soft_error_limit: 2,
            error_sleep_time: Duration::from_secs(1),
            ..settings()
        },
        load(),
    );
    s.reply().await.unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..4 {
        assert_eq!(s.cmd("NOOP").await, "250 2.0.0 Ok");
    }
    assert!(start.elapsed() < Duration::from_secs(1), "no delay yet");
    // The fifth is the second past the limit: two errors, the soft limit.
    assert_eq!(s.cmd("NOOP").await, "250 2.0.0 Ok");
    assert!(start.elapsed() >= Duration::from_secs(1), "tarpitted");
}
