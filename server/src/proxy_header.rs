//! The PROXY protocol header (HAProxy's, versions 1 and 2) that a TCP
//! proxy or balancer sends before anything else, naming the client it
//! accepted: read on listeners with `smtpd_upstream_proxy_protocol =
//! "haproxy"`, before the greeting. The header is parsed by the `ppp`
//! crate; this module only frames it, so that not one byte past it is
//! taken from the stream (the SMTP session reads what follows).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 header's fixed part: 12 octets of signature, version and
/// command, family and protocol, and the length of the rest.
const V2_FIXED: usize = 16;
/// A v1 header is one line of at most 107 octets, CRLF included.
const V1_MAX: usize = 107;
/// The largest v2 header accepted: addresses (at most 216 octets, for
/// UNIX sockets) and TLVs such as HAProxy's unique id and TLS details.
const V2_MAX: usize = 4096;

/// Whom the connection is from, as the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announced {
    /// A proxied client, and the address it connected to.
    Client {
        /// The real client.
        client: SocketAddr,
        /// The address the client connected to (the proxy's).
        server: SocketAddr,
    },
    /// The proxy's own connection (v2 `LOCAL`, such as a health check):
    /// the socket's addresses stand.
    Proxy,
}

/// Why a connection's header was not accepted; the text follows Postfix's
/// `haproxy read:` warnings.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Nothing complete within `smtpd_upstream_proxy_timeout`.
    #[error("timeout error")]
    Timeout,
    /// The connection closed first.
    #[error("unexpected EOF")]
    Eof,
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// What arrived is not a header this server accepts.
    #[error("{why}: {seen}")]
    Invalid {
        /// What is wrong.
        why: String,
        /// The octets received, escaped.
        seen: String,
    },
}

/// Reads the header at the start of `stream` within `timeout`.
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Announced, HeaderError> {
    tokio::time::timeout(timeout, receive(stream))
        .await
        .map_err(|_| HeaderError::Timeout)?
}

async fn receive(stream: &mut TcpStream) -> Result<Announced, HeaderError> {
    let mut header = vec![0; 5];
    read_exact(stream, &mut header).await?;
    if header == b"PROXY" {
        read_line(stream, &mut header).await?;
        return parse_v1(&header);
    }
    if header[..] != b"\r\n\r\n\0"[..] {
        return Err(invalid("not a PROXY protocol header", &header));
    }
    header.resize(V2_FIXED, 0);
    read_exact(stream, &mut header[5..]).await?;
    let rest = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if V2_FIXED + rest > V2_MAX {
        return Err(invalid(
            &format!(
                "v2 header of {} octets, more than {V2_MAX}",
                V2_FIXED + rest
            ),
            &header,
        ));
    }
    header.resize(V2_FIXED + rest, 0);
    read_exact(stream, &mut header[V2_FIXED..]).await?;
    parse_v2(&header)
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), HeaderError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(HeaderError::Eof),
        Err(e) => Err(e.into()),
    }
}

/// Reads up to and including the line's LF, and nothing after it: what has
/// arrived is peeked at, and only the header's part of it read.
async fn read_line(stream: &mut TcpStream, line: &mut Vec<u8>) -> Result<(), HeaderError> {
    let mut peeked = [0; V1_MAX];
    loop {
        let room = V1_MAX - line.len();
        if room == 0 {
            return Err(invalid("line > 107 characters", line));
        }
        let n = stream.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(HeaderError::Eof);
        }
        let take = peeked[..n]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(n, |lf| lf + 1);
        let start = line.len();
        line.resize(start + take, 0);
        read_exact(stream, &mut line[start..]).await?;
        if line.ends_with(b"\n") {
            return Ok(());
        }
    }
}

fn parse_v1(header: &[u8]) -> Result<Announced, HeaderError> {
    use ppp::v1::{Addresses, Header};
    match Header::try_from(header) {
        Ok(h) => Ok(match h.addresses {
            // As Postfix: a client without an address would pass for the
            // proxy in `mynetworks`.
            Addresses::Unknown => return Err(invalid("unsupported protocol type", header)),
            Addresses::Tcp4(a) => client(
                IpAddr::V4(a.source_address),
                a.source_port,
                IpAddr::V4(a.destination_address),
                a.destination_port,
            ),
            Addresses::Tcp6(a) => client(
                IpAddr::V6(a.source_address),
                a.source_port,
                IpAddr::V6(a.destination_address),
                a.destination_port,
            ),
        }),
        Err(e) => Err(invalid(&e.to_string(), header)),
    }
}

