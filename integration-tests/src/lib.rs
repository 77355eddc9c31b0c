//! Harness for black-box tests: starts the real `towerpost` binary on a
//! loopback port with a temporary spool, and talks SMTP to it.
//!
//! Tests that need an outside client (swaks, Python, Postfix's
//! smtp-source) skip with a loud message when it is not installed, unless
//! `REQUIRE_TEST_TOOLS=1` is set — CI sets it, so there nothing is
//! skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

pub mod sink;

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The towerpost binary, built on first use so the tests never run an
/// outdated one.
pub fn towerpost_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/towerpost
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    BUILD.call_once(|| {
        let release = profile_dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "towerpost", "--bin", "towerpost"]);
        // Cargo gives a test process variables of its own (CARGO_PKG_*,
        // CARGO_MANIFEST_DIR, …); passed on, they change what build
        // scripts see and force a rebuild of half the workspace per run.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
                cmd.env_remove(name);
            }
        }
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of towerpost failed");
    });
    profile_dir.join("towerpost")
}

/// An example of the `towerpost` crate, built on first use.
pub fn example_bin(name: &str) -> PathBuf {
    let bin = towerpost_bin();
    let dir = bin.parent().expect("target directory").to_owned();
    let release = dir.ends_with("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "towerpost", "--example", name]);
    if release {
        cmd.arg("--release");
    }
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy().into_owned();
        if var.starts_with("CARGO_") && var != "CARGO_HOME" && var != "CARGO_TARGET_DIR" {
            cmd.env_remove(var);
        }
    }
    assert!(
        cmd.status().expect("run cargo build").success(),
        "building example {name} failed"
    );
    dir.join("examples").join(name)
}

/// Whether an outside tool is installed; panics when it is missing and
/// `REQUIRE_TEST_TOOLS=1`, prints a skip notice otherwise.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("REQUIRE_TEST_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (REQUIRE_TEST_TOOLS=1) but not installed");
        }
        eprintln!("SKIPPED: {name} is not installed; install it to run this test");
    }
    found
}

/// A running towerpost with its own spool and config file.
pub struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    listeners: Vec<(String, SocketAddr)>,
    log: Arc<Mutex<String>>,
    /// An example program to run instead of `towerpost serve`, with extra
    /// environment; it reads its config from TOWERPOST_CONFIG.
    program: Option<(PathBuf, Vec<(String, String)>)>,
    /// Set to stop following `maillog_file`, when one is configured.
    following: Option<Arc<AtomicBool>>,
}

impl Server {
    /// Starts a server with the given extra top-level configuration lines
    /// (a `queue_directory` among them replaces the temporary spool) and
    /// one plain listener named `smtp`.
    pub fn start(extra_config: &str) -> Server {
        Server::start_with(extra_config, &[("smtp", "none")])
    }

    /// Starts a server with listeners given as (name, tls mode). When one
    /// uses TLS and `extra_config` names no `smtpd_tls_cert_file`, a
    /// self-signed certificate for `mx.towerpost.test` is made and
    /// configured.
    pub fn start_with(extra_config: &str, listeners: &[(&str, &str)]) -> Server {
        let listeners: Vec<(&str, &str, &str)> =
            listeners.iter().map(|(n, tls)| (*n, *tls, "")).collect();
        Server::start_with_listeners(extra_config, &listeners)
    }

