//! `towerpost queue check` and `queue salvage SHARD`: finding a damaged
//! shard file and saving what it still holds, with the server stopped
//! (the storage engine locks each file to one process; start-up salvages
//! a damaged shard by itself, so these are for a look first or a file
//! restored from backup).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use towerpost::control;
use towerpost::sysexits::{EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_UNAVAILABLE};
use towerpost_config::Config;
use towerpost_queue::{ShardHealth, check_queue, salvage_shard};

/// Where the shard files are, under `queue_directory`.
fn shard_dir(config: &Config) -> PathBuf {
    config.queue_directory.join("queue")
}

/// Refuses while a server answers on the control socket.
fn server_running(config: &Config) -> bool {
    std::os::unix::net::UnixStream::connect(control::socket_path(&config.queue_directory)).is_ok()
}

fn refuse_running(config: &Config) -> Option<ExitCode> {
    server_running(config).then(|| {
        eprintln!(
            "towerpost: fatal: the server is running on {}; stop it first \
             (a shard file is opened by one process at a time)",
            config.queue_directory.display()
        );
        ExitCode::from(EX_TEMPFAIL)
    })
}

/// `queue check`: one line per shard file, then its problems. Exit 0 when
/// every shard is healthy, 65 (EX_DATAERR) when one needs salvage.
pub(crate) fn check_command(config: &Config) -> ExitCode {
    if let Some(code) = refuse_running(config) {
        return code;
    }
    let shards = match check_queue(&shard_dir(config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("towerpost: fatal: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let mut damaged = 0;
    for health in &shards {
        println!("{}", summary(health));
        for problem in &health.problems {
            println!("    {problem}");
        }
        damaged += usize::from(health.damaged);
    }
    if damaged == 0 {
        println!("towerpost: {} shard files checked, no damage", shards.len());
        ExitCode::SUCCESS
    } else {
        println!(
            "towerpost: {damaged} of {} shard files damaged; `towerpost queue salvage SHARD` \
             copies what can be read into a fresh file (start-up does so by itself)",
            shards.len()
        );
        ExitCode::from(EX_DATAERR)
    }
}

fn summary(h: &ShardHealth) -> String {
    let name = h.path.file_name().map_or_else(
        || h.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!(
        "{name}: {} ({} messages intact, {} quarantined)",
        if h.damaged { "DAMAGED" } else { "ok" },
        h.intact,
        h.quarantined
    )
}

/// The shard file that `shard` names: its index (`3`), file name
/// (`shard-003.redb`) or path.
fn shard_path(config: &Config, shard: &str) -> PathBuf {
    if let Ok(i) = shard.parse::<usize>() {
        return shard_dir(config).join(format!("shard-{i:03}.redb"));
    }
    let named = Path::new(shard);
    if named.components().count() == 1 {
        shard_dir(config).join(named)
    } else {
        named.to_owned()
    }
}

/// `queue salvage SHARD`: every readable record into a fresh file, the
/// damaged file to `queue/corrupt/`, and what was left behind listed.
pub(crate) fn salvage_command(config: &Config, shard: &str) -> ExitCode {
    if let Some(code) = refuse_running(config) {
        return code;
    }
    let path = shard_path(config, shard);
    if !path.is_file() {
        eprintln!("towerpost: fatal: {}: no such shard file", path.display());
        return ExitCode::from(EX_NOINPUT);
    }
    match salvage_shard(&path) {
        Ok(report) => {
            println!(
                "towerpost: {}: salvaged {} messages and {} quarantined records into a fresh \
                 file; the old file is {}",
                path.display(),
                report.salvaged,
                report.quarantined,
                report.moved_to.display()
            );
            for lost in &report.lost {
                println!("    not salvaged: {lost}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("towerpost: fatal: {e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}
