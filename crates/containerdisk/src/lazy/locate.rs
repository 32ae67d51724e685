//! Finding the disk inside a layer that is not downloaded yet: the tar
//! headers are read through the sparse copy (each read fetches what it
//! needs), the data of other entries is seeked over, and the disk entry's
//! data offset is taken from the archive, never assumed (1024 for a GNU
//! tar with a `disk/` entry, 1536 with a pax header, anything for other
//! writers).
//!
//! The entries up to the disk pass the same rules as in a full pull
//! (`pull::untar::classify`); the entries after it are checked when the
//! complete layer is untarred and verified. A sparse tar entry, whose
//! bytes are not where its offset says, cannot be read in place: the
//! caller falls back to a full pull.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::blob::SparseBlob;
use crate::pull::untar::{DiskEntry, classify};

/// Where the disk lies in the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskSpan {
    /// Its path in the layer (`disk/disk.qcow2`).
    pub(crate) name: String,
    /// Where its bytes start in the blob.
    pub(crate) offset: u64,
    /// How many there are.
    pub(crate) size: u64,
}

/// Why the disk could not be located in place.
#[derive(Debug)]
pub(crate) enum Located {
    /// The disk, in place.
    Found(DiskSpan),
    /// The layer has no disk (the next layer may).
    NoDisk,
    /// The layer is refused (the reason), as a full pull would refuse it.
    Refused(String),
    /// The disk is there but cannot be read in place (the reason).
    NotInPlace(String),
    /// The headers could not be read (the registry did not answer).
    Unreadable(io::Error),
}

/// Reads the tar headers of `blob` until the disk's, each read waiting at
/// most `timeout`.
pub(crate) fn locate_disk(
    blob: &Arc<SparseBlob>,
    max_disk_size: u64,
    timeout: Duration,
) -> Located {
    let unreadable = Rc::new(Cell::new(false));
    let reader = BlobReader {
        blob: Arc::clone(blob),
        position: 0,
        timeout,
        unreadable: Rc::clone(&unreadable),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries_with_seek() {
        Ok(entries) => entries,
        Err(error) => return Located::Refused(format!("not a tar archive: {error}")),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            // The tar reader may rephrase the error; the flag says whether
            // the bytes were missing or bad.
            Err(error) if unreadable.get() => return Located::Unreadable(error),
            Err(error) => return Located::Refused(format!("not a valid tar archive: {error}")),
        };
        let DiskEntry { name, shown } = match classify(&entry, false) {
            Ok(Some(disk)) => disk,
            Ok(None) => continue,
            Err(reason) => return Located::Refused(reason),
        };
        let size = entry.size();
        if size > max_disk_size {
            return Located::Refused(format!(
                "{shown:?} has {size} bytes, more than the {max_disk_size} allowed"
            ));
        }
        if entry.header().entry_type() == tar::EntryType::GNUSparse {
            return Located::NotInPlace(format!("{shown:?} is a sparse tar entry"));
        }
        let offset = entry.raw_file_position();
        if offset.saturating_add(size) > blob.size() {
            return Located::Refused(format!("{shown:?} runs past the end of the layer"));
        }
        return Located::Found(DiskSpan { name, offset, size });
    }
    Located::NoDisk
}

/// The sparse copy as a file the tar reader can read and seek.
struct BlobReader {
    blob: Arc<SparseBlob>,
    position: u64,
    timeout: Duration,
    /// Set when a read failed: the bytes did not arrive.
    unreadable: Rc<Cell<bool>>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.blob.size().saturating_sub(self.position);
        // Headers are 512 bytes; a small read keeps each fetch small.
        let length = buf
            .len()
            .min(64 << 10)
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        if length == 0 {
            return Ok(0);
        }
        match self
            .blob
            .read_at(self.position, &mut buf[..length], self.timeout)
        {
            Ok(()) => {
                self.position += length as u64;
                Ok(length)
            }
            Err(error) => {
                self.unreadable.set(true);
                Err(error)
            }
        }
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(by) => self.position.checked_add_signed(by),
            SeekFrom::End(by) => self.blob.size().checked_add_signed(by),
        };
        self.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the layer's start",
            )
        })?;
        Ok(self.position)
    }
}
