//! STARTTLS (RFC 3207) and the TLS handshake.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use towerpost_protocol::{Command, CommandReceiver, EnhancedCode, Reply};

use super::{Close, Connection};
use crate::tls::ListenerTls;

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// STARTTLS (RFC 3207): reply 220, discard any plaintext the client
    /// sent after the command (CVE-2011-0411: it would run as if it came
    /// over TLS), hand the socket to rustls, and forget everything learned
    /// before the handshake.
    pub(super) async fn starttls(&mut self, command: Command) -> Option<Close> {
        let e = EnhancedCode::new;
        if self.info.tls {
            let reply = Reply::enhanced(554, e(5, 5, 1), "Error: TLS already active");
            return self.finish("starttls", reply).await;
        }
        let Some(ListenerTls::StartTls(acceptor)) = self.tls.clone() else {
            let reply = Reply::enhanced(502, e(5, 5, 1), "Error: command not implemented");
            return self.finish("starttls", reply).await;
        };
        let reply = self.call(command).await;
        if reply.code() != 220 {
            return self.finish("starttls", reply).await;
        }
        self.stats.record("starttls", true);
        self.push(&reply);
        if self.flush().await.is_err() {
            return Some(Close::Lost);
        }
        if !self.inbuf.is_empty() {
            tracing::warn!(
                target: "towerpost::smtpd",
                "{}: discarding {} bytes of plaintext sent after STARTTLS (command injection attempt?)",
                self.info.client_name(),
                self.inbuf.len()
            );
            self.inbuf.clear();
        }
        self.receiver = CommandReceiver::new(self.settings.command_line_limit);
        self.stage = "starttls";
        if let Err(close) = self.handshake(&acceptor).await {
            return Some(close);
        }
        // RFC 3207 §4.2: back to the state right after the greeting,
        // forgetting everything learned before TLS, a login included.
        self.reset_transaction();
        let info = Arc::make_mut(&mut self.info);
        info.helo = None;
        info.esmtp = false;
        info.auth = None;
        info.sasl_method = None;
        None
    }

    /// The TLS handshake, bounded by `smtpd_timeout`.
    pub(super) async fn handshake(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
    ) -> Result<(), Close> {
        let client = self.info.client_name();
        match tokio::time::timeout(self.effective_timeout(), self.io.upgrade(acceptor)).await {
            Ok(Ok(summary)) => {
                towerpost_metrics::metrics().tls("inbound", true);
                tracing::info!(
                    target: "towerpost::smtpd",
                    "Anonymous TLS connection established from {client}: {summary}"
                );
                let info = Arc::make_mut(&mut self.info);
                info.tls = true;
                info.tls_cipher = Some(summary.postfix_form());
                info.auth_offered = self.settings.sasl.is_some();
                Ok(())
            }
            Ok(Err(e)) => {
                towerpost_metrics::metrics().tls("inbound", false);
                tracing::info!(target: "towerpost::smtpd", "SSL_accept error from {client}: {e}");
                Err(Close::Lost)
            }
            Err(_) => {
                towerpost_metrics::metrics().tls("inbound", false);
                tracing::info!(target: "towerpost::smtpd", "SSL_accept error from {client}: timeout");
                Err(Close::Lost)
            }
        }
    }
}
