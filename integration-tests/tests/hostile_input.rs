//! Hostile input, one attack at a time against one running server: each
//! is answered as Postfix would (the reply is checked), the server does
//! not panic, and afterwards its file descriptors are back where they
//! were and its memory stays bounded (from /proc/PID/status and
//! /proc/PID/fd). Every loop here is bounded in count and time, and all
//! traffic stays on 127.0.0.0/8.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::{Client, Server};

/// The message size limit the attacks run against (10 MiB).
const SIZE_LIMIT: u64 = 10 << 20;
/// The memory budget for message bodies in flight.
const MEMORY_BUDGET: u64 = 64 << 20;
/// How far above its idle size the server may grow during any attack:
/// the body budget plus buffers and allocator slack.
const RSS_SLACK_KIB: u64 = (MEMORY_BUDGET >> 10) + 96 * 1024;

/// What /proc says about the server.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kib: u64,
    hwm_kib: u64,
    fds: usize,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server alive");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    Usage {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        fds,
    }
}

/// Runs `attack`, then checks that the server is alive, logged no panic,
/// gave back its descriptors and stayed within its memory bound.
fn survives(server: &Server, name: &str, attack: impl FnOnce(&Server)) {
    // Reset the peak (VmHWM) to the present size, so that each attack's
    // peak is its own.
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").expect("clear_refs");
    let before = usage(server.pid());
    let started = Instant::now();
    attack(server);
    // Sessions end asynchronously after the client side closes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = usage(server.pid());
        if now.fds <= before.fds || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "{name}: {:.1} s, RSS {} -> {} KiB (peak {} KiB), fds {} -> {}",
        started.elapsed().as_secs_f64(),
        before.rss_kib,
        after.rss_kib,
        after.hwm_kib,
        before.fds,
        after.fds
    );
    // One descriptor of slack: the previous check's client connection may
    // still have been closing when `before` was taken.
    assert!(
        after.fds <= before.fds + 1,
        "{name}: fds {} -> {}",
        before.fds,
        after.fds
    );
    assert!(
        after.hwm_kib <= before.rss_kib + RSS_SLACK_KIB,
        "{name}: peak RSS {} KiB from {} KiB",
        after.hwm_kib,
        before.rss_kib
    );
    let log = server.log();
    assert!(!log.contains("panicked"), "{name}: a panic\n{log}");
    // Still answering.
    let mut c = server.client();
    assert!(c.greeting.starts_with("220 "), "{name}: {}", c.greeting);
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
}

/// One attack against the running server.
type Attack = fn(&Server);

fn ready(server: &Server) -> Client {
    let mut c = server.client();
    assert!(c.cmd("EHLO attacker.test").starts_with("250"));
    c
}

/// Writes `bytes` from another thread while this one reads up to
/// `replies` replies (fewer if the server closes), so that neither side's
/// socket buffer can fill up and stall the other.
fn send_while_reading(c: &mut Client, bytes: Vec<u8>, replies: usize) -> Vec<String> {
    let mut writer = c.stream_clone();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let out = (0..replies).map_while(|_| c.try_read_reply()).collect();
    sender.join().expect("writer");
    out
}

fn smuggling(server: &Server) {
    let mut c = ready(server);
    for ending in [
        "\n.\n", "\r.\n", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r.\r\n", "\n.\r",
    ] {
        assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        c.send(format!("Subject: s\r\n\r\nx{ending}MAIL FROM:<smuggled@evil.test>\r\n").as_bytes());
        let reply = c.cmd(".");
        // Bare CR and LF are either refused whole or normalized; never does
        // the smuggled command run as one.
        assert!(
            reply.starts_with("250 ") || reply.starts_with("550 5.5.2"),
            "{ending:?}: {reply}"
        );
        assert_eq!(
            c.cmd("NOOP"),
            "250 2.0.0 Ok",
            "{ending:?}: a smuggled reply"
        );
        assert_eq!(c.cmd("RSET"), "250 2.0.0 Ok");
    }
}

fn starttls_injection(server: &Server) {
    let mut c = Client::connect(server.addr_of("starttls"));
    assert!(c.cmd("EHLO attacker.test").contains("STARTTLS"));
    c.send(b"STARTTLS\r\nMAIL FROM:<attacker@evil.test>\r\nRCPT TO:<x@evil.test>\r\n");
    assert_eq!(
        c.read_reply(),
        "554 5.5.0 Error: SMTP protocol synchronization"
    );
    assert!(c.is_closed());
}

