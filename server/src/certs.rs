//! The server's certificates: several, chosen by SNI, reloaded when their
//! files change or on SIGHUP, without dropping a session.
//!
//! `smtpd_tls_chain_files` names PEM files that each hold a private key
//! and its certificate chain (leaf first), as Postfix's parameter of that
//! name; `smtpd_tls_cert_file` with `smtpd_tls_key_file` is one more pair.
//! A client's SNI name picks the first certificate valid for it
//! (wildcards included); without SNI, or without a match, the first
//! certificate configured is served: a deterministic default.
//!
//! Files are checked every [`RELOAD_CHECK`] and on SIGHUP; a change of any
//! file's modification time, size or inode (certbot's and Kubernetes'
//! rename-over included) loads all of them again. A set that fails to load
//! keeps the current one in use and says why in the log. Sessions that
//! already finished their handshake keep the certificate they got.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use towerpost_config::Config;

use crate::tls::TlsError;

/// How often the certificate files are looked at.
pub(crate) const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Where one certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A PEM file with the key and the chain.
    Chain(PathBuf),
    /// `smtpd_tls_cert_file` and `smtpd_tls_key_file`.
    Pair { cert: PathBuf, key: PathBuf },
}

impl Source {
    fn paths(&self) -> Vec<&Path> {
        match self {
            Source::Chain(p) => vec![p],
            Source::Pair { cert, key } => vec![cert, key],
        }
    }
}

/// One loaded certificate.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
}

impl Loaded {
    fn valid_for(&self, name: &ServerName<'_>) -> bool {
        self.key.cert.first().is_some_and(|leaf| {
            webpki::EndEntityCert::try_from(leaf)
                .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
        })
    }
}

/// The certificates in use, shared by every TLS listener; the rustls
/// certificate resolver.
#[derive(Debug)]
pub(crate) struct CertStore {
    sources: Vec<Source>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Vec<Loaded>>>,
    stamps: RwLock<Vec<Option<(SystemTime, u64, u64)>>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn tls_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::new(what, path, reason.to_string())
}

impl CertStore {
    /// The certificates the configuration names; `None` when it names
    /// none. Fails when any of them cannot be loaded.
    pub(crate) fn from_config(config: &Config) -> Result<Option<Arc<CertStore>>, TlsError> {
        let mut sources: Vec<Source> = config
            .smtpd_tls_chain_files
            .iter()
            .cloned()
            .map(Source::Chain)
            .collect();
        if let (Some(cert), Some(key)) = (&config.smtpd_tls_cert_file, &config.smtpd_tls_key_file) {
            sources.push(Source::Pair {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if sources.is_empty() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = Self::stamps_of(&sources);
        let loaded = load_all(&sources, &provider)?;
        Ok(Some(Arc::new(CertStore {
            sources,
            provider,
            current: RwLock::new(Arc::new(loaded)),
            stamps: RwLock::new(stamps),
        })))
    }

    fn stamps_of(sources: &[Source]) -> Vec<Option<(SystemTime, u64, u64)>> {
        sources.iter().flat_map(Source::paths).map(stamp).collect()
    }

    /// An acceptor serving these certificates, TLS 1.2 and 1.3 only.
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| tls_error("TLS", Path::new("-"), e))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Loads every file again if any changed (or if `force`); keeps the
    /// current set when the new one does not load. Returns whether the
    /// certificates were replaced.
    pub(crate) fn reload(&self, force: bool) -> bool {
        let stamps = Self::stamps_of(&self.sources);
        {
            let mut seen = self.stamps.write().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == stamps {
                return false;
            }
            *seen = stamps;
        }
        match load_all(&self.sources, &self.provider) {
            Ok(loaded) => {
                let n = loaded.len();
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
                tracing::info!(target: "towerpost::tls", "reloaded {n} TLS certificate(s)");
                true
            }
            Err(e) => {
                tracing::warn!(
                    target: "towerpost::tls",
                    "cannot reload TLS certificates, keeping the ones in use: {e}"
                );
                false
            }
        }
    }

    /// Watches the files (every [`RELOAD_CHECK`]) and SIGHUP until
    /// `shutdown`.
    pub(crate) async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(RELOAD_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let force = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => false,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!(target: "towerpost::tls", "SIGHUP: reloading TLS certificates");
                    true
                }
            };
            let store = self.clone();
            // File reads and key parsing: off the async workers.
            let _ = tokio::task::spawn_blocking(move || store.reload(force)).await;
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let by_name = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n.to_owned()).ok())
            .and_then(|name| current.iter().find(|c| c.valid_for(&name)));
        by_name.or_else(|| current.first()).map(|c| c.key.clone())
    }
}

fn load_all(sources: &[Source], provider: &CryptoProvider) -> Result<Vec<Loaded>, TlsError> {
    sources.iter().map(|s| load(s, provider)).collect()
}

fn load(source: &Source, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let (what, cert_path, key_path) = match source {
        Source::Chain(p) => ("smtpd_tls_chain_files", p.as_path(), p.as_path()),
        Source::Pair { cert, key } => ("smtpd_tls_cert_file", cert.as_path(), key.as_path()),
    };
    // A path naming /dev/zero or a FIFO must not be read.
    towerpost_config::check_file(cert_path).map_err(|e| tls_error(what, cert_path, e))?;
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(what, cert_path, e))?;
    if certs.is_empty() {
        return Err(tls_error(what, cert_path, "no certificate in the file"));
    }
    let key_what = match source {
        Source::Chain(_) => what,
        Source::Pair { .. } => "smtpd_tls_key_file",
    };
    towerpost_config::check_file(key_path).map_err(|e| tls_error(key_what, key_path, e))?;
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| tls_error(key_what, key_path, e))?;
    let certified = CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| tls_error(key_what, key_path, e))?;
    Ok(Loaded {
        key: Arc::new(certified),
    })
}
