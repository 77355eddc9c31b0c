//! Listeners, the accept loops and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use towerpost_config::{Config, TlsMode, UpstreamProxyProtocol};
use towerpost_queue::{Queue, QueueManager};

use crate::certs::CertStore;
use crate::control::ControlServer;
use crate::proxy_header::Announced;
use crate::request::SessionInfo;
use crate::sasl::{PasswordDb, SharedAuthenticator};
use crate::session::{Connection, ConnectionParts, SessionSettings};
use crate::settings::session_settings;
use crate::stack::build_stack;
use crate::tls::ListenerTls;
use tower_layer::Layer;
use towerpost_flush::{AuthorizedFlushUsersLayer, FlushService};

/// A fatal start-up problem (a port in use, a queue that will not open).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not bind.
    #[error("listener {name}: cannot listen on {address}: {source}")]
    Bind {
        /// The listener's name.
        name: String,
        /// Its address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The password file could not be read.
    #[error("{0}")]
    Sasl(crate::sasl::AuthError),
    /// `maillog_file` could not be opened.
    #[error("{0}")]
    Log(std::io::Error),
    /// The queue could not be opened.
    #[error("{0}")]
    Queue(#[from] towerpost_queue::QueueError),
    /// The control socket could not be created.
    #[error("control socket {path}: {source}")]
    Control {
        /// The socket path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The delivery agents could not be set up (`smtp_tls_CAfile`).
    #[error("{0}")]
    Delivery(String),
}

/// Runs the server with user layers until `shutdown` is cancelled, then
/// shuts down gracefully: stop accepting, let transactions in flight finish
/// (up to `smtpd_shutdown_grace_time`), answer idle sessions `421`, and
/// close the queue after its last commit (see
/// [`ServerBuilder`](crate::ServerBuilder)).
pub(crate) async fn serve_with(
    config: Config,
    user_layers: Vec<crate::builder::UserLayer>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    // One certificate store and acceptor for all TLS listeners; config
    // validation made sure certificates are named when a listener needs
    // them.
    let certs = if config.listener.iter().any(|l| l.tls != TlsMode::None) {
        CertStore::from_config(&config)?
    } else {
        None
    };
    let acceptor = certs.as_ref().map(CertStore::acceptor).transpose()?;
    if let Some(certs) = &certs {
        tokio::spawn(certs.clone().watch(shutdown.clone()));
    }
    let transports = crate::delivery::transports(&config).map_err(ServeError::Delivery)?;
    let queue = Queue::open(crate::settings::queue_settings(&config)).await?;
    let manager = QueueManager::start(
        queue.clone(),
        crate::settings::manager_settings(&config),
        transports,
        crate::delivery::router(&config),
    )
    .await?;
    let eligible_config = Arc::new(config.clone());
    let flush = FlushService::new(
        manager.flusher(),
        queue.clone(),
        Arc::new(move |site: &str| eligible_config.fast_flush_eligible(site)),
    );
    let users_config = Arc::new(config.clone());
    let local_flush = AuthorizedFlushUsersLayer::new(
        Arc::new(move |user: &str| users_config.flush_user_allowed(user)),
        crate::control::own_uid(),
    )
    .layer(flush.clone());
    let load = crate::settings::session_load(&config);
    let control = ControlServer::bind(
        &config.queue_directory,
        queue.clone(),
        local_flush,
        crate::settings::submit_settings(&config),
        load.clone(),
    )?;
    let sasl = match &config.smtpd_sasl_password_file {
        Some(path)
            if config
                .listener
                .iter()
                .any(|l| config.smtpd_policy(l).sasl_auth_enable) =>
        {
            let db = PasswordDb::open(path.clone()).map_err(ServeError::Sasl)?;
            Some(SharedAuthenticator(Arc::new(db)))
        }
        _ => None,
    };
    let limits = crate::stack::rate_limits(&config);
    let shared_config = Arc::new(config.clone());
    let dns: Arc<dyn crate::restrictions::DomainCheck> =
        Arc::new(crate::restrictions::DnsDomainCheck::default());
    let mut accept_loops = JoinSet::new();
    let sessions = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
    let ids: crate::session::IdSource = {
        let queue = queue.clone();
        Arc::new(move || queue.new_id())
    };
    for l in &config.listener {
        let listener =
            bind(l.address, config.smtpd_listen_backlog).map_err(|source| ServeError::Bind {
                name: l.name.clone(),
                address: l.address,
                source,
            })?;
        tracing::info!(
            target: "towerpost::master",
            "listener {} on {}",
            l.name,
            listener.local_addr().map_or(l.address, |a| a)
        );
        let tls = match (l.tls, &acceptor) {
            (TlsMode::StartTls, Some(a)) => Some(ListenerTls::StartTls(a.clone())),
            (TlsMode::Implicit, Some(a)) => Some(ListenerTls::Implicit(a.clone())),
            _ => None,
        };
        let proxied = config.smtpd_policy(l).upstream_proxy_protocol;
        if proxied == UpstreamProxyProtocol::Haproxy && l.address.ip().is_unspecified() {
            tracing::warn!(
                target: "towerpost::master",
                "listener {}: smtpd_upstream_proxy_protocol is set and it listens on every \
                 address; whoever can reach it can claim any client address, so let only \
                 the balancer reach it",
                l.name
            );
        }
        let context = ListenerContext {
            name: Arc::from(l.name.as_str()),
            proxy_header: (proxied == UpstreamProxyProtocol::Haproxy)
                .then_some(config.smtpd_upstream_proxy_timeout),
            tls,
            service: build_stack(
                &shared_config,
                l,
                dns.clone(),
                queue.clone(),
                Some(flush.clone()),
                limits.clone(),
                &user_layers,
            ),
            settings: Arc::new(session_settings(&config, l, sasl.clone())),
            ids: ids.clone(),
            content_files: queue.clone(),
            load: load.clone(),
            shutdown: shutdown.clone(),
        };
        accept_loops.spawn(accept_loop(listener, context, sessions.clone()));
    }
    if let Some(address) = config.metrics_listen {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Bind {
                name: "metrics_listen".into(),
                address,
                source,
            })?;
        // Not "listener NAME on": that shape is for the SMTP listeners.
        tracing::info!(
            target: "towerpost::master",
            "metrics listener on {}",
            listener.local_addr().map_or(address, |a| a)
        );
        let state = Arc::new(crate::metrics_http::MetricsState {
            manager: manager.flusher(),
            top: config.metrics_destination_limit,
            sites: crate::metrics_http::flush_sites(&config),
            shutdown: shutdown.clone(),
            scrape: std::sync::Mutex::new(()),
        });
        tokio::spawn(crate::metrics_http::serve(listener, state));
    }
    let control_task = tokio::spawn(control.run(shutdown.clone()));
    tracing::info!(target: "towerpost::master", "daemon started -- version {}", env!("CARGO_PKG_VERSION"));

    shutdown.cancelled().await;
    tracing::info!(target: "towerpost::master", "terminating on signal");
    accept_loops.shutdown().await;
    let mut sessions = std::mem::take(&mut *sessions.lock().await);
    let grace = config.smtpd_shutdown_grace_time;
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            target: "towerpost::master",
            "{} sessions still busy after {grace:?}; closing them (nothing they sent was acknowledged)",
            sessions.len()
        );
        sessions.shutdown().await;
    }
    let _ = control_task.await;
    manager.shutdown().await;
    // The queue closes once every handle is gone; this function's own
    // must go first (the id source holds one too).
    drop(flush);
    drop(ids);
    // Every acknowledged change is already committed, so a queue that
    // does not close in time (a handle still held somewhere) is no reason
    // to hang the exit.
    if tokio::time::timeout(Duration::from_secs(10), queue.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(target: "towerpost::master", "queue did not close within 10s; exiting anyway");
    }
    tracing::info!(target: "towerpost::master", "stopped");
    Ok(())
}

