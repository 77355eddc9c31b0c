//! Where log lines go: standard error, or `maillog_file`, which SIGUSR1
//! reopens so logrotate can move it away (its `postrotate` step).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The log's destination. Each event is formatted whole and written with
/// one `write_all` under the lock, so lines from concurrent tasks never
/// interleave.
pub(crate) struct LogOutput {
    file: Option<(PathBuf, Mutex<File>)>,
}

impl LogOutput {
    /// Standard error, or `path` opened for appending (created with mode
    /// 0640 if missing).
    pub(crate) fn open(path: Option<PathBuf>) -> io::Result<Self> {
        let file = match path {
            None => None,
            Some(path) => {
                let file = open_append(&path)?;
                Some((path, Mutex::new(file)))
            }
        };
        Ok(Self { file })
    }

    /// Opens the file again by name and switches to it: lines logged before
    /// the switch are in the old file, every later one in the new. A file
    /// that cannot be opened leaves the old one in use. Returns the path, or
    /// `None` when logging to standard error.
    pub(crate) fn reopen(&self) -> io::Result<Option<PathBuf>> {
        let Some((path, file)) = &self.file else {
            return Ok(None);
        };
        let fresh = open_append(path)?;
        *lock(file) = fresh;
        Ok(Some(path.clone()))
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("maillog_file {}: {e}", path.display())))
}

fn lock(file: &Mutex<File>) -> MutexGuard<'_, File> {
    // A panic while writing a line cannot leave the file inconsistent.
    file.lock().unwrap_or_else(|p| p.into_inner())
}

/// tracing-subscriber writes each formatted event with one `write_all`,
/// which takes the lock once (through its `MakeWriter` for `Arc<W>`).
impl Write for &LogOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.file {
            None => io::stderr().write(buf),
            Some((_, file)) => lock(file).write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &self.file {
            None => io::stderr().write_all(buf),
            Some((_, file)) => lock(file).write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.file {
            None => io::stderr().flush(),
            Some((_, file)) => lock(file).flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_switches_to_a_new_file_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maillog");
        let out = LogOutput::open(Some(path.clone())).unwrap();
        (&out).write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("maillog.1")).unwrap();
        (&out).write_all(b"two\n").unwrap();
        assert_eq!(out.reopen().unwrap(), Some(path.clone()));
        (&out).write_all(b"three\n").unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("maillog.1")).unwrap();
        assert_eq!(rotated, "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn a_file_that_cannot_be_opened_names_the_key() {
        let err = LogOutput::open(Some("/nonexistent-dir/maillog".into()))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("maillog_file /nonexistent-dir/maillog: "),
            "{err}"
        );
    }
}
