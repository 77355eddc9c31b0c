//! The control socket: how the CLI talks to a running server.
//!
//! A Unix stream socket at `<queue_directory>/control.sock`. The client
//! sends one JSON request line; the server answers with one JSON line and
//! closes. Mode 0666: the only request so far (`list`) is what Postfix's
//! `mailq` shows any local user. Requests that change the queue will check
//! the peer's uid (SO_PEERCRED) when they arrive.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use towerpost_queue::{Queue, QueueEntry};

use crate::listener::ServeError;

/// The socket's file name inside the queue directory.
pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line accepted, so a local client cannot grow memory.
const MAX_REQUEST: u64 = 64 * 1024;

/// A request to the server.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlRequest {
    /// List the queue.
    List,
}

/// The server's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlResponse {
    /// The queue's messages.
    Entries(Vec<QueueEntry>),
    /// The request failed; the text says why.
    Error(String),
}

/// The listening control socket.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    queue: Queue,
}

/// The socket path for a queue directory.
pub fn socket_path(queue_directory: &Path) -> PathBuf {
    queue_directory.join(SOCKET_NAME)
}

impl ControlServer {
    /// Binds the socket, replacing a stale one left by a crashed server.
    pub fn bind(queue_directory: &Path, queue: Queue) -> Result<Self, ServeError> {
        let path = socket_path(queue_directory);
        let err = |source| ServeError::Control {
            path: path.display().to_string(),
            source,
        };
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another towerpost serves this queue directory",
            )));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
        Ok(Self {
            listener,
            path,
            queue,
        })
    }

    /// Serves requests until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    let queue = self.queue.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, queue).await {
                            tracing::warn!(target: "towerpost::control", "control request: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(target: "towerpost::control", "accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(stream: UnixStream, queue: Queue) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<ControlRequest>(&line) {
        Ok(ControlRequest::List) => match queue.entries().await {
            Ok(entries) => ControlResponse::Entries(entries),
            Err(e) => ControlResponse::Error(e.to_string()),
        },
        Err(e) => ControlResponse::Error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// Sends one request to a running server. `Ok(None)` means no server
/// listens on the socket.
pub async fn request(
    queue_directory: &Path,
    request: &ControlRequest,
) -> std::io::Result<Option<ControlResponse>> {
    let path = socket_path(queue_directory);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
