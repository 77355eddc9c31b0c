//! towerpost with greylisting: `cargo run --example greylist`.
//!
//! A client's first attempt for a (client network, sender, recipient)
//! triplet gets `450 4.7.1 … Greylisted`; a retry after `GREYLIST_DELAY`
//! seconds (default 60) passes, and the triplet stays known. Triplets are
//! appended to a file (`GREYLIST_FILE`, default `greylist.txt`), so a
//! restart forgets nothing. Real MTAs retry; most spam engines do not.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower::{Layer, Service};
use towerpost::{BoxError, Command, Config, EnhancedCode, Reply, ServerBuilder, SmtpRequest};

/// The greylist: triplet → first seen (Unix seconds), backed by a file.
struct Greylist {
    delay: Duration,
    seen: Mutex<HashMap<String, u64>>,
    file: Mutex<std::fs::File>,
}

/// Greylisting as a tower layer over the SMTP stack.
#[derive(Clone)]
struct GreylistLayer(Arc<Greylist>);

impl GreylistLayer {
    /// Opens (or creates) the triplet file.
    fn open(path: &Path, delay: Duration) -> std::io::Result<Self> {
        let mut seen = HashMap::new();
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line?;
                if let Some((key, time)) = line.rsplit_once(' ')
                    && let Ok(t) = time.parse()
                {
                    seen.entry(key.to_owned()).or_insert(t);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self(Arc::new(Greylist {
            delay,
            seen: Mutex::new(seen),
            file: Mutex::new(file),
        })))
    }
}

/// Clients are grouped by /24 (IPv4) or /64 (IPv6): a retry often comes
/// from another host of the same farm.
fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3])
        }
    }
}

impl Greylist {
    /// `None` to let the request through, or the refusal.
    fn check(&self, request: &SmtpRequest, now: u64) -> Result<Option<Reply>, BoxError> {
        let Some(Command::Rcpt { to, .. }) = request.command() else {
            return Ok(None);
        };
        let sender = request
            .transaction
            .as_ref()
            .and_then(|t| t.sender.as_ref().map(|s| s.to_string()))
            .unwrap_or_default();
        let key = format!(
            "{} <{}> <{}>",
            network(request.session.client.ip()),
            sender,
            to
        );
        let mut seen = self.seen.lock().map_err(|_| "greylist lock poisoned")?;
        let first = match seen.get(&key) {
            Some(t) => *t,
            None => {
                // Stored before answering: a restart must not greylist twice.
                let mut file = self.file.lock().map_err(|_| "greylist lock poisoned")?;
                writeln!(file, "{key} {now}")?;
                file.sync_data()?;
                seen.insert(key, now);
                now
            }
        };
        let wait = (first + self.delay.as_secs()).saturating_sub(now);
        if wait == 0 {
            return Ok(None);
        }
        Ok(Some(Reply::enhanced(
            450,
            EnhancedCode::new(4, 7, 1),
            format!("<{to}>: Recipient address rejected: Greylisted, try again in {wait} seconds"),
        )))
    }
}

impl<S> Layer<S> for GreylistLayer {
    type Service = Greylisting<S>;

    fn layer(&self, inner: S) -> Greylisting<S> {
        Greylisting {
            inner,
            list: self.0.clone(),
        }
    }
}

/// The service built by [`GreylistLayer`].
#[derive(Clone)]
struct Greylisting<S> {
    inner: S,
    list: Arc<Greylist>,
}

impl<S> Service<SmtpRequest> for Greylisting<S>
where
    S: Service<SmtpRequest, Response = Reply, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: SmtpRequest) -> Self::Future {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.list.check(&request, now) {
            // A refusal is a reply; a fault (the file) is an error, which
            // the server turns into a 451 and a log line.
            Ok(Some(reply)) => Box::pin(async move { Ok(reply) }),
            Ok(None) => Box::pin(self.inner.call(request)),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(
        std::env::var_os("TOWERPOST_CONFIG")
            .as_deref()
            .map(Path::new),
    )?;
    let file =
        std::env::var_os("GREYLIST_FILE").map_or(PathBuf::from("greylist.txt"), PathBuf::from);
    let delay = std::env::var("GREYLIST_DELAY")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(60);
    let greylist = GreylistLayer::open(&file, Duration::from_secs(delay))?;
    ServerBuilder::new(config).layer(greylist).run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;
    use towerpost::{Address, RequestKind, SessionInfo, Transaction};

    fn rcpt(ip: &str, to: &str) -> SmtpRequest {
        SmtpRequest {
            session: Arc::new(SessionInfo {
                helo: Some("client.test".into()),
                esmtp: true,
                ..SessionInfo::new(
                    format!("{ip}:1000").parse().unwrap(),
                    "127.0.0.1:25".parse().unwrap(),
                    "smtp",
                )
            }),
            transaction: Some(Arc::new(Transaction {
                sender: Some(Address::parse("a@example.test").unwrap()),
                params: Default::default(),
                recipients: Vec::new(),
            })),
            kind: RequestKind::Command(Command::Rcpt {
                to: Address::parse(to).unwrap(),
                params: Default::default(),
            }),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn first_sight_is_refused_a_retry_after_the_delay_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("greylist.txt");
        let (mock, mut handle) = tower_test::mock::pair::<SmtpRequest, Reply>();
        let mut svc = GreylistLayer::open(&path, Duration::ZERO)
            .unwrap()
            .layer(mock.map_err(BoxError::from));
        // Delay zero: known at once, so the request reaches the inner service.
        let call = svc
            .ready()
            .await
            .unwrap()
            .call(rcpt("192.0.2.7", "b@example.test"));
        let answer = async {
            let (_, send) = handle.next_request().await.unwrap();
            send.send_response(Reply::enhanced(250, EnhancedCode::new(2, 1, 5), "Ok"));
        };
        let (reply, ()) = tokio::join!(call, answer);
        assert_eq!(reply.unwrap().code(), 250);

        let (mock, _handle) = tower_test::mock::pair::<SmtpRequest, Reply>();
        let mut svc = GreylistLayer::open(&path, Duration::from_secs(3600))
            .unwrap()
            .layer(mock.map_err(BoxError::from));
        let reply = svc
            .ready()
            .await
            .unwrap()
            .call(rcpt("192.0.2.7", "new@example.test"))
            .await
            .unwrap();
        assert_eq!(reply.code(), 450);
        assert!(reply.to_string().starts_with(
            "450 4.7.1 <new@example.test>: Recipient address rejected: Greylisted, try again in"
        ));
    }

    #[test]
    fn triplets_survive_a_restart_and_share_the_client_network() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("greylist.txt");
        let now = 1_800_000_000;
        let list = GreylistLayer::open(&path, Duration::from_secs(600)).unwrap();
        assert!(
            list.0
                .check(&rcpt("192.0.2.7", "b@example.test"), now)
                .unwrap()
                .is_some()
        );
        drop(list);
        // Reopened: the first sighting is remembered, and another host of
        // the same /24 is the same client an hour later.
        let list = GreylistLayer::open(&path, Duration::from_secs(600)).unwrap();
        assert!(
            list.0
                .check(&rcpt("192.0.2.8", "b@example.test"), now + 3600)
                .unwrap()
                .is_none()
        );
        assert!(
            list.0
                .check(&rcpt("198.51.100.1", "b@example.test"), now + 3600)
                .unwrap()
                .is_some()
        );
    }
}