/// A listening socket on `address` with room for `backlog` connections
/// not yet accepted (`TcpListener::bind` leaves the backlog to the
/// library).
fn bind(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As TcpListener::bind: a restart must not wait out TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// What every session of one listener shares.
struct ListenerContext {
    name: Arc<str>,
    /// `smtpd_upstream_proxy_timeout`, when a PROXY header comes first.
    proxy_header: Option<Duration>,
    tls: Option<ListenerTls>,
    service: crate::session::SmtpService,
    settings: Arc<SessionSettings>,
    ids: crate::session::IdSource,
    content_files: towerpost_queue::Queue,
    load: Arc<crate::session::Load>,
    shutdown: CancellationToken,
}

impl ListenerContext {
    /// What a session of this listener is given, for the client `info`
    /// names.
    fn parts(&self, info: SessionInfo) -> ConnectionParts {
        ConnectionParts {
            tls: self.tls.clone(),
            info,
            service: self.service.clone(),
            settings: self.settings.clone(),
            ids: self.ids.clone(),
            content_files: Some(self.content_files.clone()),
            load: self.load.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// The session of an accepted connection, once the PROXY header it must
/// start with (with `proxy_header`, its timeout) has named the client;
/// `None` (logged, and the connection closed without a greeting) when the
/// header is missing or malformed.
async fn open(
    mut stream: TcpStream,
    mut parts: ConnectionParts,
    proxy_header: Option<Duration>,
) -> Option<Connection<TcpStream>> {
    if let Some(timeout) = proxy_header {
        match crate::proxy_header::read_header(&mut stream, timeout).await {
            Ok(Announced::Client { client, server }) => {
                parts.info = SessionInfo::new(client, server, &parts.info.listener);
            }
            Ok(Announced::Proxy) => {}
            Err(e) => {
                towerpost_metrics::metrics()
                    .connections_refused
                    .get_or_create(&towerpost_metrics::RefusedLabels {
                        reason: "proxy_header",
                    })
                    .inc();
                tracing::warn!(
                    target: "towerpost::smtpd",
                    "haproxy read: {e}; closing the connection from {}",
                    format_args!("unknown[{}]", parts.info.client.ip())
                );
                return None;
            }
        }
    }
    Some(Connection::new(stream, parts))
}

async fn accept_loop(
    listener: TcpListener,
    context: ListenerContext,
    sessions: Arc<tokio::sync::Mutex<JoinSet<()>>>,
) {
    // Finished sessions are reaped at the next accept, and also every
    // second: after a burst, the set would otherwise keep every finished
    // task's memory until the next client came (tens of MiB after 10,000).
    let mut reap = tokio::time::interval(Duration::from_secs(1));
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = reap.tick() => {
                let mut set = sessions.lock().await;
                while set.try_join_next().is_some() {}
                continue;
            }
            _ = context.shutdown.cancelled() => return,
        };
        let (stream, client) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                tracing::warn!(target: "towerpost::smtpd", "accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = context.load.try_session() else {
            // A client of an implicit-TLS listener expects a handshake,
            // not plain text: it is just closed.
            let plain = !matches!(context.tls, Some(ListenerTls::Implicit(_)));
            tokio::spawn(refuse(
                stream,
                client,
                plain.then(|| context.settings.myhostname.clone()),
                context.load.session_limit(),
            ));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(client);
        let parts = context.parts(SessionInfo::new(client, local, &context.name));
        let proxy_header = context.proxy_header;
        let mut set = sessions.lock().await;
        // Reap finished sessions so the set stays as small as the live ones.
        while set.try_join_next().is_some() {}
        // The PROXY header, if any, is read in the session's own task: a
        // slow proxy must not hold up the accept loop.
        set.spawn(async move {
            if let Some(conn) = open(stream, parts, proxy_header).await {
                conn.run().await;
            }
            drop(slot);
        });
    }
}

/// Tells a client beyond `smtpd_session_limit` to come back later, and
/// closes (the greeting a client waits for; RFC 5321 §3.1 allows 421).
async fn refuse(
    mut stream: TcpStream,
    client: SocketAddr,
    myhostname: Option<String>,
    limit: usize,
) {
    use tokio::io::AsyncWriteExt;
    towerpost_metrics::metrics()
        .connections_refused
        .get_or_create(&towerpost_metrics::RefusedLabels {
            reason: "session_limit",
        })
        .inc();
    tracing::warn!(
        target: "towerpost::smtpd",
        "too many sessions ({limit}, smtpd_session_limit); refusing {}",
        format_args!("unknown[{}]", client.ip())
    );
    let Some(myhostname) = myhostname else {
        return;
    };
    let reply = format!(
        "421 4.3.2 {myhostname} Service currently unavailable: too many sessions, try again later\r\n"
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
