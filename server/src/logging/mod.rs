//! Log output: one line per event, shaped like Postfix's mail log lines
//! (`towerpost/smtpd[pid]: 0DJ4QW7H2KX: client=unknown[127.0.0.1]`) so the
//! tools that read those keep working, or the same fields as one JSON
//! object per line (`log_format`); to standard error or to `maillog_file`,
//! reopened on SIGUSR1.

mod format;
mod output;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use towerpost_config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

use self::format::{JsonFormat, LineFormat, PostfixFormat};
pub(crate) use self::output::LogOutput;

/// Installs the log subscriber: `log_format` lines to `maillog_file` or
/// standard error, filtered by `RUST_LOG` (default `info`). Returns the
/// output, to be reopened on SIGUSR1 ([`reopen_on_sigusr1`]). Only the
/// first call in a process installs anything; later ones still open and
/// return their output, so a bad `maillog_file` is always reported.
pub(crate) fn init(config: &Config) -> std::io::Result<Arc<LogOutput>> {
    let output = Arc::new(LogOutput::open(config.maillog_file.clone())?);
    let host = config
        .myhostname
        .split('.')
        .next()
        .unwrap_or(&config.myhostname)
        .to_owned();
    let line = LineFormat {
        host,
        program: config.syslog_name.clone(),
        pid: std::process::id(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output.clone());
    let _ = match config.log_format {
        LogFormat::Postfix => builder.event_format(PostfixFormat(line)).try_init(),
        LogFormat::Json => builder.event_format(JsonFormat(line)).try_init(),
    };
    Ok(output)
}

/// Reopens `output` on every SIGUSR1 until `shutdown`, logging the result:
/// what logrotate's `postrotate` asks for after moving the file.
pub(crate) async fn reopen_on_sigusr1(output: Arc<LogOutput>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        tracing::warn!(target: "towerpost::master", "cannot handle SIGUSR1; the log file is never reopened");
        return;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = usr1.recv() => {}
        }
        let out = output.clone();
        match tokio::task::spawn_blocking(move || out.reopen()).await {
            Ok(Ok(Some(path))) => {
                tracing::info!(target: "towerpost::master", "SIGUSR1: reopened {}", path.display());
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(target: "towerpost::master",
                "SIGUSR1: cannot reopen the log file, still writing to the old one: {e}"),
            Err(e) => tracing::error!(target: "towerpost::master", "SIGUSR1: {e}"),
        }
    }
}
