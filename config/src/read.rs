//! Reading the files a configuration names, with a bound: a key set to
//! `/dev/zero` or a FIFO must give an error naming the file, not a
//! process that reads forever.

use std::io::Read;
use std::path::Path;

/// The most a configuration file or lookup table may hold.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The text of the regular file at `path`, at most [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid("larger than 64 MiB"));
    }
    Ok(text)
}
