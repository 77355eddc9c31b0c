//! TLS for inbound sessions: STARTTLS (RFC 3207) and implicit TLS
//! (RFC 8314), with rustls.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    reason: String,
}

impl TlsError {
    pub(crate) fn new(what: &'static str, path: &Path, reason: String) -> Self {
        TlsError {
            what,
            path: path.display().to_string(),
            reason,
        }
    }
}

/// How a listener uses TLS.
#[derive(Clone)]
pub enum ListenerTls {
    /// Plain text, with STARTTLS offered.
    StartTls(TlsAcceptor),
    /// TLS from the first byte.
    Implicit(TlsAcceptor),
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ListenerTls::StartTls(_) => "StartTls",
            ListenerTls::Implicit(_) => "Implicit",
        })
    }
}

/// A connection's transport: plain until STARTTLS, then TLS.
pub(crate) enum MaybeTls<IO> {
    Plain(IO),
    Tls(Box<TlsStream<IO>>),
    /// Only while the handshake runs; never read or written.
    Upgrading,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> MaybeTls<IO> {
    /// Runs the TLS handshake over the plain transport.
    pub(crate) async fn upgrade(&mut self, acceptor: &TlsAcceptor) -> io::Result<TlsSummary> {
        let MaybeTls::Plain(io) = std::mem::replace(self, MaybeTls::Upgrading) else {
            return Err(io::Error::other("TLS already active"));
        };
        let stream = acceptor.accept(io).await?;
        let (_, conn) = stream.get_ref();
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("TLS")
            .to_owned();
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .unwrap_or("unknown")
            .to_owned();
        let server_name = conn.server_name().map(str::to_owned);
        *self = MaybeTls::Tls(Box::new(stream));
        Ok(TlsSummary {
            version,
            cipher,
            server_name,
        })
    }
}

/// What a TLS handshake agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSummary {
    /// The protocol version as rustls names it (`TLSv1_3`).
    pub version: String,
    /// The cipher suite as rustls names it (`TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The SNI name the client asked for.
    pub server_name: Option<String>,
}

impl TlsSummary {
    /// Postfix's form, for the `Received:` header: `TLSv1.3 with cipher
    /// TLS_AES_256_GCM_SHA384 (256/256 bits)`.
    pub(crate) fn postfix_form(&self) -> String {
        let version = self.version.replace('_', ".");
        let cipher = self.cipher.replacen("TLS13_", "TLS_", 1);
        let bits = if cipher.contains("AES_128") { 128 } else { 256 };
        format!("{version} with cipher {cipher} ({bits}/{bits} bits)")
    }
}

impl std::fmt::Display for TlsSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} with cipher {}", self.version, self.cipher)
    }
}

fn upgrading() -> io::Error {
    io::Error::other("transport used during the TLS handshake")
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Tls(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTls::Tls(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}
