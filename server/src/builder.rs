//! The public way to run towerpost with policy layers of your own.
//!
//! ```no_run
//! use towerpost::{Config, ServerBuilder};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?;
//! ServerBuilder::new(config)
//!     // any tower::Layer over SmtpRequest -> Reply, see docs/middleware.md
//!     .layer(tower::layer::util::Identity::new())
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tower::BoxError;
use tower::util::BoxCloneService;
use tower_layer::Layer;
use tower_service::Service;
use towerpost_config::Config;
use towerpost_protocol::Reply;

use crate::listener::ServeError;
use crate::request::SmtpRequest;

/// A boxed service of the SMTP stack, as user layers see their inner
/// service: requests in, replies out, faults as errors.
pub type BoxSmtpService = BoxCloneService<SmtpRequest, Reply, BoxError>;

/// A user layer, type-erased.
pub(crate) type UserLayer = Arc<dyn Fn(BoxSmtpService) -> BoxSmtpService + Send + Sync>;

/// Builds and runs a server: the configuration plus user layers.
///
/// User layers sit inside the built-in policy (rate limits,
/// `smtpd_etrn_restrictions`) and outside the core, in the order added:
/// the first added sees each request first. Their faults become 4xx
/// replies like the built-in layers'.
pub struct ServerBuilder {
    config: Config,
    layers: Vec<UserLayer>,
}

impl ServerBuilder {
    /// A server for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            layers: Vec::new(),
        }
    }

    /// Adds a layer to every listener's stack.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<BoxSmtpService> + Send + Sync + 'static,
        L::Service:
            Service<SmtpRequest, Response = Reply, Error = BoxError> + Clone + Send + 'static,
        <L::Service as Service<SmtpRequest>>::Future: Send + 'static,
    {
        self.layers.push(Arc::new(move |inner| {
            BoxCloneService::new(layer.layer(inner))
        }));
        self
    }

    /// Serves until `shutdown` is cancelled, then shuts down gracefully.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        crate::listener::serve_with(self.config, self.layers, shutdown).await
    }

    /// Installs the log output (reopened on SIGUSR1), serves until SIGTERM
    /// or SIGINT, and shuts down gracefully: what `towerpost serve` does.
    pub async fn run(self) -> Result<(), ServeError> {
        let log = crate::logging::init(&self.config).map_err(ServeError::Log)?;
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::logging::reopen_on_sigusr1(log, shutdown.clone()));
        let signals = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            signals.cancel();
        });
        self.serve(shutdown).await
    }
}
