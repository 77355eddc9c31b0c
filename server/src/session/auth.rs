//! AUTH (RFC 4954): the mechanism, the SASL exchange with its base64
//! challenges, and Postfix's replies and log lines for each failure.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use towerpost_protocol::{Command, EnhancedCode, Reply};

use super::{Close, Connection, Input, printable};
use crate::sasl::{
    Mechanism, MechanismError, SharedAuthenticator, decode_base64, decode_login_field,
    decode_plain, encode_base64,
};

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// AUTH (RFC 4954), with Postfix's replies. The command goes through
    /// the stack first (rate limits, user layers); the core's 334 lets the
    /// exchange run here, since it spans several lines.
    pub(super) async fn auth(&mut self, command: Command) -> Option<Close> {
        self.stage = "auth";
        let e = EnhancedCode::new;
        let refuse = |code: u16, dsn: EnhancedCode, text: &'static str| {
            Some(Reply::enhanced(code, dsn, text))
        };
        let precondition = if self.info.helo.is_none() {
            refuse(503, e(5, 5, 1), "Error: send HELO/EHLO first")
        } else if self.settings.sasl.is_none() {
            refuse(503, e(5, 5, 1), "Error: authentication not enabled")
        } else if self.txn.is_some() {
            refuse(503, e(5, 5, 1), "Error: MAIL transaction in progress")
        } else if self.settings.tls_auth_only && !self.info.tls {
            refuse(
                504,
                e(5, 5, 4),
                "Encryption required for requested authentication mechanism",
            )
        } else if self.info.auth.is_some() {
            refuse(503, e(5, 5, 1), "Error: already authenticated")
        } else {
            None
        };
        if let Some(reply) = precondition {
            return self.finish("auth", reply).await;
        }
        let Command::Auth {
            mechanism,
            initial_response,
        } = command.clone()
        else {
            unreachable!("called for AUTH")
        };
        let reply = self.call(command).await;
        if reply.code() != 334 {
            return self.finish("auth", reply).await;
        }
        let client = self.info.client_name();
        let Some(mech) = Mechanism::from_name(&mechanism) else {
            tracing::warn!(
                target: "towerpost::smtpd",
                "{client}: SASL {} authentication failed: Invalid authentication mechanism, sasl_username=(unavailable)",
                printable(&mechanism)
            );
            let reply = Reply::enhanced(
                535,
                e(5, 7, 8),
                "Error: authentication failed: Invalid authentication mechanism",
            );
            return self.finish("auth", reply).await;
        };
        let credentials = match self.sasl_exchange(mech, initial_response).await {
            Ok(Ok(credentials)) => credentials,
            Ok(Err(reply)) => return self.finish("auth", reply).await,
            Err(close) => return Some(close),
        };
        let (user, password) = credentials;
        let Some(SharedAuthenticator(authenticator)) = self.settings.sasl.clone() else {
            unreachable!("checked above")
        };
        let name = mech.name();
        let reply = match authenticator.verify(&user, &password).await {
            Ok(true) => {
                let info = Arc::make_mut(&mut self.info);
                info.auth = Some(user);
                info.sasl_method = Some(name.to_owned());
                Reply::enhanced(235, e(2, 7, 0), "Authentication successful")
            }
            Ok(false) => {
                // The line fail2ban's postfix-sasl filter matches.
                tracing::warn!(
                    target: "towerpost::smtpd",
                    "{client}: SASL {name} authentication failed: authentication failure, sasl_username={}",
                    printable(&user)
                );
                Reply::enhanced(
                    535,
                    e(5, 7, 8),
                    "Error: authentication failed: authentication failure",
                )
            }
            Err(error) => {
                tracing::warn!(
                    target: "towerpost::smtpd",
                    "{client}: SASL {name} authentication failed: {error}, sasl_username={}",
                    printable(&user)
                );
                Reply::enhanced(
                    454,
                    e(4, 7, 0),
                    "Temporary authentication failure: password store unavailable",
                )
            }
        };
        self.finish("auth", reply).await
    }

    /// Prompts for and reads the mechanism's responses: the user name and
    /// password, or the reply that ends the exchange (`*`, bad base64, a
    /// line beyond the limit).
    pub(super) async fn sasl_exchange(
        &mut self,
        mech: Mechanism,
        initial: Option<String>,
    ) -> Result<Result<(String, String), Reply>, Close> {
        let e = EnhancedCode::new;
        let client = self.info.client_name();
        let name = mech.name();
        let bad = |error: MechanismError| {
            tracing::warn!(
                target: "towerpost::smtpd",
                "{client}: SASL {name} authentication failed: {error}, sasl_username=(unavailable)"
            );
            Reply::enhanced(
                535,
                e(5, 7, 8),
                format!("Error: authentication failed: {error}"),
            )
        };
        // RFC 4954 §4: "=" as the initial response means an empty one.
        let mut first = initial;
        let prompts: &[&[u8]] = match mech {
            Mechanism::Plain => &[b""],
            Mechanism::Login => &[b"Username:", b"Password:"],
        };
        let mut answers = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let line = match first.take() {
                Some(line) => line,
                None => {
                    self.push(&Reply::new(334, encode_base64(prompt)));
                    match self.next_line().await? {
                        Input::Line(line, _) => String::from_utf8_lossy(&line).into_owned(),
                        Input::TooLong => {
                            return Ok(Err(Reply::enhanced(
                                500,
                                e(5, 5, 6),
                                "SASL response limit exceeded",
                            )));
                        }
                    }
                }
            };
            if line.trim() == "*" {
                tracing::warn!(
                    target: "towerpost::smtpd",
                    "{client}: SASL {name} authentication aborted"
                );
                return Ok(Err(Reply::enhanced(
                    501,
                    e(5, 7, 0),
                    "Authentication aborted",
                )));
            }
            match decode_base64(&line) {
                Ok(bytes) => answers.push(bytes),
                Err(error) => return Ok(Err(bad(error))),
            }
        }
        let decoded = match mech {
            Mechanism::Plain => decode_plain(&answers[0]),
            Mechanism::Login => decode_login_field(&answers[0])
                .and_then(|user| decode_login_field(&answers[1]).map(|password| (user, password))),
        };
        Ok(decoded.map_err(bad))
    }
}
