//! The SMTP client's AUTH toward a next hop that wants a password
//! (`smtp_sasl_auth_enable`, `smtp_sasl_password_maps`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use towerpost_config::{Nexthop, PasswordMap, SaslSecurityOption};

use super::smtp::{Failure, Session, read_reply, reply_failure, send, stage_failure};
use crate::sasl::encode_base64;

/// The map with its file's modification time and length when read.
type LoadedMap = (Option<SystemTime>, u64, Arc<PasswordMap>);

/// What the client needs to log in.
#[derive(Debug, Clone)]
pub struct ClientSasl {
    /// `smtp_sasl_password_maps`, re-read when the file changes (as
    /// Postfix reopens a changed map), so that fixing a wrong password
    /// needs no restart.
    passwords: Arc<Mutex<LoadedMap>>,
    /// `smtp_sasl_security_options`: without TLS.
    plain_options: Vec<SaslSecurityOption>,
    /// `smtp_sasl_tls_security_options`: under TLS.
    tls_options: Vec<SaslSecurityOption>,
}

impl ClientSasl {
    /// The client's SASL settings, starting from the map read with the
    /// configuration.
    pub fn new(
        passwords: PasswordMap,
        plain_options: Vec<SaslSecurityOption>,
        tls_options: Vec<SaslSecurityOption>,
    ) -> Self {
        let (modified, len) = file_stamp(&passwords.path);
        Self {
            passwords: Arc::new(Mutex::new((modified, len, Arc::new(passwords)))),
            plain_options,
            tls_options,
        }
    }

    /// The map, re-read if its file changed; a file that no longer parses
    /// keeps the previous map in use, with a warning.
    fn passwords(&self) -> Arc<PasswordMap> {
        let mut state = self.passwords.lock().unwrap_or_else(|p| p.into_inner());
        let path = state.2.path.clone();
        let (modified, len) = file_stamp(&path);
        if (modified, len) != (state.0, state.1) {
            match PasswordMap::load(&path) {
                Ok(map) => {
                    tracing::info!(target: "towerpost::smtp", "reloaded smtp_sasl_password_maps {}", path.display());
                    state.2 = Arc::new(map);
                }
                Err(e) => tracing::warn!(
                    target: "towerpost::smtp",
                    "smtp_sasl_password_maps not reloaded, keeping the previous one: {e}"
                ),
            }
            (state.0, state.1) = (modified, len);
        }
        state.2.clone()
    }

    /// Logs in when the password map has a login for this server or next
    /// hop and the server offers AUTH (Postfix sends mail unauthenticated
    /// otherwise, and lets the server decide). PLAIN is preferred, LOGIN
    /// taken when it is all the server offers. A password is never sent
    /// where the security options forbid plaintext mechanisms (by default:
    /// without TLS). A refused login defers the mail, with the server's
    /// reply (Postfix's `smtp_sasl_auth_soft_bounce`).
    pub(super) async fn authenticate(
        &self,
        session: &mut Session,
        nexthop: &Nexthop,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let passwords = self.passwords();
        let Some(login) = passwords.lookup(nexthop, &session.host) else {
            return Ok(());
        };
        if session.features.auth.is_empty() {
            return Ok(());
        }
        let server = format!("{}[{}]", session.host, session.peer.ip());
        let options = if session.tls {
            &self.tls_options
        } else {
            &self.plain_options
        };
        let offered = |m: &str| session.features.auth.iter().any(|a| a == m);
        let mechanism = ["PLAIN", "LOGIN"].into_iter().find(|m| offered(m));
        let (Some(mechanism), false) = (
            mechanism,
            options.contains(&SaslSecurityOption::NoPlaintext),
        ) else {
            return Err(Failure::soft(
                "4.7.0",
                format!(
                    "SASL authentication failed: server {server} offered no compatible \
                     authentication mechanisms for this type of connection security"
                ),
            ));
        };
        let steps: Vec<String> = match mechanism {
            "PLAIN" => {
                let response = format!("\0{}\0{}", login.username, login.password);
                vec![format!("AUTH PLAIN {}", encode_base64(response.as_bytes()))]
            }
            _ => vec![
                "AUTH LOGIN".to_owned(),
                encode_base64(login.username.as_bytes()),
                encode_base64(login.password.as_bytes()),
            ],
        };
        let last = steps.len() - 1;
        for (i, step) in steps.iter().enumerate() {
            send(session, format!("{step}\r\n").as_bytes(), timeout)
                .await
                .map_err(|e| stage_failure(session, e, "sending AUTH"))?;
            let reply = read_reply(session, timeout)
                .await
                .map_err(|e| stage_failure(session, e, "receiving the AUTH reply"))?;
            let expected = if i == last { 235 } else { 334 };
            if reply.code() != expected {
                // Deferred, not bounced: a wrong password is the
                // operator's to fix, and the mail waits for it.
                let mut failure = reply_failure(session, &reply, "AUTH", false);
                failure.reason =
                    format!("SASL authentication failed; server {server} said: {reply}");
                if failure.dsn.starts_with('5') {
                    failure.dsn.replace_range(..1, "4");
                }
                return Err(failure);
            }
        }
        tracing::info!(
            target: "towerpost::smtp",
            "{server}: SASL {mechanism} authentication as {} succeeded",
            login.username
        );
        Ok(())
    }
}

fn file_stamp(path: &Path) -> (Option<SystemTime>, u64) {
    match std::fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    }
}
