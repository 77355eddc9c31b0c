//! TLS for the SMTP client: which level and certificate names apply to a
//! delivery (`smtp_tls_security_level`, `smtp_tls_policy_maps`, MTA-STS),
//! and the rustls connectors that check them.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;
use towerpost_config::TlsMatch;

use super::mta_sts::{Mode, Policy};
use super::smtp::TlsLevel;

/// How one delivery uses TLS.
#[derive(Debug, Clone)]
pub(crate) struct TlsPlan {
    /// The security level.
    pub(crate) level: TlsLevel,
    /// For `verify` and `secure`: the names the certificate may be valid
    /// for, any of which will do.
    pub(crate) matches: Vec<TlsMatch>,
    /// Where the level came from, for log texts.
    pub(crate) source: PlanSource,
    /// The destination's MTA-STS policy, when it applies: in `enforce` mode
    /// it made `level` and `matches` and restricts the MX hosts; in
    /// `testing` mode it only reports what enforcing would refuse.
    pub(crate) sts: Option<(String, Policy)>,
}

/// Where a [`TlsPlan`]'s level came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanSource {
    /// The transport's `tls_security_level` (or `smtp_tls_security_level`).
    Transport,
    /// An `smtp_tls_policy_maps` entry.
    PolicyMap,
    /// An MTA-STS policy in `enforce` mode.
    MtaSts,
}

impl TlsPlan {
    /// The transport's level alone, with its default names.
    pub(crate) fn transport(level: TlsLevel) -> Self {
        TlsPlan {
            level,
            matches: default_matches(level),
            source: PlanSource::Transport,
            sts: None,
        }
    }

    /// An `smtp_tls_policy_maps` entry.
    pub(crate) fn policy_map(policy: &towerpost_config::TlsPolicy) -> Self {
        TlsPlan {
            level: TlsLevel::from(policy.level),
            matches: policy.effective_matches(),
            source: PlanSource::PolicyMap,
            sts: None,
        }
    }

    /// The transport's level under `domain`'s MTA-STS policy. `enforce`
    /// means TLS with a certificate valid for the MX host name (RFC 8461
    /// §4.2); a transport already at `secure` keeps its stricter check.
    pub(crate) fn with_mta_sts(level: TlsLevel, domain: String, policy: Policy) -> Self {
        let mut plan = TlsPlan::transport(level);
        if policy.mode == Mode::Enforce && level != TlsLevel::Secure {
            plan.level = TlsLevel::Verify;
            plan.matches = vec![TlsMatch::Hostname];
            plan.source = PlanSource::MtaSts;
        }
        plan.sts = Some((domain, policy));
        plan
    }

    /// The MTA-STS policy in `enforce` mode, if that is what applies.
    pub(crate) fn enforced(&self) -> Option<(&str, &Policy)> {
        match &self.sts {
            Some((domain, policy)) if policy.mode == Mode::Enforce => {
                Some((domain.as_str(), policy))
            }
            _ => None,
        }
    }

    /// The MTA-STS policy in `testing` mode, if that is what applies.
    pub(crate) fn testing(&self) -> Option<(&str, &Policy)> {
        match &self.sts {
            Some((domain, policy)) if policy.mode == Mode::Testing => {
                Some((domain.as_str(), policy))
            }
            _ => None,
        }
    }

    /// A prefix for failure texts naming the policy that required TLS.
    pub(crate) fn reason_prefix(&self) -> String {
        match (self.source, self.enforced()) {
            (PlanSource::MtaSts, Some((domain, _))) => format!("MTA-STS policy of {domain}: "),
            (PlanSource::PolicyMap, _) => "smtp_tls_policy_maps: ".to_owned(),
            _ => String::new(),
        }
    }
}

fn default_matches(level: TlsLevel) -> Vec<TlsMatch> {
    match level {
        TlsLevel::Secure => vec![TlsMatch::Nexthop],
        _ => vec![TlsMatch::Hostname],
    }
}

impl From<towerpost_config::SmtpTlsLevel> for TlsLevel {
    fn from(level: towerpost_config::SmtpTlsLevel) -> Self {
        use towerpost_config::SmtpTlsLevel as L;
        match level {
            L::None => TlsLevel::None,
            L::May => TlsLevel::May,
            L::Encrypt => TlsLevel::Encrypt,
            L::Verify => TlsLevel::Verify,
            L::Secure => TlsLevel::Secure,
        }
    }
}

/// The SMTP client's trust anchors: the web PKI roots plus
/// `smtp_tls_CAfile`.
#[derive(Debug, Clone)]
pub struct Trust {
    provider: Arc<rustls::crypto::CryptoProvider>,
    roots: Arc<RootCertStore>,
}

/// What the certificate check of one handshake is.
pub(crate) enum Check {
    /// Encrypt only: any certificate, signatures still checked (`may`,
    /// `encrypt`: opportunistic TLS is about passive eavesdroppers, and
    /// most MX certificates would not verify, as Postfix says).
    Unverified,
    /// The certificate must chain to a trust anchor and be valid for one
    /// of these names.
    Names(Vec<ServerName<'static>>),
    /// As `Names`, but a failure is only recorded (MTA-STS `testing`).
    Observe(Vec<ServerName<'static>>, Arc<Mutex<Option<String>>>),
}

impl Trust {
    /// The web PKI roots and `extra` CA certificates.
    pub fn new(extra: &[CertificateDer<'static>]) -> Result<Self, String> {
        let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra {
            roots.add(cert.clone()).map_err(|e| e.to_string())?;
        }
        Ok(Trust {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots: Arc::new(roots),
        })
    }

    /// A client configuration that verifies servers against the anchors,
    /// for HTTPS (the MTA-STS policy host).
    pub(crate) fn verifying_config(&self) -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth()
    }

    /// The connector for one handshake.
    pub(crate) fn connector(&self, check: Check) -> TlsConnector {
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous();
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Unverified => Arc::new(Unverified(self.provider.clone())),
            Check::Names(names) => Arc::new(AnyName {
                inner: self.webpki(),
                names,
                observed: None,
            }),
            Check::Observe(names, slot) => Arc::new(AnyName {
                inner: self.webpki(),
                names,
                observed: Some(slot),
            }),
        };
        let config = builder
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    fn webpki(&self) -> Arc<WebPkiServerVerifier> {
        WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
            .build()
            .expect("the root store holds the web PKI roots")
    }
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Web PKI verification against any of several names (Postfix's
/// `match=a:b`), ignoring the SNI name the handshake was started with.
#[derive(Debug)]
struct AnyName {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
    /// Record a failure here and accept, instead of failing.
    observed: Option<Arc<Mutex<Option<String>>>>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = rustls::Error::General("no certificate name to match".into());
        for name in &self.names {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, name, ocsp, now)
            {
                Ok(ok) => return Ok(ok),
                Err(e) => last = e,
            }
        }
        match &self.observed {
            Some(slot) => {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(last.to_string());
                Ok(ServerCertVerified::assertion())
            }
            None => Err(last),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
