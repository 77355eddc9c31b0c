//! `queue list`, `mailq`, `postqueue -p` and `-j`: the listing printed a
//! page at a time as the server sends it, or as the queue files are read
//! when no server runs, so that a million messages take the memory of one
//! page on either side.

use std::io::Write as _;
use std::process::ExitCode;

use towerpost::control::{self, ControlRequest, ControlResponse};
use towerpost::queue_list::Listing;
use towerpost::sysexits::{EX_SOFTWARE, EX_UNAVAILABLE};
use towerpost_config::Config;
use towerpost_queue::{Quarantined, Queue, QueueEntry, QueueError};

/// Prints the queue listing; `json` for `postqueue -j`.
pub(crate) async fn list_command(config: Config, json: bool) -> ExitCode {
    let mut printer = Printer {
        listing: Listing::new(json),
        text: String::new(),
        failed: false,
        closed: false,
    };
    let done = match listed(&config, &mut printer).await {
        Ok(quarantined) => {
            // On stderr, so that the listing keeps postqueue's format.
            for q in &quarantined {
                eprintln!(
                    "towerpost: warning: {}: damaged queue record in {} moved to quarantine: {}",
                    q.id, q.shard, q.reason
                );
            }
            printer.finish().map_err(output)
        }
        Err(failure) => Err(failure),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`mailq | head`): nothing to report.
        Err(_) if printer.closed => ExitCode::SUCCESS,
        Err(Failure { text, code }) => {
            eprintln!("towerpost: fatal: {text}");
            ExitCode::from(code)
        }
    }
}

/// Prints every message, from the server or the files; returns the damaged
/// records to warn about.
async fn listed(config: &Config, printer: &mut Printer) -> Result<Vec<Quarantined>, Failure> {
    let request = ControlRequest::List { pages: true };
    let answer = control::request_with_progress(&config.queue_directory, &request, |r| match r {
        ControlResponse::Listed(page) => printer.page(&page),
        _ => Ok(()),
    })
    .await;
    match answer {
        // A server from before paging sends every message here.
        Ok(Some(ControlResponse::Entries {
            entries,
            quarantined,
        })) => {
            printer.page(&entries).map_err(output)?;
            Ok(quarantined)
        }
        Ok(Some(ControlResponse::Error(e) | ControlResponse::TryAgain(e))) => Err(Failure {
            text: e,
            code: EX_UNAVAILABLE,
        }),
        Ok(Some(_)) => Err(Failure {
            text: "unexpected answer from the server".into(),
            code: EX_SOFTWARE,
        }),
        // No server running: read the queue files directly.
        Ok(None) => offline(config, printer).await,
        // Stdout failed, not the server.
        Err(e) if printer.failed => Err(output(e)),
        Err(e) => Err(Failure {
            text: format!(
                "cannot talk to the server at {}: {e}",
                control::socket_path(&config.queue_directory).display()
            ),
            code: EX_UNAVAILABLE,
        }),
    }
}

async fn offline(config: &Config, printer: &mut Printer) -> Result<Vec<Quarantined>, Failure> {
    let queue = Queue::open(towerpost::queue_settings(config))
        .await
        .map_err(storage)?;
    let listed = walk(&queue, printer).await;
    queue.shutdown().await;
    listed
}

async fn walk(queue: &Queue, printer: &mut Printer) -> Result<Vec<Quarantined>, Failure> {
    let mut scan = queue.scan();
    while let Some(page) = scan.next_page().await.map_err(storage)? {
        printer.page(&page).map_err(output)?;
    }
    queue.quarantined().await.map_err(storage)
}

/// The listing so far, written to stdout a page at a time.
struct Printer {
    listing: Listing,
    /// One page's text, reused.
    text: String,
    /// Writing to stdout failed.
    failed: bool,
    /// Stdout's reader is gone (the failure is nothing to report).
    closed: bool,
}

impl Printer {
    fn page(&mut self, entries: &[QueueEntry]) -> std::io::Result<()> {
        self.text.clear();
        self.listing.page(entries, &mut self.text);
        self.write()
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.text.clear();
        self.listing.finish(&mut self.text);
        self.write()
    }

    fn write(&mut self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        let written = out
            .write_all(self.text.as_bytes())
            .and_then(|()| out.flush());
        if let Err(e) = &written {
            self.failed = true;
            self.closed = e.kind() == std::io::ErrorKind::BrokenPipe;
        }
        written
    }
}

/// Why the listing stopped, as `towerpost: fatal:` says it.
struct Failure {
    text: String,
    code: u8,
}

fn storage(e: QueueError) -> Failure {
    Failure {
        text: e.to_string(),
        code: EX_UNAVAILABLE,
    }
}

fn output(e: std::io::Error) -> Failure {
    Failure {
        text: format!("cannot write the listing: {e}"),
        code: EX_SOFTWARE,
    }
}
