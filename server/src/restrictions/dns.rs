//! Does a domain exist in DNS? For `reject_unknown_sender_domain` and
//! `reject_unknown_recipient_domain`.

use std::future::Future;
use std::pin::Pin;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::sync::OnceCell;

/// The answer about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainStatus {
    /// It has MX, A or AAAA records: mail can be returned there.
    Exists,
    /// It does not exist, or has no MX, A or AAAA records.
    NotFound,
    /// Its MX is RFC 7505's null MX: it accepts no mail.
    NullMx,
    /// DNS did not answer; try again later.
    TempFail(String),
}

/// Looks domains up; a trait so that tests can answer without DNS.
pub trait DomainCheck: Send + Sync + 'static {
    /// What DNS says about `domain`.
    fn check<'a>(
        &'a self,
        domain: &'a str,
    ) -> Pin<Box<dyn Future<Output = DomainStatus> + Send + 'a>>;
}

/// [`DomainCheck`] through the system's resolver (hickory), built on
/// first use so that a configuration without DNS restrictions never
/// reads `/etc/resolv.conf`.
#[derive(Default)]
pub struct DnsDomainCheck {
    resolver: OnceCell<Option<TokioResolver>>,
}

impl DnsDomainCheck {
    async fn resolver(&self) -> Option<&TokioResolver> {
        self.resolver
            .get_or_init(|| async {
                match TokioResolver::builder_tokio().and_then(|b| b.build()) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(target: "towerpost::smtpd", "no DNS resolver: {e}");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    async fn lookup(&self, domain: &str) -> DomainStatus {
        let Some(resolver) = self.resolver().await else {
            return DomainStatus::TempFail("no resolver".into());
        };
        let name = format!("{}.", domain.trim_end_matches('.'));
        for record_type in [RecordType::MX, RecordType::A, RecordType::AAAA] {
            match resolver.lookup(name.as_str(), record_type).await {
                Ok(lookup) => {
                    let mut any = false;
                    for record in lookup.answers() {
                        match &record.data {
                            RData::MX(mx) if mx.exchange.is_root() => return DomainStatus::NullMx,
                            RData::MX(_) | RData::A(_) | RData::AAAA(_) => any = true,
                            _ => {}
                        }
                    }
                    if any {
                        return DomainStatus::Exists;
                    }
                }
                Err(e) if e.is_nx_domain() => return DomainStatus::NotFound,
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return DomainStatus::TempFail(e.to_string()),
            }
        }
        DomainStatus::NotFound
    }
}

impl DomainCheck for DnsDomainCheck {
    fn check<'a>(
        &'a self,
        domain: &'a str,
    ) -> Pin<Box<dyn Future<Output = DomainStatus> + Send + 'a>> {
        Box::pin(self.lookup(domain))
    }
}

impl<F> DomainCheck for F
where
    F: Fn(&str) -> DomainStatus + Send + Sync + 'static,
{
    fn check<'a>(
        &'a self,
        domain: &'a str,
    ) -> Pin<Box<dyn Future<Output = DomainStatus> + Send + 'a>> {
        let status = self(domain);
        Box::pin(async move { status })
    }
}
