//! The `metrics_listen` HTTP listener: `/metrics` (Prometheus) and
//! `/healthz`, over hyper's HTTP/1 server.
//!
//! The queue's gauges are read from the queue manager at each scrape
//! (sizes it keeps anyway: its schedule and destination index), never by
//! reading the queue, so a scrape costs the number of domains at most.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use towerpost_metrics::{DomainLabels, StateLabels, metrics};
use towerpost_queue::{Flusher, QueueStats};

/// Scrapes served at once; more wait for a slot (Prometheus scrapes one
/// at a time; this only bounds what a local client can start).
const CONNECTIONS: usize = 16;
/// Time for a request's header, and for the queue manager's answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the handler reads.
pub(crate) struct MetricsState {
    pub(crate) manager: Flusher,
    /// `metrics_destination_limit`.
    pub(crate) top: usize,
    /// The `fast_flush_domains` entries that name one domain.
    pub(crate) sites: Vec<String>,
    pub(crate) shutdown: CancellationToken,
    /// Held from setting the queue gauges to encoding them, so that one
    /// scrape's refill of the domain gauges never shows in another's
    /// half-done.
    pub(crate) scrape: std::sync::Mutex<()>,
}

/// Serves until `shutdown`.
pub(crate) async fn serve(listener: TcpListener, state: Arc<MetricsState>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(target: "towerpost::metrics", "accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&request, &state).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // A client that hangs up or sends garbage is its own problem.
            let _ = tokio::time::timeout(TIMEOUT * 2, connection).await;
            drop(slot);
        });
    }
}

async fn answer(request: &Request<Incoming>, state: &MetricsState) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match request.uri().path() {
        "/metrics" => {
            // Counters are exported even when the manager cannot answer;
            // its gauges keep their last values then.
            let stats = read_stats(state).await;
            let text = {
                let _scrape = state.scrape.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(Ok(stats)) = &stats {
                    set_queue_gauges(stats);
                }
                metrics().encode()
            };
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/healthz" => {
            if state.shutdown.is_cancelled() {
                return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
            }
            match read_stats(state).await {
                Ok(Ok(_)) => text(StatusCode::OK, "ok: serving, queue manager answering\n"),
                Ok(Err(e)) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("queue manager: {e}\n"),
                ),
                Err(_) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue manager did not answer within 5s\n",
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "/metrics or /healthz\n"),
    }
}

async fn read_stats(
    state: &MetricsState,
) -> Result<Result<QueueStats, towerpost_queue::QueueError>, tokio::time::error::Elapsed> {
    tokio::time::timeout(TIMEOUT, state.manager.stats(state.top, state.sites.clone())).await
}

fn set_queue_gauges(stats: &QueueStats) {
    let m = metrics();
    for (state, n) in [
        ("incoming", stats.incoming),
        ("active", stats.active),
        ("deferred", stats.deferred),
        ("hold", stats.hold),
    ] {
        m.queue_messages
            .get_or_create(&StateLabels { state })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    // Domains that left the top list must not linger.
    m.queue_destination_messages.clear();
    for (domain, n) in &stats.domains {
        m.queue_destination_messages
            .get_or_create(&DomainLabels {
                domain: domain.clone(),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

/// The `fast_flush_domains` entries that name one domain (lower-case), for
/// the per-site gauges; patterns (`.example.com`) are left to the top list.
pub(crate) fn flush_sites(config: &towerpost_config::Config) -> Vec<String> {
    config
        .fast_flush_domains
        .iter()
        .filter(|d| !d.starts_with('.') && !d.contains(['/', ':']))
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}
