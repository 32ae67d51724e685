//! Where the input bytes of a disk image come from.
//!
//! A VMNetX package stores its disk as a ZIP member, normally uncompressed:
//! such a disk is read in place as a byte range of the package file
//! ([`FileRange`]), without extracting it. A deflated member can only be read
//! front to back, so it is a [`Source::Stream`].

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Positioned reads of an input of known size, usable from several threads.
pub trait ReadAt: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (fewer only at the end of the input).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The size of the input in bytes.
    fn size(&self) -> u64;

    /// Fills `buf` from `offset`; bytes past the end of the input read as
    /// zeros. Returns how many bytes came from the input.
    fn read_at_zero_filled(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read_at(&mut buf[filled..], offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf[filled..].fill(0);
        Ok(filled)
    }
}

/// A byte range `[start, start + len)` of a file, seen as a whole input.
#[derive(Debug)]
pub struct FileRange {
    file: File,
    start: u64,
    len: u64,
}

impl FileRange {
    /// A range of an open file. The range must lie inside the file.
    pub fn new(file: File, start: u64, len: u64) -> io::Result<FileRange> {
        let file_len = file.metadata()?.len();
        let end = start.checked_add(len);
        if end.is_none_or(|end| end > file_len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("range {start}+{len} lies past the end of the file ({file_len} bytes)"),
            ));
        }
        Ok(FileRange { file, start, len })
    }

    /// A whole file.
    pub fn open(path: &Path) -> io::Result<FileRange> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileRange {
            file,
            start: 0,
            len,
        })
    }
}

impl ReadAt for FileRange {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let available = usize::try_from(self.len - offset).unwrap_or(usize::MAX);
        let want = buf.len().min(available);
        self.file.read_at(&mut buf[..want], self.start + offset)
    }

    fn size(&self) -> u64 {
        self.len
    }
}

/// The input of a conversion.
pub enum Source {
    /// Random access: any format.
    RandomAccess(Box<dyn ReadAt>),
    /// Front to back only, of a known length: raw images only.
    Stream {
        /// The bytes.
        reader: Box<dyn Read + Send>,
        /// How many bytes the stream holds.
        len: u64,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::RandomAccess(input) => write!(f, "RandomAccess({} bytes)", input.size()),
            Source::Stream { len, .. } => write!(f, "Stream({len} bytes)"),
        }
    }
}
