//! Checking a user name and password.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};

use super::password_file::{PasswordFile, hash_password};

/// The check could not be made (the password file is unreadable): AUTH
/// answers `454 4.7.0 Temporary authentication failure`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Decides whether a user name and password are right; a trait so that
/// tests and embedders can plug in their own store.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(true)` for the right password, `Ok(false)` for a wrong one or an
    /// unknown user.
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, AuthError>> + Send + 'a>>;
}

/// Password checks running at once (each holds 19 MiB for tens of ms).
const MAX_CONCURRENT_CHECKS: usize = 4;

/// A shared [`Authenticator`], as session settings hold it.
#[derive(Clone)]
pub struct SharedAuthenticator(pub Arc<dyn Authenticator>);

impl std::fmt::Debug for SharedAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

/// The file's identity when it was read: a change of any of these means
/// it was rewritten (`towerpost passwd` renames a new file over it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// [`Authenticator`] over the password file (`smtpd_sasl_password_file`),
/// re-read whenever it changes, checked before each verification. A file
/// that cannot be read or parsed makes AUTH answer 454 until it is fixed.
pub struct PasswordDb {
    path: PathBuf,
    state: Mutex<(Option<Stamp>, Arc<PasswordFile>)>,
    /// argon2 takes 19 MiB and tens of milliseconds a check: at most this
    /// many at once, whatever the number of clients.
    checks: tokio::sync::Semaphore,
    /// Verified against for unknown users, so that the answer takes as
    /// long as for a known one (no user enumeration by timing).
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordDb")
            .field("path", &self.path)
            .finish()
    }
}

impl PasswordDb {
    /// Opens the file at `path` (it must exist, be readable and valid).
    pub fn open(path: PathBuf) -> Result<PasswordDb, AuthError> {
        let stamp = stamp(&path).map_err(|e| {
            AuthError(format!(
                "smtpd_sasl_password_file {}: {e} (create it with `towerpost passwd add USER`)",
                path.display()
            ))
        })?;
        let file = PasswordFile::load(&path).map_err(|e| AuthError(e.to_string()))?;
        let stamp = Some(stamp);
        Ok(PasswordDb {
            state: Mutex::new((stamp, Arc::new(file))),
            checks: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
            path,
            dummy_hash: hash_password("towerpost timing equaliser")
                .map_err(|e| AuthError(e.to_string()))?,
        })
    }

    /// The current contents, re-read if the file changed.
    fn current(&self) -> Result<Arc<PasswordFile>, AuthError> {
        let now = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                return Err(AuthError(format!(
                    "cannot read {}: {e}",
                    self.path.display()
                )));
            }
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0.as_ref() != Some(&now) {
            // A file that does not load refuses every login (454) until it
            // does, as Postfix does on a table lookup problem: serving the
            // previous contents would let a removed user in.
            let file = PasswordFile::load(&self.path).map_err(|e| {
                tracing::warn!(
                    target: "towerpost::smtpd",
                    "password file not usable, AUTH answers 454 until it is fixed: {e}"
                );
                AuthError(e.to_string())
            })?;
            tracing::info!(
                target: "towerpost::smtpd",
                "reloaded password file {} ({} users)",
                self.path.display(),
                file.users().count()
            );
            *state = (Some(now), Arc::new(file));
        }
        Ok(state.1.clone())
    }
}

impl Authenticator for PasswordDb {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, AuthError>> + Send + 'a>> {
        Box::pin(async move {
            let file = self.current()?;
            let (hash, known) = match file.hash_of(user) {
                Some(h) => (h.to_owned(), true),
                None => (self.dummy_hash.clone(), false),
            };
            let password = password.to_owned();
            let _permit = self
                .checks
                .acquire()
                .await
                .map_err(|e| AuthError(e.to_string()))?;
            // argon2 takes tens of milliseconds of CPU on purpose: off the
            // async workers.
            let ok = tokio::task::spawn_blocking(move || {
                PasswordHash::new(&hash).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
            })
            .await
            .map_err(|e| AuthError(format!("password check failed: {e}")))?;
            Ok(ok && known)
        })
    }
}
