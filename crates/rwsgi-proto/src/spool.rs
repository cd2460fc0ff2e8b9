//! Temporary files for bodies longer than `post-buffering`, kept for the
//! next such body.
//!
//! A new unlinked file per body costs the filesystem its every block: the
//! page cache pages are allocated and charged, ext4 reserves each block
//! for delayed allocation, and all of it is undone when the file closes.
//! A 1 MiB upload spooled so took 760–800 µs of system time, against
//! 260–300 in a file kept from the last body, which already has its
//! pages: the next body overwrites them from the start, and only its
//! first `len` bytes are ever read.

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};

/// Most files kept between bodies: enough for the bodies a worker spools
/// at once, not one per connection.
const SPARE_FILES: usize = 16;

/// Most bytes the kept files may hold together: a file that would pass it
/// is emptied before it is kept. Their pages stay in the page cache (in
/// memory outright where the temporary directory is a tmpfs) until
/// [`SpareFiles::trim`] closes them.
const SPARE_BYTES: u64 = 64 << 20;

/// A worker's spool files between bodies.
#[derive(Debug, Default)]
pub struct SpareFiles {
    spare: Mutex<Spare>,
}

#[derive(Debug, Default)]
struct Spare {
    /// Each file with its size and the round it was kept in, latest last.
    files: Vec<(File, u64, u64)>,
    bytes: u64,
    /// How many times [`SpareFiles::trim`] ran.
    round: u64,
}

impl SpareFiles {
    /// A file kept from an earlier body, to be written from its start
    /// (positioned anywhere): `None` when none is kept, and the caller
    /// makes a new one. Either way it comes back here when dropped, as
    /// [`SpoolFile::new`] makes it.
    pub fn take(&self) -> Option<File> {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        let (file, size, _) = spare.files.pop()?;
        spare.bytes -= size;
        Some(file)
    }

    /// Closes the files kept since before the last trim and not taken
    /// since: called at a steady pace, so that a worker that spools no
    /// more bodies soon holds none of their pages.
    pub fn trim(&self) {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        let round = spare.round;
        let stale = spare.files.partition_point(|&(_, _, kept)| kept < round);
        let closed: u64 = spare.files.drain(..stale).map(|(_, size, _)| size).sum();
        spare.bytes -= closed;
        spare.round += 1;
    }

    /// Whether no file is kept.
    pub fn is_empty(&self) -> bool {
        self.spare.lock().unwrap_or_else(PoisonError::into_inner).files.is_empty()
    }

    /// Keeps `file` for the next body, within [`SPARE_FILES`] and
    /// [`SPARE_BYTES`]; else it closes.
    fn keep(&self, file: File) {
        let Ok(mut size) = file.metadata().map(|meta| meta.len()) else { return };
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.files.len() >= SPARE_FILES {
            return;
        }
        if spare.bytes + size > SPARE_BYTES {
            // Its blocks go back; the file itself is still worth keeping.
            if file.set_len(0).is_err() {
                return;
            }
            size = 0;
        }
        spare.bytes += size;
        let round = spare.round;
        spare.files.push((file, size, round));
    }

    /// How many files are kept.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.spare.lock().unwrap_or_else(PoisonError::into_inner).files.len()
    }
}

/// An unlinked temporary file a body was spooled into: the body is its
/// first bytes (how many, [`crate::BodySource::Spooled`] says); past them
/// may lie the rest of an earlier, longer body. Dropped, it goes back to
/// the [`SpareFiles`] it belongs to, for the next body.
#[derive(Debug)]
pub struct SpoolFile {
    /// Always `Some` until dropped.
    file: Option<File>,
    home: Arc<SpareFiles>,
}

impl SpoolFile {
    /// `file`, to go back to `home` when dropped.
    pub fn new(file: File, home: Arc<SpareFiles>) -> Self {
        SpoolFile { file: Some(file), home }
    }
}

impl Deref for SpoolFile {
    type Target = File;

    fn deref(&self) -> &File {
        match &self.file {
            Some(file) => file,
            None => unreachable!("a spool file is only taken out when dropped"),
        }
    }
}

impl DerefMut for SpoolFile {
    fn deref_mut(&mut self) -> &mut File {
        match &mut self.file {
            Some(file) => file,
            None => unreachable!("a spool file is only taken out when dropped"),
        }
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            self.home.keep(file);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::{Read, Seek, Write};

    fn temp() -> File {
        tempfile::tempfile().unwrap()
    }

    /// A dropped file is the next one taken, with what it held: the next
    /// body overwrites it from the start.
    #[test]
    fn a_dropped_spool_file_is_taken_again() {
        let home = Arc::new(SpareFiles::default());
        assert!(home.take().is_none(), "none kept yet");
        let mut spool = SpoolFile::new(temp(), home.clone());
        spool.write_all(b"an earlier, longer body").unwrap();
        drop(spool);
        assert_eq!(home.kept(), 1);
        let mut again = SpoolFile::new(home.take().unwrap(), home.clone());
        assert!(home.is_empty());
        again.rewind().unwrap();
        again.write_all(b"a body").unwrap();
        again.rewind().unwrap();
        let mut first = [0; 6];
        again.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"a body");
    }

    /// The kept files are bounded in number and in the bytes they hold: a
    /// file past the bytes is emptied, one past the number closed.
    #[test]
    fn the_kept_files_are_bounded() {
        let home = Arc::new(SpareFiles::default());
        let big = temp();
        big.set_len(SPARE_BYTES).unwrap();
        drop(SpoolFile::new(big, home.clone()));
        let over = temp();
        over.set_len(1).unwrap();
        drop(SpoolFile::new(over, home.clone()));
        let sizes: Vec<u64> =
            (0..2).map(|_| home.take().unwrap().metadata().unwrap().len()).collect();
        assert_eq!(sizes, [0, SPARE_BYTES], "the one over the bytes was emptied");
        for _ in 0..SPARE_FILES + 3 {
            drop(SpoolFile::new(temp(), home.clone()));
        }
        assert_eq!(home.kept(), SPARE_FILES);
    }

    /// A trim closes the files kept before the last one and not taken
    /// since; the others stay.
    #[test]
    fn a_file_unused_from_one_trim_to_the_next_is_closed() {
        let home = Arc::new(SpareFiles::default());
        drop(SpoolFile::new(temp(), home.clone()));
        home.trim();
        assert_eq!(home.kept(), 1, "kept since the last trim");
        drop(SpoolFile::new(temp(), home.clone()));
        home.trim();
        assert_eq!(home.kept(), 1, "the first closed, the second kept");
        home.trim();
        assert!(home.is_empty());
        assert!(home.take().is_none());
    }
}