fn parse_v2(header: &[u8]) -> Result<Announced, HeaderError> {
    use ppp::v2::{Addresses, Command, Header, Protocol};
    let h = Header::try_from(header).map_err(|e| invalid(&e.to_string(), header))?;
    if h.command == Command::Local {
        return Ok(Announced::Proxy);
    }
    if h.protocol != Protocol::Stream {
        return Err(invalid("unsupported protocol type", header));
    }
    match h.addresses {
        // A proxied client without an address: refused as v1's UNKNOWN.
        Addresses::Unspecified => Err(invalid("unsupported address family", header)),
        Addresses::IPv4(a) => Ok(client(
            IpAddr::V4(a.source_address),
            a.source_port,
            IpAddr::V4(a.destination_address),
            a.destination_port,
        )),
        Addresses::IPv6(a) => Ok(client(
            IpAddr::V6(a.source_address),
            a.source_port,
            IpAddr::V6(a.destination_address),
            a.destination_port,
        )),
        Addresses::Unix(_) => Err(invalid("unsupported address family", header)),
    }
}

/// An IPv4 client announced in IPv6 form (`::ffff:192.0.2.1`) is the IPv4
/// client, as Postfix converts it: `mynetworks` is written in IPv4.
fn client(ip: IpAddr, port: u16, server_ip: IpAddr, server_port: u16) -> Announced {
    Announced::Client {
        client: SocketAddr::new(ip.to_canonical(), port),
        server: SocketAddr::new(server_ip.to_canonical(), server_port),
    }
}

/// Octets of a refused header shown in its log line.
const SHOWN: usize = 100;

