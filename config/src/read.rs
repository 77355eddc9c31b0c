//! Reading the files a configuration names, with a bound: a key set to
//! `/dev/zero` or a FIFO must give an error naming the file, not a
//! process that reads (or waits) forever.

use std::io::Read;
use std::path::Path;

/// The most a configuration file, lookup table or certificate may hold.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Checks, without opening it (opening a FIFO waits for a writer), that
/// `path` is a regular file of at most [`MAX_FILE_BYTES`].
pub fn check_file(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(invalid("larger than 64 MiB"));
    }
    Ok(())
}

/// The text of the regular file at `path`, at most [`MAX_FILE_BYTES`]
/// (also if it grows between the check and the read).
pub fn read_text(path: &Path) -> std::io::Result<String> {
    check_file(path)?;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_fifos_are_refused_without_reading() {
        let err = read_text(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            read_text(&fifo).unwrap_err().to_string(),
            "not a regular file"
        );
        let file = dir.path().join("table");
        std::fs::write(&file, "a OK\n").unwrap();
        assert_eq!(read_text(&file).unwrap(), "a OK\n");
    }
}
