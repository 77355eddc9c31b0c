//! The `towerpost` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use local_args::{PostqueueAction, flush_request, postqueue_action, sendmail_action};
use passwd::passwd_command;
use towerpost::control::{self, ControlRequest, ControlResponse, QueueAction};
use towerpost::sysexits::{
    EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE,
};
use towerpost_config::Config;
use towerpost_flush::FlushTarget;
use towerpost_queue::QueueState;

/// jemalloc, with its background threads purging freed pages (see
/// `serve`): glibc's malloc kept much of what a burst of connections had
/// used (measured in docs/benchmarks.md, "Connection bursts").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod list;
mod local_args;
mod passwd;
mod repair;

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
    /// Deliver deferred mail now: one site, one message, or all.
    Flush {
        /// Only mail for this destination (like `postqueue -s`).
        #[arg(long, conflicts_with_all = ["id", "all"])]
        site: Option<String>,
        /// Only this message (like `postqueue -i`).
        #[arg(long, conflicts_with = "all")]
        id: Option<String>,
        /// All deferred mail (like `postqueue -f`).
        #[arg(long)]
        all: bool,
        /// Wait until each flushed message was delivered or deferred again,
        /// and print what happened to it.
        #[arg(long)]
        wait: bool,
    },
    /// Postfix-compatible `postqueue`: -f, -s site, -i id, -p, -j.
    #[command(disable_help_flag = true)]
    Postqueue {
        /// postqueue's own arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Postfix-compatible `sendmail` flush forms: -q, -qRsite, -qIid, -bp.
    #[command(disable_help_flag = true)]
    Sendmail {
        /// sendmail's own arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Postfix-compatible `mailq` (`postqueue -p`).
    Mailq,
    /// Manage the AUTH password file (`smtpd_sasl_password_file`).
    Passwd {
        /// The password file; default: `smtpd_sasl_password_file`.
        #[arg(long, global = true)]
        file: Option<PathBuf>,
        #[command(subcommand)]
        action: PasswdCmd,
    },
}

#[derive(Subcommand)]
enum PasswdCmd {
    /// Add a user or change their password. The password is read from the
    /// terminal (twice, not echoed), or from standard input with
    /// `--password-stdin`; never from the command line.
    Add {
        /// The user name clients log in with.
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        /// The user name.
        user: String,
    },
    /// List the users.
    List,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check the configuration and report every problem.
    Check,
    /// Print the settings that differ from the defaults (like `postconf
    /// -n`); with KEYs, those settings (like `postconf KEY`); with `-d`,
    /// the built-in defaults (like `postconf -d`).
    Show {
        /// Show the built-in defaults instead of the effective values.
        #[arg(short = 'd', long = "defaults")]
        defaults: bool,
        /// The keys to show.
        keys: Vec<String>,
    },
    /// Print the key reference (docs/config-reference.md) as Markdown.
    Reference,
}

#[derive(Subcommand)]
enum QueueCmd {
    /// List queued messages (like `postqueue -p`; `--json` like `postqueue -j`).
    List {
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Show one message: envelope, recipients and their status, next attempt.
    Show {
        /// The queue id.
        id: String,
    },
    /// Put messages on hold (`postsuper -h`); `ALL` for every message.
    Hold {
        /// Queue ids, or ALL.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Release held messages, due now (`postsuper -H`).
    Release {
        /// Queue ids, or ALL.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete messages (`postsuper -d`).
    Delete {
        /// Queue ids, or ALL.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Schedule messages for delivery now (`postsuper -r`).
    Requeue {
        /// Queue ids, or ALL.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Recipients by domain and age, like Postfix's qshape: which site is
    /// backing up, and since when.
    Shape {
        /// Queues to count: incoming, active, deferred, hold, or all.
        /// Default: incoming and active, as qshape.
        #[arg(value_enum)]
        queues: Vec<ShapeQueue>,
        /// By sender domain instead (qshape -s).
        #[arg(long, short = 's')]
        senders: bool,
        /// The table as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Read every record of every shard file and report damage (the server
    /// must be stopped). Exit status 65 when a shard needs salvage.
    Check,
    /// Copy every readable record of a damaged shard file into a fresh one
    /// and move the damaged file to `queue/corrupt/` (server stopped).
    Salvage {
        /// The shard: its index (`3`), file name or path.
        shard: String,
    },
}

/// A queue `queue shape` can count.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ShapeQueue {
    Incoming,
    Active,
    Deferred,
    Hold,
    All,
}

/// The states of the queues named (qshape's default without any).
fn shape_states(queues: &[ShapeQueue]) -> Vec<QueueState> {
    use QueueState::{Active, Deferred, Hold, Incoming};
    let mut states = Vec::new();
    let named = if queues.is_empty() {
        &[ShapeQueue::Incoming, ShapeQueue::Active][..]
    } else {
        queues
    };
    for q in named {
        let these: &[QueueState] = match q {
            ShapeQueue::Incoming => &[Incoming],
            ShapeQueue::Active => &[Active],
            ShapeQueue::Deferred => &[Deferred],
            ShapeQueue::Hold => &[Hold],
            ShapeQueue::All => &[Incoming, Active, Deferred, Hold],
        };
        for s in these {
            if !states.contains(s) {
                states.push(*s);
            }
        }
    }
    states
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    Config::load(cli.config.as_deref()).map_err(|e| {
        eprintln!("towerpost: fatal: configuration error:\n{e}");
        ExitCode::from(EX_CONFIG)
    })
}

/// Entry point. Invoked through a symlink named `postqueue`, `sendmail`
/// or `mailq`, the binary behaves as that Postfix command.
fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
        .unwrap_or_default();
    if matches!(name.as_str(), "postqueue" | "sendmail" | "mailq") {
        args[0] = "towerpost".into();
        args.insert(1, name);
    }
    let cli = Cli::parse_from(args);
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
            action: ConfigCmd::Show { defaults, keys },
        } => show_settings(&config, *defaults, keys),
        Cmd::Config {
            action: ConfigCmd::Reference,
        } => {
            print!("{}", Config::reference_markdown());
            ExitCode::SUCCESS
        }
        Cmd::Serve => run_async(serve(config)),
        Cmd::Flush {
            site,
            id,
            all,
            wait,
        } => {
            let mut request = match (site, id, all) {
                (Some(site), _, _) => flush_request(FlushTarget::Site(site.clone())),
                (_, Some(id), _) => flush_request(FlushTarget::QueueId(id.clone())),
                (_, _, true) => flush_request(FlushTarget::All),
                _ => {
                    eprintln!("towerpost: flush: say --site DOMAIN, --id QUEUEID or --all");
                    return ExitCode::from(EX_USAGE);
                }
            };
            if let ControlRequest::Flush {
                wait: w, progress, ..
            } = &mut request
            {
                *w = *wait;
                *progress = *wait;
            }
            run_async(flush_command(config, request, "towerpost"))
        }
        Cmd::Mailq => run_async(list::list_command(config, false)),
        Cmd::Postqueue { args } => match postqueue_action(args) {
            Ok(PostqueueAction::List { json }) => run_async(list::list_command(config, json)),
            Ok(PostqueueAction::Flush(request)) => {
                run_async(flush_command(config, request, "postqueue"))
            }
            Ok(PostqueueAction::Nothing) => ExitCode::SUCCESS,
            Ok(PostqueueAction::Submit { .. }) => {
                eprintln!("postqueue: fatal: postqueue does not submit mail; use sendmail");
                ExitCode::from(EX_USAGE)
            }
            Err(usage) => {
                eprintln!("postqueue: fatal: {usage}");
                ExitCode::from(EX_USAGE)
            }
        },
        Cmd::Sendmail { args } => match sendmail_action(args) {
            Ok(PostqueueAction::List { json }) => run_async(list::list_command(config, json)),
            Ok(PostqueueAction::Flush(request)) => {
                run_async(flush_command(config, request, "postqueue"))
            }
            Ok(PostqueueAction::Submit {
                request,
                ignore_dots,
            }) => run_async(submit_command(config, request, ignore_dots)),
            Ok(PostqueueAction::Nothing) => ExitCode::SUCCESS,
            Err(usage) => {
                eprintln!("sendmail: fatal: {usage}");
                ExitCode::from(EX_USAGE)
            }
        },
        Cmd::Passwd { file, action } => passwd_command(&config, file.as_deref(), action),
        Cmd::Queue { action } => {
            let (request, json) = match action {
                QueueCmd::List { json } => return run_async(list::list_command(config, *json)),
                QueueCmd::Show { id } => (ControlRequest::Show { id: id.clone() }, false),
                QueueCmd::Shape {
                    queues,
                    senders,
                    json,
                } => (
                    ControlRequest::Shape {
                        states: shape_states(queues),
                        senders: *senders,
                    },
                    *json,
                ),
                QueueCmd::Hold { ids } => (change(QueueAction::Hold, ids), false),
                QueueCmd::Release { ids } => (change(QueueAction::Release, ids), false),
                QueueCmd::Delete { ids } => (change(QueueAction::Delete, ids), false),
                QueueCmd::Requeue { ids } => (change(QueueAction::Requeue, ids), false),
                // The two that work on the files themselves, server stopped.
                QueueCmd::Check => return repair::check_command(&config),
                QueueCmd::Salvage { shard } => return repair::salvage_command(&config, shard),
            };
            run_async(queue_command(config, request, json))
        }
    }
}

fn run_async(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => {
            let code = rt.block_on(f);
            // Blocking lookups (getaddrinfo) of abandoned delivery attempts
            // must not hold up the exit; their work is redone after a start.
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
            code
        }
        Err(e) => {
            eprintln!("towerpost: fatal: cannot start the runtime: {e}");
            ExitCode::from(EX_SOFTWARE)
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so that SMTP
/// sessions, outbound connections, spool files and the control socket do
/// not share the usual 1024 (`smtpd_session_limit` counts on headroom).
fn raise_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            },
        ) {
            Ok(()) => tracing::info!(target: "towerpost::master",
                "open file limit raised from {current} to {maximum}"),
            Err(e) => tracing::warn!(target: "towerpost::master",
                "cannot raise the open file limit from {current}: {e}"),
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    raise_file_limit();
    // Freed memory goes back to the system within seconds (jemalloc's
    // decay) even while the server is idle, when no allocation would
    // otherwise trigger the purge.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(target: "towerpost::master", "cannot start the allocator's background threads: {e}");
    }
    match towerpost::ServerBuilder::new(config).run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "towerpost::master", "fatal: {e}");
            eprintln!("towerpost: fatal: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

fn change(action: QueueAction, ids: &[String]) -> ControlRequest {
    ControlRequest::Change {
        action,
        ids: ids.to_vec(),
    }
}

/// Reads the message from standard input; without `-i`, a line with a lone
/// `.` ends it, as sendmail's.
fn read_stdin_message(ignore_dots: bool) -> std::io::Result<Vec<u8>> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut lock = stdin.lock();
    loop {
        line.clear();
        if lock.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !ignore_dots && text == b"." {
            break;
        }
        out.extend_from_slice(&line);
    }
    Ok(out)
}

/// `sendmail` submission: the message goes to the running server.
async fn submit_command(config: Config, request: ControlRequest, ignore_dots: bool) -> ExitCode {
    let body = match read_stdin_message(ignore_dots) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("sendmail: fatal: reading standard input: {e}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    match control::request_with_body(&config.queue_directory, &request, &body).await {
        Ok(Some(ControlResponse::Queued(_))) => ExitCode::SUCCESS,
        Ok(Some(ControlResponse::Error(e))) => {
            eprintln!("sendmail: fatal: {e}");
            ExitCode::from(EX_DATAERR)
        }
        Ok(Some(ControlResponse::TryAgain(e))) => {
            eprintln!("sendmail: warning: {e}");
            ExitCode::from(EX_TEMPFAIL)
        }
        Ok(_) | Err(_) => {
            eprintln!("sendmail: fatal: the mail system is down; message not queued");
            ExitCode::from(EX_TEMPFAIL)
        }
    }
}

/// Sends a flush request and reports like postqueue: silent on success,
/// `<prog>: fatal: …` and its exit code on refusal.
async fn flush_command(config: Config, request: ControlRequest, prog: &str) -> ExitCode {
    use std::io::{IsTerminal, Write};
    // `flush --wait`: on a terminal, one status line redrawn in place;
    // piped, each message's line as its attempt ends.
    let terminal = std::io::stdout().is_terminal();
    let mut streamed = false;
    let on_progress = |p: ControlResponse| {
        if let ControlResponse::Progress {
            done,
            total,
            failed,
            id,
            outcome,
        } = p
        {
            let mut out = std::io::stdout().lock();
            let _ = if terminal {
                write!(
                    out,
                    "\r\x1b[Kflushing: {done}/{total} done, {failed} failed"
                )
            } else {
                streamed = true;
                writeln!(out, "{id}: {outcome}")
            };
            let _ = out.flush();
        }
        Ok(())
    };
    let answer =
        control::request_with_progress(&config.queue_directory, &request, on_progress).await;
    if terminal {
        print!("\r\x1b[K");
    }
    match answer {
        Ok(Some(ControlResponse::Flushed(n))) => {
            if prog == "towerpost" {
                println!(
                    "towerpost: flushing {n} message{}",
                    if n == 1 { "" } else { "s" }
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Some(ControlResponse::FlushedWait(outcomes))) => {
            if !streamed {
                for (id, outcome) in &outcomes {
                    println!("{id}: {outcome}");
                }
            }
            let n = outcomes.len();
            println!(
                "towerpost: flushed {n} message{}",
                if n == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Ok(Some(ControlResponse::FlushRefused { text, code })) => {
            eprintln!("{prog}: fatal: {text}");
            ExitCode::from(code)
        }
        Ok(Some(ControlResponse::Error(e))) => {
            eprintln!("{prog}: fatal: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
        Ok(Some(_)) | Ok(None) | Err(_) => {
            eprintln!("{prog}: fatal: Cannot flush mail queue - mail system is down");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

async fn queue_command(config: Config, request: ControlRequest, json: bool) -> ExitCode {
    let action = match &request {
        ControlRequest::Change { action, .. } => Some(*action),
        _ => None,
    };
    let response = match control::request(&config.queue_directory, &request).await {
        Ok(Some(response)) => response,
        // No server running: work on the queue files directly.
        Ok(None) => match offline(&config, request).await {
            Ok(response) => response,
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
    match response {
        ControlResponse::Message(entry) => {
            print!("{}", control::format_show(&entry));
            ExitCode::SUCCESS
        }
        ControlResponse::Shape(shape) => {
            if json {
                match serde_json::to_string(&shape) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("towerpost: fatal: {e}");
                        return ExitCode::from(EX_SOFTWARE);
                    }
                }
            } else {
                print!("{}", shape.to_text());
            }
            ExitCode::SUCCESS
        }
        ControlResponse::Changed { done, missing } => {
            let (each, summary) = action.map_or(("", ""), QueueAction::words);
            for id in &done {
                println!("towerpost: {id}: {each}");
            }
            if !summary.is_empty() {
                let n = done.len();
                println!(
                    "towerpost: {summary}: {n} message{}",
                    if n == 1 { "" } else { "s" }
                );
            }
            for id in &missing {
                eprintln!("towerpost: {id}: no such message in the queue");
            }
            if missing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_NOINPUT)
            }
        }
        ControlResponse::Entries { .. }
        | ControlResponse::Listed(_)
        | ControlResponse::Flushed(_)
        | ControlResponse::FlushedWait(_)
        | ControlResponse::Progress { .. }
        | ControlResponse::FlushRefused { .. }
        | ControlResponse::Queued(_) => {
            eprintln!("towerpost: fatal: unexpected answer from the server");
            ExitCode::from(EX_SOFTWARE)
        }
        ControlResponse::Error(e) | ControlResponse::TryAgain(e) => {
            eprintln!("towerpost: fatal: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}

async fn offline(
    config: &Config,
    request: ControlRequest,
) -> Result<ControlResponse, towerpost_queue::QueueError> {
    let queue = towerpost_queue::Queue::open(towerpost::queue_settings(config)).await?;
    let response = control::execute(&queue, request).await;
    queue.shutdown().await;
    Ok(response)
}

/// `config show [-d] [KEY…]`, as `postconf [-d] [-n] [KEY…]`: the
/// non-default settings, every default, or the named keys.
fn show_settings(config: &Config, defaults: bool, keys: &[String]) -> ExitCode {
    let shown = if defaults {
        Config::default_settings()
    } else if keys.is_empty() {
        config.non_default_settings()
    } else {
        config.all_settings()
    };
    if keys.is_empty() {
        for (key, value) in shown {
            println!("{key} = {value}");
        }
        return ExitCode::SUCCESS;
    }
    let mut status = ExitCode::SUCCESS;
    for key in keys {
        match shown.iter().find(|(k, _)| k == key) {
            Some((key, value)) => println!("{key} = {value}"),
            None => {
                let hint = Config::suggest_key(key)
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                eprintln!("towerpost: unknown key '{key}'{hint}");
                status = ExitCode::from(EX_USAGE);
            }
        }
    }
    status
}
