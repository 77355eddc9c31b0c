//! A shard file read through a copy-on-write layer in memory: how the
//! queue keeps reading a shard whose file system refuses writes.
//!
//! redb cannot open such a file as it is: after the failed commit the file
//! needs its start-up repair, which writes, and a read-only open refuses a
//! file that needs repair; the old handle is no help either, since redb
//! answers every read it cannot serve from its cache with an error once a
//! write has failed. Here the repair's writes land in memory (a few pages
//! of allocator state), the file itself is only read, and the store on top
//! refuses every commit, so nothing is ever acknowledged from memory.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use redb::StorageBackend;

const PAGE: u64 = 4096;

/// The file, read-only, with the pages written since kept in memory.
#[derive(Debug)]
pub(crate) struct ReadOnlyOverlay {
    file: File,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The length redb sees.
    len: u64,
    /// File contents at or past this offset read as zeros: the length was
    /// set below it at some point (a later growth must not bring back
    /// what a truncation dropped).
    file_valid: u64,
    /// Pages written, by page index.
    pages: HashMap<u64, Box<[u8]>>,
}

impl ReadOnlyOverlay {
    /// Opens `path` for reading.
    pub(crate) fn open(path: &Path) -> std::io::Result<ReadOnlyOverlay> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(ReadOnlyOverlay {
            file,
            state: Mutex::new(State {
                len,
                file_valid: len,
                pages: HashMap::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One page as the file shows it, zeros past what is valid.
    fn file_page(&self, state: &State, index: u64) -> std::io::Result<Box<[u8]>> {
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let start = index * PAGE;
        let valid = state.file_valid.saturating_sub(start).min(PAGE) as usize;
        if valid > 0 {
            self.file.read_exact_at(&mut page[..valid], start)?;
        }
        Ok(page)
    }
}

impl StorageBackend for ReadOnlyOverlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.state();
        let end = offset + out.len() as u64;
        if end > state.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the shard file",
            ));
        }
        let mut at = offset;
        while at < end {
            let index = at / PAGE;
            let within = (at % PAGE) as usize;
            let take = ((PAGE as usize) - within).min((end - at) as usize);
            let dest = &mut out[(at - offset) as usize..][..take];
            match state.pages.get(&index) {
                Some(page) => dest.copy_from_slice(&page[within..within + take]),
                None if at < state.file_valid => {
                    let from_file = (state.file_valid - at).min(take as u64) as usize;
                    self.file.read_exact_at(&mut dest[..from_file], at)?;
                    dest[from_file..].fill(0);
                }
                None => dest.fill(0),
            }
            at += take as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.state();
        if len < state.len {
            state.file_valid = state.file_valid.min(len);
            let keep = len.div_ceil(PAGE);
            state.pages.retain(|&index, _| index < keep);
            // The part of the last page past the new end reads as zeros.
            if let Some(page) = state.pages.get_mut(&(len / PAGE)) {
                page[(len % PAGE) as usize..].fill(0);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        // Nothing here is durable, and nothing claims to be: the store on
        // top refuses commits.
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut state = self.state();
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let index = at / PAGE;
            let within = (at % PAGE) as usize;
            let take = ((PAGE as usize) - within).min((end - at) as usize);
            if !state.pages.contains_key(&index) {
                let page = self.file_page(&state, index)?;
                state.pages.insert(index, page);
            }
            let page = state.pages.get_mut(&index).expect("inserted above");
            page[within..within + take].copy_from_slice(&data[(at - offset) as usize..][..take]);
            at += take as u64;
        }
        state.len = state.len.max(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stay_in_memory_and_reads_see_them_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..3 * PAGE as usize + 100)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &original).unwrap();
        let o = ReadOnlyOverlay::open(&path).unwrap();
        assert_eq!(o.len().unwrap(), original.len() as u64);

        o.write(PAGE - 2, b"abcd").unwrap();
        let mut out = vec![0; 8];
        o.read(PAGE - 4, &mut out).unwrap();
        assert_eq!(&out[..2], &original[PAGE as usize - 4..PAGE as usize - 2]);
        assert_eq!(&out[2..6], b"abcd");
        assert_eq!(&out[6..], &original[PAGE as usize + 2..PAGE as usize + 4]);

        // Shrink, then grow: what was cut off reads as zeros.
        o.set_len(PAGE + 1).unwrap();
        o.set_len(4 * PAGE).unwrap();
        let mut tail = vec![1; 10];
        o.read(PAGE + 1, &mut tail).unwrap();
        assert_eq!(tail, vec![0; 10]);
        let mut end = vec![1; 10];
        o.read(3 * PAGE, &mut end).unwrap();
        assert_eq!(end, vec![0; 10]);
        assert!(o.read(4 * PAGE - 1, &mut [0; 2]).is_err());

        // The file is untouched.
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