fn invalid(why: &str, seen: &[u8]) -> HeaderError {
    // The parser's texts may hold line breaks; a log line must not.
    let why: String = why
        .trim_end_matches('.')
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut shown = seen[..seen.len().min(SHOWN)].escape_ascii().to_string();
    if seen.len() > SHOWN {
        shown.push_str("...");
    }
    HeaderError::Invalid { why, seen: shown }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A connected pair on loopback: what the proxy writes, and the
    /// server's end.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (proxy, server)
    }

    async fn announced(bytes: &[u8]) -> (Result<Announced, HeaderError>, Vec<u8>) {
        let (mut proxy, mut server) = pair().await;
        proxy.write_all(bytes).await.unwrap();
        proxy.shutdown().await.unwrap();
        let result = read_header(&mut server, Duration::from_secs(5)).await;
        let mut after = Vec::new();
        server.read_to_end(&mut after).await.unwrap();
        (result, after)
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&u16::try_from(addresses.len()).unwrap().to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[tokio::test]
    async fn headers_name_the_client_and_leave_what_follows() {
        let v4 = [192, 0, 2, 10, 127, 0, 0, 1, 0x15, 0xb3, 0, 25];
        let mut mapped = vec![0; 10];
        mapped.extend_from_slice(&[0xff, 0xff, 198, 51, 100, 7]);
        mapped.extend_from_slice(&[0; 15]);
        mapped.push(1);
        mapped.extend_from_slice(&[0x04, 0x00, 0, 25]);
        let cases: Vec<(Vec<u8>, Announced)> = vec![
            (
                b"PROXY TCP4 192.0.2.10 127.0.0.1 5555 25\r\nEHLO x\r\n".to_vec(),
                Announced::Client {
                    client: "192.0.2.10:5555".parse().unwrap(),
                    server: "127.0.0.1:25".parse().unwrap(),
                },
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 4000 587\r\nEHLO x\r\n".to_vec(),
                Announced::Client {
                    client: "[2001:db8::1]:4000".parse().unwrap(),
                    server: "[::1]:587".parse().unwrap(),
                },
            ),
            (
                [v2(1, 0x11, &v4), b"EHLO x\r\n".to_vec()].concat(),
                Announced::Client {
                    client: "192.0.2.10:5555".parse().unwrap(),
                    server: "127.0.0.1:25".parse().unwrap(),
                },
            ),
            (
                [v2(1, 0x21, &mapped), b"EHLO x\r\n".to_vec()].concat(),
                Announced::Client {
                    client: "198.51.100.7:1024".parse().unwrap(),
                    server: "[::1]:25".parse().unwrap(),
                },
            ),
            (
                [v2(0, 0x00, &[]), b"EHLO x\r\n".to_vec()].concat(),
                Announced::Proxy,
            ),
        ];
        for (bytes, want) in cases {
            let (got, after) = announced(&bytes).await;
            assert_eq!(got.unwrap(), want, "{}", bytes.escape_ascii());
            assert_eq!(after, b"EHLO x\r\n", "{}", bytes.escape_ascii());
        }
    }

    #[tokio::test]
    async fn bad_headers_are_refused_with_what_was_seen() {
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"EHLO client.test\r\n".to_vec(),
                "not a PROXY protocol header: EHLO ",
            ),
            (
                b"PROXY TCP4 192.0.2.300 127.0.0.1 1 25\r\n".to_vec(),
                "invalid IP address for the source: PROXY TCP4 192.0.2.300",
            ),
            (
                b"PROXY TCP4 192.0.2.1 127.0.0.1 1\r\n".to_vec(),
                "port for the destination: PROXY TCP4",
            ),
            // ppp's text for this one holds a CR LF.
            (
                b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25 extra\r\n".to_vec(),
                ": PROXY TCP4 192.0.2.1 127.0.0.1 1 25 extra\\r\\n",
            ),
            (long.into_bytes(), "line > 107 characters"),
            (v2(1, 0x31, &[0; 216]), "unsupported address family"),
            (v2(1, 0x00, &[]), "unsupported protocol type"),
            (v2(1, 0x01, &[]), "unsupported address family"),
            (b"PROXY UNKNOWN\r\n".to_vec(), "unsupported protocol type"),
            (v2(1, 0x12, &[0; 12]), "unsupported protocol type"),
            (v2(1, 0x10, &[0; 12]), "unsupported protocol type"),
            (v2(1, 0x11, &[0; 4]), "cannot store the 12 bytes"),
        ];
        for (bytes, want) in cases {
            let (got, _) = announced(&bytes).await;
            let err = got
                .expect_err(&bytes.escape_ascii().to_string())
                .to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
            assert!(!err.chars().any(char::is_control), "{err:?}");
            // At most 100 octets shown, each at most 4 characters escaped.
            assert!(err.len() < 500, "{err}");
        }
        let (got, _) = announced(b"PROXY TCP4 192.0.2.1").await;
        assert!(matches!(got, Err(HeaderError::Eof)), "{got:?}");
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&5000u16.to_be_bytes());
        let (got, _) = announced(&huge).await;
        assert!(got.unwrap_err().to_string().contains("more than 4096"));
    }

    #[tokio::test]
    async fn a_header_in_pieces_is_put_together() {
        let (mut proxy, mut server) = pair().await;
        let writer = tokio::spawn(async move {
            let pieces: [&[u8]; 4] = [
                b"PROX",
                b"Y TCP4 192.0.2.1",
                b"0 127.0.0.1 5555 25\r",
                b"\nEHLO x\r\n",
            ];
            for piece in pieces {
                proxy.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            proxy.shutdown().await.unwrap();
        });
        let got = read_header(&mut server, Duration::from_secs(5)).await;
        assert_eq!(
            got.unwrap(),
            Announced::Client {
                client: "192.0.2.10:5555".parse().unwrap(),
                server: "127.0.0.1:25".parse().unwrap(),
            }
        );
        let mut after = Vec::new();
        server.read_to_end(&mut after).await.unwrap();
        assert_eq!(after, b"EHLO x\r\n");
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_header_that_never_ends_times_out() {
        let (mut proxy, mut server) = pair().await;
        proxy.write_all(b"PROXY TCP4 192.0.2.1 ").await.unwrap();
        let got = read_header(&mut server, Duration::from_millis(200)).await;
        assert!(matches!(got, Err(HeaderError::Timeout)), "{got:?}");
    }
}
