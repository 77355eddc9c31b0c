//! The `towerpost` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use towerpost::control::{self, ControlRequest, ControlResponse};
use towerpost::queue_list::{format_json, format_listing};
use towerpost_config::Config;

/// sysexits(3): configuration error.
const EX_CONFIG: u8 = 78;
/// sysexits(3): service unavailable.
const EX_UNAVAILABLE: u8 = 69;
/// sysexits(3): internal software error.
const EX_SOFTWARE: u8 = 70;

#[derive(Parser)]
#[command(
    name = "towerpost",
    version,
    about = "An SMTP relay on a tower service stack"
)]
struct Cli {
    /// Configuration file (TOML). Without it, the built-in defaults apply.
    #[arg(long, short = 'c', global = true, env = "TOWERPOST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the SMTP server.
    Serve,
    /// Validate or show the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Inspect the mail queue.
    Queue {
        #[command(subcommand)]
        action: QueueCmd,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check the configuration and report every problem.
    Check,
    /// Print the settings that differ from the defaults (like `postconf -n`).
    Show,
}

#[derive(Subcommand)]
enum QueueCmd {
    /// List queued messages (like `postqueue -p`; `--json` like `postqueue -j`).
    List {
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    Config::load(cli.config.as_deref()).map_err(|e| {
        eprintln!("towerpost: fatal: configuration error:\n{e}");
        ExitCode::from(EX_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match &cli.command {
        Cmd::Config {
            action: ConfigCmd::Check,
        } => {
            let source = cli
                .config
                .as_ref()
                .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            println!("towerpost: configuration OK ({source})");
            ExitCode::SUCCESS
        }
        Cmd::Config {
            action: ConfigCmd::Show,
        } => {
            for (key, value) in config.non_default_settings() {
                println!("{key} = {value}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Serve => run_async(serve(config)),
        Cmd::Queue {
            action: QueueCmd::List { json },
        } => run_async(list(config, *json)),
    }
}

fn run_async(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("towerpost: fatal: cannot start the runtime: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    towerpost::logging::init(&config.myhostname);
    let shutdown = CancellationToken::new();
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
    match towerpost::listener::serve(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "towerpost::master", "fatal: {e}");
            eprintln!("towerpost: fatal: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

async fn list(config: Config, json: bool) -> ExitCode {
    let entries = match control::request(&config.queue_directory, &ControlRequest::List).await {
        Ok(Some(ControlResponse::Entries(entries))) => entries,
        Ok(Some(ControlResponse::Error(e))) => {
            eprintln!("towerpost: fatal: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
        // No server running: read the queue files directly.
        Ok(None) => match read_offline(&config).await {
            Ok(entries) => entries,
            Err(e) => {
                eprintln!("towerpost: fatal: {e}");
                return ExitCode::from(EX_UNAVAILABLE);
            }
        },
        Err(e) => {
            eprintln!(
                "towerpost: fatal: cannot talk to the server at {}: {e}",
                control::socket_path(&config.queue_directory).display()
            );
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    if json {
        print!("{}", format_json(&entries));
    } else {
        print!("{}", format_listing(&entries));
    }
    ExitCode::SUCCESS
}

async fn read_offline(
    config: &Config,
) -> Result<Vec<towerpost_queue::QueueEntry>, towerpost_queue::QueueError> {
    let queue = towerpost_queue::Queue::open(towerpost_queue::QueueSettings {
        directory: config.queue_directory.clone(),
        shards: config.queue_shard_count,
    })
    .await?;
    let entries = queue.entries().await;
    queue.shutdown().await;
    entries
}
