//! A scriptable SMTP sink on loopback: the place a relay under test
//! delivers to.
//!
//! It speaks enough ESMTP for a relay (EHLO with PIPELINING, SIZE,
//! 8BITMIME, SMTPUTF8, DSN and ENHANCEDSTATUSCODES; MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT), keeps every accepted message for the test to
//! inspect, and lets the test choose the answer at each stage with a
//! [rule](Sink::set_rule). Only std is used: one thread accepts, one
//! thread serves each connection.
//!
//! ```no_run
//! use integration_tests::sink::{Sink, Stage};
//! use std::time::Duration;
//!
//! let sink = Sink::start();
//! sink.set_rule(|stage| match stage {
//!     Stage::Rcpt(addr) if addr.starts_with("nobody@") => {
//!         Some("550 5.1.1 no such user".into())
//!     }
//!     _ => None,
//! });
//! // … point the relay at sink.addr() and send mail through it …
//! let got = sink.wait_for(1, Duration::from_secs(20));
//! assert_eq!(got.len(), 1);
//! ```
//!
//! Why one long file: test support, one self-contained peer (listener,
//! session, rules and the record of what arrived) with no dependency on the
//! code it tests.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use towerpost_protocol::EhloCapabilities;

/// The name the sink gives itself in its greeting and EHLO reply.
const HOSTNAME: &str = "sink.test";
/// Longest accepted line, CRLF included.
const MAX_LINE: usize = 10_000;
/// Largest accepted message, as advertised with SIZE.
const MAX_SIZE: usize = 100_000_000;
/// Read (and write) timeout on every connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `start_on` keeps retrying a port that is still in use.
const BIND_RETRY: Duration = Duration::from_secs(5);
/// How long `stop` waits for connection threads to notice the close.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// How long a closing connection discards further input.
const LINGER: Duration = Duration::from_secs(1);
/// How much input a closing connection discards at most.
const LINGER_BYTES: usize = 1 << 20;
/// Sleep of the accept loop between polls of its non-blocking listener.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// Where in a transaction the sink is about to answer.
///
/// A [rule](Sink::set_rule) sees a stage only when the command got that
/// far: a command with bad syntax or out of sequence is answered by the
/// sink itself (501, 503, 554) without asking the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage<'a> {
    /// A client connected; the answer is the greeting. A reply starting
    /// with 421 is sent and the connection closed; another 4xx/5xx reply
    /// makes the sink answer every command but QUIT with 503.
    Connect,
    /// EHLO or HELO with the given domain (or address literal). An
    /// overriding reply replaces the whole EHLO answer, so
    /// `Some("250 sink.test".into())` advertises no extensions.
    Ehlo(&'a str),
    /// MAIL FROM with the given reverse-path, without angle brackets
    /// (`""` for the null sender). A 4xx/5xx reply rejects the
    /// transaction.
    Mail(&'a str),
    /// RCPT TO with the given address, without angle brackets. A 4xx/5xx
    /// reply rejects just this recipient.
    Rcpt(&'a str),
    /// The DATA command. A reply not starting with 3 refuses the content
    /// (the transaction stays open, as after a refused DATA in SMTP).
    Data,
    /// The content was received (dot-unstuffed, without the final
    /// ".\r\n"). A 4xx/5xx reply rejects the message and nothing is
    /// stored; any other reply is sent instead of the default one and the
    /// message is stored.
    EndOfData(&'a [u8]),
}

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SunkMessage {
    /// The reverse-path without angle brackets, `""` for `<>`.
    pub mail_from: String,
    /// ESMTP parameters of MAIL as sent, e.g. `["SIZE=123", "BODY=8BITMIME"]`.
    pub mail_params: Vec<String>,
    /// Accepted recipients, without angle brackets, in the order given.
    pub rcpt_to: Vec<String>,
    /// ESMTP parameters of each accepted RCPT, parallel to `rcpt_to`.
    pub rcpt_params: Vec<Vec<String>>,
    /// The content after dot-unstuffing, line ends as received (CRLF from
    /// a correct client), without the final ".\r\n".
    pub data: Vec<u8>,
    /// Sequence number of the TCP connection it came on (1, 2, …).
    pub connection: usize,
}

/// The type of a reply rule.
type Rule = dyn Fn(&Stage<'_>) -> Option<String> + Send + Sync;

/// What the accept thread, the connection threads and the [`Sink`] share.
struct Shared {
    stop: AtomicBool,
    rule: RwLock<Arc<Rule>>,
    messages: Mutex<Vec<SunkMessage>>,
    connections: AtomicUsize,
    /// QUIT commands received.
    quits: AtomicUsize,
    /// Clones of the streams of open connections, by connection number,
    /// so that `stop` can shut them down.
    open: Mutex<HashMap<usize, TcpStream>>,
}

impl Shared {
    /// What the rule says at `stage`.
    fn rule(&self, stage: &Stage<'_>) -> Option<String> {
        // Clone the rule out of the lock so a slow or panicking rule
        // blocks or poisons nothing.
        let rule = Arc::clone(&self.rule.read().unwrap_or_else(|e| e.into_inner()));
        rule(stage)
    }

    /// The answer at `stage`: the rule's if it has one, else `default`.
    fn answer(&self, stage: &Stage<'_>, default: impl FnOnce() -> String) -> String {
        self.rule(stage).unwrap_or_else(default)
    }

    fn messages(&self) -> MutexGuard<'_, Vec<SunkMessage>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> MutexGuard<'_, HashMap<usize, TcpStream>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running SMTP sink on 127.0.0.1. Dropping it stops it.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .field("messages", &self.shared.messages().len())
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub fn start() -> Sink {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind sink on 127.0.0.1");
        Sink::run(listener)
    }

    /// Starts on 127.0.0.1:`port` (to restart on the port a stopped sink
    /// had). Retries binding for a few seconds while the port is in use
    /// (TIME_WAIT, or a previous listener not yet closed).
    pub fn start_on(port: u16) -> Sink {
        let deadline = Instant::now() + BIND_RETRY;
        loop {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                Ok(listener) => return Sink::run(listener),
                Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("bind sink on 127.0.0.1:{port}: {e}"),
            }
        }
    }

    fn run(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().expect("sink listener address");
        listener
            .set_nonblocking(true)
            .expect("make sink listener non-blocking");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            rule: RwLock::new(Arc::new(|_: &Stage<'_>| None)),
            messages: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            quits: AtomicUsize::new(0),
            open: Mutex::new(HashMap::new()),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("sink-accept-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn sink accept thread")
        };
        Sink {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The address the sink listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the reply rule. It is called at each [`Stage`];
    /// `Some("451 4.3.0 try later".into())` overrides the default answer,
    /// `None` keeps it. The default rule accepts everything (220
    /// greeting, 250s, 354, `250 2.0.0 Ok: queued as <n>`, n counting the messages stored).
    ///
    /// A reply may span lines separated by `\n`, each with its code and
    /// `-` or space as SMTP wants; it is sent with CRLF line ends. A reply
    /// starting with "421" closes the connection after it is sent, at
    /// any stage. The rule runs on connection threads, so it must not
    /// panic; a panic drops that connection.
    pub fn set_rule(&self, rule: impl Fn(&Stage<'_>) -> Option<String> + Send + Sync + 'static) {
        *self.shared.rule.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rule);
    }

    /// Messages accepted so far, in the order they were accepted.
    pub fn messages(&self) -> Vec<SunkMessage> {
        self.shared.messages().clone()
    }

    /// Waits (polling) until at least `n` messages were accepted or
    /// `timeout` passes; returns what it has (the caller asserts).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<SunkMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connections open now (their serving thread has not ended).
    pub fn open_connections(&self) -> usize {
        self.shared.open().len()
    }

    /// QUIT commands received so far.
    pub fn quits(&self) -> usize {
        self.shared.quits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every open connection; returns the
    /// port so the test can restart on it with [`Sink::start_on`].
    pub fn stop(mut self) -> u16 {
        self.shutdown();
        self.addr.port()
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // The accept thread owns the listener: once joined, the port is
        // closed and every accepted stream is registered in `open`.
        let _ = accept.join();
        for stream in self.shared.open().values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Reads now return end of file; give the threads a moment to
        // finish so nothing of this sink outlives `stop` needlessly (a rule
        // still sleeping is left behind rather than waited for).
        let deadline = Instant::now() + STOP_WAIT;
        while !self.shared.open().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // WouldBlock, or a transient error such as EMFILE.
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        // Accepted sockets may inherit non-blocking mode on some systems.
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        shared.open().insert(number, clone);
        let thread_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("sink-conn-{number}"))
            .spawn(move || {
                let _guard = OpenGuard {
                    shared: &thread_shared,
                    number,
                };
                let _ = Connection::new(&thread_shared, stream, number).and_then(|c| c.run());
            });
        if spawned.is_err() {
            shared.open().remove(&number);
        }
    }
}

/// Removes a connection from `Shared::open` when its thread ends, even
/// by a panicking rule.
struct OpenGuard<'a> {
    shared: &'a Shared,
    number: usize,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.shared.open().remove(&self.number);
    }
}

/// Whether the connection goes on after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// What reading one line gave.
enum Line {
    /// A line ending in LF is in the buffer.
    Complete,
    /// The line exceeded [`MAX_LINE`]; the rest of it is not read.
    TooLong,
    /// The client closed the connection (a partial last line is dropped).
    Eof,
}

/// The open transaction: after an accepted MAIL.
struct Transaction {
    mail_from: String,
    mail_params: Vec<String>,
    rcpt_to: Vec<String>,
    rcpt_params: Vec<Vec<String>>,
}

/// One SMTP session.
struct Connection<'a> {
    shared: &'a Shared,
    number: usize,
    reader: BufReader<TcpStream>,
    out: BufWriter<TcpStream>,
    line: Vec<u8>,
    greeted: bool,
    /// The greeting was a 4xx/5xx: only QUIT is served.
    no_service: bool,
    transaction: Option<Transaction>,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Shared, stream: TcpStream, number: usize) -> io::Result<Self> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Connection {
            shared,
            number,
            reader: BufReader::new(stream.try_clone()?),
            out: BufWriter::new(stream),
            line: Vec::new(),
            greeted: false,
            no_service: false,
            transaction: None,
        })
    }

    fn run(mut self) -> io::Result<()> {
        self.session()?;
        self.out.flush()?;
        self.linger();
        Ok(())
    }

    /// Serves commands until the connection is to be closed.
    fn session(&mut self) -> io::Result<()> {
        let greeting = self
            .shared
            .answer(&Stage::Connect, || format!("220 {HOSTNAME} ESMTP"));
        self.no_service = !is_positive(&greeting);
        if self.reply(&greeting)? == Flow::Close {
            return Ok(());
        }
        loop {
            if self.read_line()? == Flow::Close || self.command()? == Flow::Close {
                return Ok(());
            }
        }
    }

    /// Closes gently: sends FIN, then discards what the client still
    /// sends (pipelined commands, the rest of an overlong line) for a
    /// moment, so that closing with unread input does not make the kernel
    /// reset the connection and destroy the last reply before the client
    /// read it.
    fn linger(&mut self) {
        let stream = self.reader.get_ref();
        if stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let _ = stream.set_read_timeout(Some(LINGER));
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        while discarded < LINGER_BYTES && Instant::now() < deadline {
            let n = match self.reader.fill_buf() {
                Ok([]) | Err(_) => return,
                Ok(available) => available.len(),
            };
            self.reader.consume(n);
            discarded += n;
        }
    }

    /// Reads the next line into `self.line`, flushing pending replies
    /// first when no pipelined input is waiting. Answers an overlong line
    /// or a timeout itself and returns `Close` for them and at EOF.
    fn read_line(&mut self) -> io::Result<Flow> {
        if self.reader.buffer().is_empty() {
            self.out.flush()?;
        }
        match read_line_limited(&mut self.reader, &mut self.line) {
            Ok(Line::Complete) => Ok(Flow::Continue),
            Ok(Line::Eof) => Ok(Flow::Close),
            Ok(Line::TooLong) => {
                self.reply("500 5.5.2 Error: line too long")?;
                self.out.flush()?;
                Ok(Flow::Close)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.reply(&format!("421 4.4.2 {HOSTNAME} Error: timeout exceeded"))?;
                Ok(Flow::Close)
            }
            Err(e) => Err(e),
        }
    }

    /// Queues `text` (one or more lines) for sending; a 421 is flushed at
    /// once and closes.
    fn reply(&mut self, text: &str) -> io::Result<Flow> {
        for line in text.trim_end_matches(['\r', '\n']).split('\n') {
            self.out.write_all(line.trim_end_matches('\r').as_bytes())?;
            self.out.write_all(b"\r\n")?;
        }
        if text.starts_with("421") {
            self.out.flush()?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    /// Handles the command line in `self.line`.
    fn command(&mut self) -> io::Result<Flow> {
        let raw = std::mem::take(&mut self.line);
        let result = self.dispatch(&raw);
        self.line = raw;
        result
    }

    fn dispatch(&mut self, raw: &[u8]) -> io::Result<Flow> {
        let Ok(text) = std::str::from_utf8(raw) else {
            return self.reply("500 5.5.2 Error: command is not valid UTF-8");
        };
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let verb = verb.to_ascii_uppercase();
        if verb == "QUIT" {
            self.shared.quits.fetch_add(1, Ordering::SeqCst);
            self.reply("221 2.0.0 Bye")?;
            return Ok(Flow::Close);
        }
        if self.no_service {
            return self.reply("503 5.5.1 Error: no SMTP service here, only QUIT");
        }
        match verb.as_str() {
            "EHLO" | "HELO" => self.helo(&verb, arg.trim()),
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" if arg.trim().is_empty() => self.data(),
            "DATA" => self.reply("501 5.5.4 Syntax: DATA"),
            "RSET" => {
                self.transaction = None;
                self.reply("250 2.0.0 Ok")
            }
            "NOOP" => self.reply("250 2.0.0 Ok"),
            "VRFY" => self.reply("252 2.0.0 Cannot VRFY user"),
            "HELP" => self.reply("214 2.0.0 See RFC 5321"),
            "EXPN" | "BDAT" | "STARTTLS" | "AUTH" | "ETRN" | "TURN" => {
                self.reply("502 5.5.1 Error: command not implemented")
            }
            _ => self.reply("500 5.5.2 Error: command not recognized"),
        }
    }

    fn helo(&mut self, verb: &str, domain: &str) -> io::Result<Flow> {
        if domain.is_empty() || domain.contains(' ') {
            return self.reply(&format!("501 5.5.4 Syntax: {verb} hostname"));
        }
        let answer = self.shared.answer(&Stage::Ehlo(domain), || {
            if verb == "EHLO" {
                let offered = EhloCapabilities {
                    pipelining: true,
                    size: Some(MAX_SIZE as u64),
                    eight_bit_mime: true,
                    smtputf8: true,
                    dsn: true,
                    enhanced_status_codes: true,
                    ..EhloCapabilities::default()
                };
                let reply = offered.reply(HOSTNAME).to_bytes();
                String::from_utf8_lossy(&reply)
                    .trim_end()
                    .replace("\r\n", "\n")
            } else {
                format!("250 {HOSTNAME}")
            }
        });
        if is_positive(&answer) {
            self.greeted = true;
            self.transaction = None;
        }
        self.reply(&answer)
    }

    fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        if !self.greeted {
            return self.reply("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.transaction.is_some() {
            return self.reply("503 5.5.1 Error: nested MAIL command");
        }
        let Some((address, params)) = strip_keyword(arg, "FROM:").and_then(parse_path) else {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        let size = params.iter().find_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.eq_ignore_ascii_case("SIZE")
                .then(|| value.parse::<u64>())
        });
        match size {
            Some(Err(_)) => return self.reply("501 5.5.4 Error: bad SIZE parameter"),
            Some(Ok(n)) if n > MAX_SIZE as u64 => {
                return self.reply("552 5.3.4 Error: message size exceeds fixed limit");
            }
            _ => {}
        }
        let answer = self
            .shared
            .answer(&Stage::Mail(&address), || "250 2.1.0 Ok".into());
        if is_positive(&answer) {
            self.transaction = Some(Transaction {
                mail_from: address,
                mail_params: params,
                rcpt_to: Vec::new(),
                rcpt_params: Vec::new(),
            });
        }
        self.reply(&answer)
    }

    fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        if self.transaction.is_none() {
            return self.reply("503 5.5.1 Error: need MAIL command");
        }
        let Some((address, params)) = strip_keyword(arg, "TO:").and_then(parse_path) else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if address.is_empty() {
            return self.reply("501 5.1.3 Error: empty recipient address");
        }
        let answer = self
            .shared
            .answer(&Stage::Rcpt(&address), || "250 2.1.5 Ok".into());
        if is_positive(&answer)
            && let Some(t) = self.transaction.as_mut()
        {
            t.rcpt_to.push(address);
            t.rcpt_params.push(params);
        }
        self.reply(&answer)
    }

    fn data(&mut self) -> io::Result<Flow> {
        let transaction = match self.transaction.take() {
            None => return self.reply("503 5.5.1 Error: need RCPT command"),
            Some(t) if t.rcpt_to.is_empty() => {
                self.transaction = Some(t);
                return self.reply("554 5.5.1 Error: no valid recipients");
            }
            Some(t) => t,
        };
        let answer = self.shared.answer(&Stage::Data, || {
            "354 End data with <CR><LF>.<CR><LF>".into()
        });
        if !answer.starts_with('3') {
            self.transaction = Some(transaction);
            return self.reply(&answer);
        }
        self.reply(&answer)?;
        let mut content = Vec::new();
        let mut too_big = false;
        loop {
            if self.read_line()? == Flow::Close {
                return Ok(Flow::Close);
            }
            let line = &self.line[..];
            if line == b".\r\n" {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            if content.len() + line.len() > MAX_SIZE {
                too_big = true;
            }
            if !too_big {
                content.extend_from_slice(line);
            }
        }
        if too_big {
            return self.reply("552 5.3.4 Error: message size exceeds fixed limit");
        }
        let verdict = self.shared.rule(&Stage::EndOfData(&content));
        if let Some(answer) = &verdict
            && !is_positive(answer)
        {
            return self.reply(answer);
        }
        let queued = {
            let mut messages = self.shared.messages();
            messages.push(SunkMessage {
                mail_from: transaction.mail_from,
                mail_params: transaction.mail_params,
                rcpt_to: transaction.rcpt_to,
                rcpt_params: transaction.rcpt_params,
                data: content,
                connection: self.number,
            });
            messages.len()
        };
        let answer = verdict.unwrap_or_else(|| format!("250 2.0.0 Ok: queued as {queued}"));
        self.reply(&answer)
    }
}

/// Whether a reply is a success (2xx) or intermediate (3xx) one.
fn is_positive(reply: &str) -> bool {
    reply.starts_with('2') || reply.starts_with('3')
}

/// `arg` after a case-insensitive `keyword` ("FROM:", "TO:"), with
/// spaces after the colon tolerated.
fn strip_keyword<'s>(arg: &'s str, keyword: &str) -> Option<&'s str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| arg[keyword.len()..].trim_start_matches(' '))
}

/// Splits `<path> PARAM PARAM…` into the address (without brackets and
/// source route) and the parameters.
fn parse_path(s: &str) -> Option<(String, Vec<String>)> {
    let inner = s.strip_prefix('<')?;
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in inner.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '>' && !quoted {
            end = Some(i);
            break;
        }
    }
    let end = end?;
    let mut address = &inner[..end];
    if address.starts_with('@') {
        // A source route "@a,@b:user@c": keep what follows it.
        address = address.split_once(':')?.1;
    }
    let rest = &inner[end + 1..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let params = rest.split_whitespace().map(str::to_owned).collect();
    Some((address.to_owned(), params))
}

/// Reads one LF-terminated line of at most [`MAX_LINE`] octets into `buf`.
fn read_line_limited(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > MAX_LINE {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if complete {
            return Ok(Line::Complete);
        }
    }
}
