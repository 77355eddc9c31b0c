//! A listener behind a TCP proxy (`smtpd_upstream_proxy_protocol =
//! "haproxy"`): the client a PROXY header names, version 1 or 2, is the
//! one `mynetworks`, logs and `Received:` see; a connection without a good
//! header, or a slow one, is closed without a greeting; a listener without
//! the option reads no header.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::sink::Sink;
use integration_tests::{Client, Server};

/// A server with a proxied listener and a plain one, relaying to `sink`.
fn server(sink: &Sink) -> Server {
    Server::start_with_listeners(
        &format!(
            "relayhost = \"[127.0.0.1]:{}\"\nsmtpd_upstream_proxy_timeout = \"1s\"",
            sink.addr().port()
        ),
        &[
            (
                "proxied",
                "none",
                "smtpd_upstream_proxy_protocol = \"haproxy\"",
            ),
            ("smtp", "none", ""),
        ],
    )
}

/// Connects to `listener` and sends `header` first, as HAProxy does.
fn proxied(server: &Server, header: &[u8]) -> Client {
    let mut stream = TcpStream::connect(server.addr_of("proxied")).expect("connect");
    stream.write_all(header).expect("header");
    Client::from_stream(stream)
}

fn v2_ipv4(client: [u8; 4], client_port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&client_port.to_be_bytes());
    h.extend_from_slice(&25u16.to_be_bytes());
    h
}

#[test]
fn the_header_names_the_client_for_mynetworks_logs_and_received() {
    let sink = Sink::start();
    let server = server(&sink);

    // v1, from outside mynetworks: the proxy's own 127.0.0.1 would relay.
    let mut c = proxied(&server, b"PROXY TCP4 192.0.2.10 127.0.0.1 5555 25\r\n");
    assert!(c.greeting.starts_with("220 "), "{}", c.greeting);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert_eq!(c.cmd("MAIL FROM:<a@client.test>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.test>"),
        "454 4.7.1 <x@elsewhere.test>: Relay access denied"
    );
    server.wait_for_log("connect from unknown[192.0.2.10]");
    server.wait_for_log("NOQUEUE: reject: RCPT from unknown[192.0.2.10]: 454 4.7.1");

    // v2, from inside mynetworks (another loopback address than the
    // socket's): relayed, and the Received header names it.
    let mut c = proxied(&server, &v2_ipv4([127, 0, 0, 7], 4000));
    let reply = c.send_mail(
        "a@client.test",
        &["x@elsewhere.test"],
        "Subject: proxied\r\n\r\nbody\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let got = sink.wait_for(1, Duration::from_secs(20));
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(
        data.contains("from client.test (unknown [127.0.0.7])"),
        "{data}"
    );
    server.wait_for_log("client=unknown[127.0.0.7]");
}

/// What a connection got before it was closed, and when it closed.
fn closed_without_greeting(mut stream: TcpStream) -> (Vec<u8>, Duration) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    (got, start.elapsed())
}

#[test]
fn a_bad_or_slow_header_closes_the_connection_without_a_greeting() {
    let sink = Sink::start();
    let server = server(&sink);

    let mut stream = TcpStream::connect(server.addr_of("proxied")).unwrap();
    stream.write_all(b"EHLO client.test\r\n").unwrap();
    let (got, _) = closed_without_greeting(stream);
    assert_eq!(got, b"", "no greeting for a connection without a header");
    server.wait_for_log("haproxy read: not a PROXY protocol header: EHLO ");

    let mut stream = TcpStream::connect(server.addr_of("proxied")).unwrap();
    stream
        .write_all(b"PROXY TCP4 192.0.2.300 127.0.0.1 5555 25\r\n")
        .unwrap();
    let (got, _) = closed_without_greeting(stream);
    assert_eq!(got, b"");
    server.wait_for_log("PROXY TCP4 192.0.2.300 127.0.0.1 5555 25\\r\\n; closing the connection from unknown[127.0.0.1]");

    // Half a header, then nothing: closed after smtpd_upstream_proxy_timeout.
    let mut stream = TcpStream::connect(server.addr_of("proxied")).unwrap();
    stream.write_all(b"PROXY TCP4 192.0.2.10 ").unwrap();
    let (got, waited) = closed_without_greeting(stream);
    assert_eq!(got, b"");
    assert!(waited < Duration::from_secs(15), "closed after {waited:?}");
    server.wait_for_log("haproxy read: timeout error");
    assert!(!server.log().contains("connect from unknown[192.0.2.10]"));
}

#[test]
fn a_listener_without_the_option_reads_no_header() {
    let sink = Sink::start();
    let server = server(&sink);
    let mut c = Client::connect(server.addr_of("smtp"));
    assert!(c.greeting.starts_with("220 "));
    assert_eq!(
        c.cmd("PROXY TCP4 192.0.2.10 127.0.0.1 5555 25"),
        "502 5.5.2 Error: command not recognized"
    );
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    server.wait_for_log("connect from unknown[127.0.0.1]");
    assert!(!server.log().contains("192.0.2.10"));
}

/// HAProxy itself in front, with `send-proxy` (v1) and `send-proxy-v2`:
/// the client that connected to HAProxy is the one towerpost sees.
#[test]
fn behind_haproxy_the_client_is_the_one_haproxy_accepted() {
    if !integration_tests::have_tool("haproxy") {
        return;
    }
    let sink = Sink::start();
    let server = server(&sink);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (v1, v2) = (free(), free());
    let backend = server.addr_of("proxied");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen v1\n  bind 127.0.0.1:{v1}\n  server tp {backend} send-proxy\n\
             listen v2\n  bind 127.0.0.1:{v2}\n  server tp {backend} send-proxy-v2\n"
        ),
    )
    .unwrap();
    let haproxy = std::process::Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start haproxy");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _haproxy = Stop(haproxy);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", v2)).is_err()
        || TcpStream::connect(("127.0.0.1", v1)).is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "haproxy did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    for (port, from) in [(v1, "127.0.0.21"), (v2, "127.0.0.22")] {
        let mut c = Client::connect_from(format!("127.0.0.1:{port}").parse().unwrap(), from);
        assert!(c.greeting.starts_with("220 "), "{}", c.greeting);
        let reply = c.send_mail(
            "a@client.test",
            &["x@elsewhere.test"],
            "Subject: via haproxy\r\n\r\nbody\r\n",
        );
        assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
        server.wait_for_log(&format!("client=unknown[{from}]"));
    }
    let got = sink.wait_for(2, Duration::from_secs(20));
    let received: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect();
    assert!(
        received
            .iter()
            .any(|d| d.contains("(unknown [127.0.0.21])")),
        "{received:?}"
    );
    assert!(
        received
            .iter()
            .any(|d| d.contains("(unknown [127.0.0.22])")),
        "{received:?}"
    );
}