fn pipelined_recipients(server: &Server) {
    let mut c = ready(server);
    let mut bytes = b"MAIL FROM:<a@example.test>\r\n".to_vec();
    for i in 0..10_000 {
        bytes.extend_from_slice(format!("RCPT TO:<r{i}@example.test>\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"RSET\r\n");
    let replies = send_while_reading(&mut c, bytes, 10_002);
    assert_eq!(replies[0], "250 2.1.0 Ok");
    assert!(
        replies[1..=1000].iter().all(|r| r == "250 2.1.5 Ok"),
        "smtpd_recipient_limit"
    );
    assert_eq!(replies[1001], "452 4.5.3 Error: too many recipients");
    // Each refused recipient is an error, as in Postfix: the session ends
    // at smtpd_hard_error_limit rather than answer 9,000 of them.
    let last = replies.last().expect("replies");
    assert_eq!(last, "421 4.7.0 mx.towerpost.test Error: too many errors");
    assert!(c.is_closed());
}

fn oversized_data(server: &Server) {
    let mut c = ready(server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let line = "0123456789abcdef".repeat(64) + "\r\n";
    let mut writer = c.stream_clone();
    let sender = std::thread::spawn(move || {
        // 100 MiB in 1 MiB writes.
        let chunk = line.repeat(1 << 20 >> 10);
        for _ in 0..100 {
            writer.write_all(chunk.as_bytes()).expect("write the body");
        }
        writer.write_all(b".\r\n").expect("write the end");
    });
    assert_eq!(c.read_reply(), "552 5.3.4 Error: message file too big");
    sender.join().expect("writer");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
}

fn long_lines(server: &Server) {
    let mut c = ready(server);
    let mut line = vec![b'A'; 1 << 20];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    let replies = send_while_reading(&mut c, line, 2);
    assert_eq!(replies, ["500 5.5.2 Error: line too long", "250 2.0.0 Ok"]);
    let body = format!("Subject: long\r\n\r\n{}\r\n", "x".repeat(1 << 20));
    let reply = c.send_mail("a@example.test", &["b@example.test"], &body);
    assert!(
        reply.starts_with("250 ") || reply.starts_with("5"),
        "{reply}"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
}

fn nul_and_eight_bit(server: &Server) {
    let mut c = ready(server);
    c.send(b"MAIL FROM:<a\0b@example.test>\r\n");
    assert_eq!(c.read_reply(), "500 5.5.2 Error: bad syntax");
    c.send(b"\xff\xfe\xfd\r\n");
    let reply = c.read_reply();
    assert!(
        reply.starts_with("500 5.5.") || reply.starts_with("502 5.5.2"),
        "{reply}"
    );
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    c.send("RCPT TO:<jörg@bücher.test>\r\n".as_bytes());
    assert!(
        c.read_reply().starts_with("553 5.6.7"),
        "SMTPUTF8 not asked for"
    );
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
}

fn lying_bdat(server: &Server) {
    let mut c = ready(server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    // More octets than announced: the rest is read as commands.
    c.send(b"BDAT 5\r\nhello, and more than five octets\r\n");
    assert_eq!(c.read_reply(), "250 2.0.0 Ok: 5 bytes");
    let reply = c.read_reply();
    assert!(
        reply.starts_with("502 5.5.2") || reply.starts_with("500 5.5.2"),
        "{reply}"
    );
    // A size past every limit and no octets: the chunk is read (and
    // dropped) as it comes, until the per-record deadline ends the wait.
    let reply = c.cmd("BDAT 18446744073709551615 LAST");
    assert_eq!(reply, "421 4.4.2 mx.towerpost.test Error: timeout exceeded");
    assert!(c.is_closed());
    // Fewer octets than announced, then the client goes away.
    let mut c = ready(server);
    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
    c.send(b"BDAT 1000000 LAST\r\nonly this");
    drop(c);
    server.wait_for_log("lost connection after BDAT");
}

fn slowloris(server: &Server) {
    // 20 clients send a byte every 500 ms, of a command line or of DATA;
    // the per-record deadline (smtpd_timeout 10 s) ends every one.
    let clients: Vec<std::thread::JoinHandle<String>> = (0..20)
        .map(|i| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                if i % 2 == 1 {
                    assert!(c.cmd("EHLO slow.test").starts_with("250"));
                    assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
                    assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
                    assert!(c.cmd("DATA").starts_with("354"));
                }
                let mut stream = c.stream_clone();
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(40) {
                    if stream.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    if c.closed_within(Duration::from_millis(1)) {
                        break;
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "a trickle held a session"
                );
                String::new()
            })
        })
        .collect();
    for c in clients {
        c.join().expect("slow client");
    }
}

fn one_address_many_connections(server: &Server) {
    // From outside mynetworks, which smtpd_client_event_limit_exceptions
    // exempts by default.
    let mut held = Vec::new();
    let mut greeted = 0;
    let mut refused = 0;
    for _ in 0..2000 {
        let c = Client::connect_from(server.addr(), "127.0.0.2");
        if c.greeting.starts_with("220 ") {
            greeted += 1;
            held.push(c);
        } else {
            // Refused by the per-client limit, or, while many refused
            // sessions are still closing, by the global one.
            assert!(
                c.greeting.starts_with(
                    "421 4.7.0 mx.towerpost.test Error: too many connections from 127.0.0.2"
                ) || c
                    .greeting
                    .starts_with("421 4.3.2 mx.towerpost.test Service currently unavailable"),
                "{}",
                c.greeting
            );
            refused += 1;
        }
    }
    assert_eq!(greeted, 50, "smtpd_client_connection_count_limit");
    assert_eq!(refused, 1950);
    server.wait_for_log("Connection concurrency limit exceeded: 51 from unknown[127.0.0.2]");
}

fn many_addresses_in_data(server: &Server) {
    // 60 clients from 60 addresses each send 4 MB of an unfinished DATA:
    // 240 MB against a 64 MiB budget. Beyond its first 256 KiB each body
    // goes to its content file as it arrives, so a session holds about
    // 512 KiB at most and every one is queued; the suite's RSS check
    // shows memory stayed bounded (the budget's own 452 is load.rs's).
    let chunk = ("y".repeat(998) + "\r\n").repeat(1024);
    let mut held = Vec::new();
    for i in 0..60 {
        let mut c = Client::connect_from(server.addr(), &format!("127.0.1.{}", i + 1));
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        assert_eq!(c.cmd("MAIL FROM:<a@example.test>"), "250 2.1.0 Ok");
        assert_eq!(c.cmd("RCPT TO:<b@example.test>"), "250 2.1.5 Ok");
        assert!(c.cmd("DATA").starts_with("354"));
        for _ in 0..4 {
            c.send(chunk.as_bytes());
        }
        held.push(c);
    }
    let replies: Vec<String> = held.iter_mut().map(|c| c.cmd(".")).collect();
    let queued = replies
        .iter()
        .filter(|r| r.starts_with("250 2.0.0 Ok: queued as"))
        .count();
    let refused = replies
        .iter()
        .filter(|r| *r == "452 4.3.1 Insufficient system storage")
        .count();
    assert_eq!(
        queued, 60,
        "{queued} queued, {refused} refused: {replies:?}"
    );
}

fn invalid_tls(server: &Server) {
    for _ in 0..50 {
        let mut s = TcpStream::connect(server.addr_of("submissions")).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = s.write_all(b"\x16\x03\x01\x00\x05hello, not a ClientHello\r\nEHLO x\r\n");
        // An alert or a close, never a greeting, and not a wait for more.
        let mut answer = Vec::new();
        match s.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("garbage TLS left open: {e}"),
        }
        assert!(!answer.starts_with(b"220"), "greeted over garbage TLS");
        assert!(answer.len() < 64, "more than an alert: {answer:?}");
    }
    let mut c = Client::connect(server.addr_of("starttls"));
    assert!(c.cmd("EHLO attacker.test").contains("STARTTLS"));
    assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 Ready to start TLS");
    c.send(b"\x16\x03\x03\xff\xffgarbage");
    assert!(c.closed_within(Duration::from_secs(10)));
}

fn control_socket_abuse(server: &Server) {
    use std::os::unix::net::UnixStream;
    let socket = server.spool().join("control.sock");
    let answer = |request: &[u8]| -> String {
        let mut s = UnixStream::connect(&socket).expect("control socket");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let _ = s.write_all(request);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(answer(b"not json\n").contains("bad request"));
    let reply = answer(b"{\"command\":\"flush\",\"target\":{\"site\":\"\\u0000\"}}\n");
    assert!(
        reply.contains("error") || reply.contains("refused"),
        "{reply}"
    );
    assert!(answer(&vec![b'['; 100_000]).contains("bad request"));
    // Idle connections while SMTP goes on.
    let idle: Vec<UnixStream> = (0..300)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    let mut c = server.client();
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    drop(idle);
}

#[test]
fn hostile_input_is_answered_and_leaves_nothing_behind() {
    let server = Server::start_with(
        &format!(
            "message_size_limit = {SIZE_LIMIT}\nsmtpd_message_memory_limit = {MEMORY_BUDGET}\n\
             smtpd_timeout = \"10s\"\nsmtpd_per_record_deadline = true\n\
             smtpd_client_connection_count_limit = 50\nsmtpd_session_limit = 500\n\
             mynetworks = [\"127.0.0.1/32\"]\nrelay_domains = [\"example.test\"]\n\
             smtpd_soft_error_limit = 1000\nsmtpd_hard_error_limit = 1000\n\
             smtpd_junk_command_limit = 1000"
        ),
        &[
            ("smtp", "none"),
            ("starttls", "starttls"),
            ("submissions", "implicit"),
        ],
    );
    let attacks: &[(&str, Attack)] = &[
        ("smuggling", smuggling),
        ("starttls_injection", starttls_injection),
        ("pipelined_recipients", pipelined_recipients),
        ("oversized_data", oversized_data),
        ("long_lines", long_lines),
        ("nul_and_eight_bit", nul_and_eight_bit),
        ("lying_bdat", lying_bdat),
        ("slowloris", slowloris),
        ("one_address_many_connections", one_address_many_connections),
        ("many_addresses_in_data", many_addresses_in_data),
        ("invalid_tls", invalid_tls),
        ("control_socket_abuse", control_socket_abuse),
    ];
    for (name, attack) in attacks {
        survives(&server, name, attack);
    }
}

/// Values no configuration should have: each is refused by `config check`
/// with the key named, promptly, and never read without a bound.
#[test]
fn hostile_config_values_are_refused_naming_the_key() {
    let cases: &[(&str, &str)] = &[
        ("message_size_limit = -1", "message_size_limit"),
        ("queue_shard_count = 0", "queue_shard_count"),
        ("smtpd_timeout = \"1e400s\"", "smtpd_timeout"),
        ("smtpd_banner = \"${unterminated\"", "smtpd_banner"),
        ("fast_flush_domains = \"/dev/zero\"", "/dev/zero"),
        (
            "smtpd_client_restrictions = \"check_client_access /dev/zero\"",
            "/dev/zero",
        ),
        ("mynetworks = [\"300.0.0.0/99\"]", "mynetworks"),
        (
            "[[listener]]\nname = \"x\"\naddress = \"127.0.0.1:99999\"",
            "address",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let fifo_table = format!(
        "smtpd_client_restrictions = \"check_client_access {}\"",
        fifo.display()
    );
    let long_key = format!("{} = 1", "k".repeat(70_000));
    let mut all: Vec<(&str, &str)> = cases.to_vec();
    all.push((&long_key, "unknown key"));
    all.push((&fifo_table, "not a regular file"));
    for (text, named) in all {
        let path = dir.path().join("towerpost.toml");
        let err_path = dir.path().join("stderr");
        std::fs::write(&path, text).expect("write config");
        let mut child = std::process::Command::new(integration_tests::towerpost_bin())
            .arg("--config")
            .arg(&path)
            .args(["config", "check"])
            .stdout(std::process::Stdio::null())
            // A file, not a pipe: a long error must not block the child.
            .stderr(std::fs::File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("run towerpost");
        let start = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!(
                    "config check hung on {:?}",
                    text.chars().take(60).collect::<String>()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.wait().expect("exit status");
        let stderr = std::fs::read_to_string(&err_path).expect("stderr");
        let shown: String = text.chars().take(60).collect();
        assert!(!status.success(), "{shown}: accepted");
        assert!(stderr.contains(named), "{shown}: {stderr}");
        assert!(
            stderr.contains("towerpost.toml"),
            "{shown}: no file named: {stderr}"
        );
    }
}
