//! The SMTP client's resolver: MX, address and MTA-STS TXT lookups.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// A resolver built on first use (reading `/etc/resolv.conf`, or the
/// name servers given), shared by clones.
#[derive(Clone, Default)]
pub(crate) struct Dns {
    /// Name servers to ask instead of the system's; empty for the system's.
    servers: Arc<[SocketAddr]>,
    resolver: Arc<tokio::sync::OnceCell<Option<TokioResolver>>>,
}

impl Dns {
    /// A resolver asking `servers`, or the system's name servers when empty.
    pub(crate) fn new(servers: &[SocketAddr]) -> Self {
        Dns {
            servers: servers.into(),
            resolver: Arc::default(),
        }
    }

    /// The resolver, or `None` (logged once) when the system has none.
    pub(crate) async fn resolver(&self) -> Option<&TokioResolver> {
        self.resolver
            .get_or_init(|| async {
                let built = if self.servers.is_empty() {
                    TokioResolver::builder_tokio().and_then(|b| b.build())
                } else {
                    let servers = self.servers.iter().map(|addr| {
                        let connection = |mut c: ConnectionConfig| {
                            c.port = addr.port();
                            c
                        };
                        NameServerConfig::new(
                            addr.ip(),
                            true,
                            vec![
                                connection(ConnectionConfig::udp()),
                                connection(ConnectionConfig::tcp()),
                            ],
                        )
                    });
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_name_servers(servers.collect()),
                        TokioRuntimeProvider::default(),
                    )
                    .build()
                };
                built
                    .inspect_err(
                        |e| tracing::warn!(target: "towerpost::smtp", "no DNS resolver: {e}"),
                    )
                    .ok()
            })
            .await
            .as_ref()
    }

    /// The addresses of `name` at `port`: the system's resolver
    /// (getaddrinfo: `/etc/hosts`, nsswitch, RFC 6724 order and
    /// `/etc/gai.conf`), or DNS alone when name servers were given.
    pub(crate) async fn addresses(&self, name: &str, port: u16) -> Vec<SocketAddr> {
        if self.servers.is_empty() {
            return tokio::net::lookup_host((name, port))
                .await
                .map(Iterator::collect)
                .unwrap_or_default();
        }
        match self.resolver().await {
            Some(resolver) => resolver
                .lookup_ip(name)
                .await
                .map(|lookup| lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// The TXT strings of `name`, each record's strings concatenated
    /// (RFC 7208 §3.3, RFC 8461 §3.1). `Ok(empty)` when there are none;
    /// `Err` on a lookup failure.
    pub(crate) async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let Some(resolver) = self.resolver().await else {
            return Err("no resolver".to_owned());
        };
        match resolver.txt_lookup(name).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Resolves the MTA-STS policy host for reqwest through [`Dns`], so the
/// policy fetch asks the same name servers as delivery, at `port` (443
/// outside tests: RFC 8461 §3.3 fixes the URL).
pub(crate) struct PolicyHostResolver {
    pub(crate) dns: Dns,
    pub(crate) port: u16,
}

impl reqwest::dns::Resolve for PolicyHostResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.dns.clone();
        let port = self.port;
        Box::pin(async move {
            let addrs = dns.addresses(name.as_str(), port).await;
            if addrs.is_empty() {
                return Err(format!("{}: host not found", name.as_str()).into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