    /// Like [`Server::start_with`], each listener given as (name, tls
    /// mode, extra lines of its `[[listener]]` table).
    pub fn start_with_listeners(extra_config: &str, listeners: &[(&str, &str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = String::from("myhostname = \"mx.towerpost.test\"\n");
        if !extra_config.contains("queue_directory") {
            let spool = dir.path().join("spool");
            config.push_str(&format!("queue_directory = \"{}\"\n", spool.display()));
        }
        if listeners.iter().any(|(_, tls, _)| *tls != "none")
            && !extra_config.contains("smtpd_tls_cert_file")
        {
            let (cert, key) = write_certificate(dir.path());
            config.push_str(&format!(
                "smtpd_tls_cert_file = \"{}\"\nsmtpd_tls_key_file = \"{}\"\n",
                cert.display(),
                key.display()
            ));
        }
        config.push_str(extra_config);
        config.push('\n');
        for (name, tls, extra) in listeners {
            config.push_str(&format!(
                "\n[[listener]]\nname = \"{name}\"\naddress = \"127.0.0.1:0\"\ntls = \"{tls}\"\n{extra}\n"
            ));
        }
        std::fs::write(dir.path().join("towerpost.toml"), config).expect("write config");
        let mut server = Server {
            dir,
            child: None,
            program: None,
            following: None,
            listeners: listeners
                .iter()
                .map(|(n, _, _)| ((*n).to_owned(), "127.0.0.1:0".parse().expect("address")))
                .collect(),
            log: Arc::new(Mutex::new(String::new())),
        };
        server.spawn();
        server
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("towerpost.toml")
    }

    /// The spool directory.
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Starts one of the `towerpost` crate's examples (built on first use)
    /// as the server, with `extra_config` and `env`.
    pub fn start_example(name: &str, extra_config: &str, env: &[(&str, &str)]) -> Server {
        let mut server = Server {
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            program: Some((
                example_bin(name),
                env.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )),
            listeners: vec![("smtp".into(), "127.0.0.1:0".parse().expect("address"))],
            log: Arc::new(Mutex::new(String::new())),
            following: None,
        };
        let config = format!(
            "myhostname = \"mx.towerpost.test\"\nqueue_directory = \"{}\"\n{extra_config}\n\n[[listener]]\nname = \"smtp\"\naddress = \"127.0.0.1:0\"\n",
            server.dir.path().join("spool").display()
        );
        std::fs::write(server.config_path(), config).expect("write config");
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut cmd = match &self.program {
            Some((path, env)) => {
                let mut cmd = Command::new(path);
                cmd.envs(env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            None => {
                let mut cmd = Command::new(towerpost_bin());
                cmd.arg("--config").arg(self.config_path()).arg("serve");
                cmd
            }
        };
        // Only the test's config file configures the server under test.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TOWERPOST_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd
            .env("TOWERPOST_CONFIG", self.config_path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start towerpost");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        let listeners = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                record_line(&line, &listeners, &log);
            }
        });
        // With `maillog_file` the log goes there: follow it, through
        // rotations, for the whole life of this Server.
        if let Some(path) = maillog_file(&self.config_path())
            && self.following.is_none()
        {
            let stop = Arc::new(AtomicBool::new(false));
            self.following = Some(stop.clone());
            let log = self.log.clone();
            std::thread::spawn(move || follow(&path, &stop, |line| record_line(line, &tx, &log)));
        }
        for _ in 0..self.listeners.len() {
            let (name, addr) = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("towerpost did not start; log:\n{}", self.log())
            });
            let addr = addr.parse().expect("listener address in log");
            if let Some(l) = self.listeners.iter_mut().find(|(n, _)| *n == name) {
                l.1 = addr;
            }
        }
        self.child = Some(child);
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The address of the listener named `name`.
    pub fn addr_of(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no listener {name}"))
            .1
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < WAIT,
                "log never showed {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects a client and reads the greeting.
    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns its log.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(start.elapsed() < WAIT, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same spool (after `kill9`/`terminate`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// Runs `towerpost --config … <args>` and returns (status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (std::process::ExitStatus, String, String) {
        let out = Command::new(towerpost_bin())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("run towerpost");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The queue as `queue list --json` reports it: one JSON value per message.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let (status, stdout, stderr) = self.cli(&["queue", "list", "--json"]);
        assert!(status.success(), "queue list failed: {stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("queue list JSON"))
            .collect()
    }

    /// The queue ids listed.
    pub fn queue_ids(&self) -> Vec<String> {
        self.queue()
            .iter()
            .map(|m| m["queue_id"].as_str().expect("queue_id").to_owned())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(stop) = &self.following {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Adds one log line to `log`, and reports a `listener NAME on ADDRESS`
/// line (plain or JSON) to `listeners`.
fn record_line(
    line: &str,
    listeners: &std::sync::mpsc::Sender<(String, String)>,
    log: &Mutex<String>,
) {
    let text = if line.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["message"].as_str().map(|m| format!(" {m}")))
            .unwrap_or_default()
    } else {
        line.to_owned()
    };
    if let Some(rest) = text.split(" listener ").nth(1)
        && let Some((name, addr)) = rest.split_once(" on ")
    {
        let _ = listeners.send((name.to_owned(), addr.trim().to_owned()));
    }
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.push_str(line);
    log.push('\n');
}

/// The `maillog_file = "…"` line of a config file, if any.
fn maillog_file(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    text.lines().find_map(|l| {
        let value = l
            .trim()
            .strip_prefix("maillog_file")?
            .trim()
            .strip_prefix('=')?;
        let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        (!value.is_empty()).then(|| PathBuf::from(value))
    })
}

/// Calls `on_line` with each line appended to the file at `path`, like
/// `tail -F`: when the name comes to mean a new file (logrotate moved the
/// old one, the server reopened), the old file is read to its end first.
/// Returns once `stop` is set and nothing more has arrived.
fn follow(path: &Path, stop: &AtomicBool, mut on_line: impl FnMut(&str)) {
    use std::os::unix::fs::MetadataExt;
    let mut current: Option<(std::fs::File, u64)> = None;
    let mut partial = Vec::new();
    let mut drain = |file: &mut std::fs::File, partial: &mut Vec<u8>| {
        let mut got = false;
        let mut buf = [0u8; 8192];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            got = true;
            partial.extend_from_slice(&buf[..n]);
            while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                on_line(String::from_utf8_lossy(&line[..end]).as_ref());
            }
        }
        got
    };
    loop {
        if current.is_none()
            && let Ok(file) = std::fs::File::open(path)
            && let Ok(meta) = file.metadata()
        {
            current = Some((file, meta.ino()));
        }
        let mut got = false;
        if let Some((file, inode)) = &mut current {
            got = drain(file, &mut partial);
            let renamed = std::fs::metadata(path).is_ok_and(|m| m.ino() != *inode);
            if !got && renamed {
                // The writer switched only after its last line here.
                drain(file, &mut partial);
                current = None;
                continue;
            }
        }
        if !got && stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal SMTP client: writes raw bytes, reads whole replies.
pub struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// The greeting line.
    pub greeting: String,
}

impl Client {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wraps a connected stream and reads the 220 greeting.
    pub fn from_stream(stream: TcpStream) -> Client {
        let mut c = Client::wrap(stream);
        c.greeting = c.read_reply();
        c
    }

    /// Connects from the source address `local` (any 127.0.0.0/8 address,
    /// so a test can be a client outside `mynetworks`) and reads the
    /// greeting.
    pub fn connect_from(server: SocketAddr, local: &str) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let local: SocketAddr = format!("{local}:0").parse().expect("address");
        socket.bind(&local.into()).expect("bind");
        socket.connect(&server.into()).expect("connect");
        Client::from_stream(socket.into())
    }

    /// Connects without reading anything.
    pub fn connect_silent(addr: SocketAddr) -> Client {
        Client::wrap(TcpStream::connect(addr).expect("connect"))
    }

    fn wrap(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        // Content and its final dot go in two writes: without this, Nagle
        // holds the dot for the server's delayed ACK (40 ms a message).
        stream.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client {
            stream,
            reader,
            greeting: String::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads one reply (all its lines), returned as the lines joined by `\n`.
    pub fn read_reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed; got so far: {lines:?}");
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Reads one reply; `None` if the connection broke first.
    pub fn try_read_reply(&mut self) -> Option<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Some(lines.join("\n"));
            }
        }
    }

    /// Like [`Client::send_mail`], but `None` when the server goes away
    /// (for tests that kill it mid-session).
    pub fn try_send_mail(&mut self, from: &str, to: &[&str], content: &str) -> Option<String> {
        let mut step = |line: String| -> Option<String> {
            self.stream.write_all(line.as_bytes()).ok()?;
            self.try_read_reply()
        };
        step("EHLO client.test\r\n".into())?;
        step(format!("MAIL FROM:<{from}>\r\n"))?;
        for rcpt in to {
            step(format!("RCPT TO:<{rcpt}>\r\n"))?;
        }
        step("DATA\r\n".into())?;
        step(format!("{content}.\r\n"))
    }

    /// Sends a command line and reads its reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Runs EHLO, MAIL, RCPT…, DATA and the content; returns the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], content: &str) -> String {
        assert!(self.cmd("EHLO client.test").starts_with("250"));
        assert_eq!(self.cmd(&format!("MAIL FROM:<{from}>")), "250 2.1.0 Ok");
        for rcpt in to {
            assert_eq!(self.cmd(&format!("RCPT TO:<{rcpt}>")), "250 2.1.5 Ok");
        }
        assert!(self.cmd("DATA").starts_with("354"));
        self.send(content.as_bytes());
        self.cmd(".")
    }

    /// A handle on the socket, for writing while reading elsewhere.
    pub fn stream_clone(&self) -> TcpStream {
        self.stream.try_clone().expect("clone")
    }

    /// Whether the server closes the connection within `wait` (anything
    /// it sends meanwhile is read and dropped).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                let _ = self.stream.set_read_timeout(Some(WAIT));
                return false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    let _ = self.stream.set_read_timeout(Some(WAIT));
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// Whether the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// `towerpost passwd --file FILE add USER --password-stdin`: a user of
/// an AUTH password file, made as an operator makes one.
pub fn add_sasl_user(file: &Path, user: &str, password: &str) {
    let mut child = Command::new(towerpost_bin())
        .args(["passwd", "--file"])
        .arg(file)
        .args(["add", user, "--password-stdin"])
        .env_remove("TOWERPOST_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run towerpost passwd");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    let out = child.wait_with_output().expect("wait for towerpost passwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The queue id from a `250 2.0.0 Ok: queued as ID` reply.
pub fn queued_id(reply: &str) -> String {
    reply
        .rsplit("queued as ")
        .next()
        .filter(|_| reply.starts_with("250"))
        .unwrap_or_else(|| panic!("not a queued reply: {reply}"))
        .trim()
        .to_owned()
}

/// Writes a self-signed certificate for `mx.towerpost.test` and its key as
/// PEM files into `dir`.
pub fn write_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["mx.towerpost.test".to_owned()])
        .expect("generate certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

/// Writes a PEM file holding a new private key and a self-signed
/// certificate for `names` (the form of `smtpd_tls_chain_files`); returns
/// the certificate alone, PEM.
pub fn write_chain_file(path: &Path, names: &[&str]) -> String {
    let certified = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .expect("generate certificate");
    let cert = certified.cert.pem();
    std::fs::write(
        path,
        format!("{}{cert}", certified.signing_key.serialize_pem()),
    )
    .expect("write chain file");
    cert
}

/// Runs a Python 3 script (`python3 -c`) with `args`, asserts that it
/// succeeded (showing its output if not) and returns its standard output.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The Debian package python3-aiosmtpd installs for the system Python.
pub const AIOSMTPD_PYTHON: &str = "/usr/bin/python3";

/// Whether Python's aiosmtpd is installed; without it, a printed reason
/// (and a failure under `REQUIRE_TEST_TOOLS=1`).
pub fn have_aiosmtpd() -> bool {
    let found = Command::new(AIOSMTPD_PYTHON)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("REQUIRE_TEST_TOOLS").as_deref() != Ok("1"),
            "python3-aiosmtpd is required (REQUIRE_TEST_TOOLS=1) but not installed"
        );
        eprintln!("SKIPPED: python3-aiosmtpd is not installed");
    }
    found
}

/// A Python SMTP server (an aiosmtpd script that prints `READY <port>`
/// once it listens), killed when dropped.
pub struct PythonServer {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl PythonServer {
    /// Runs `script` with `args` and waits for its `READY <port>` line.
    pub fn start(script: &str, args: &[&std::ffi::OsStr]) -> PythonServer {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(AIOSMTPD_PYTHON)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read aiosmtpd's READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("aiosmtpd did not start: {line:?}"));
        PythonServer { child, port }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
