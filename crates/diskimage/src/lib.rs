//! Disk images for Olive 2022: read raw and qcow2, write compressed qcow2.
//!
//! The archive's disks are large (gigabytes) and mostly empty or highly
//! compressible. This crate turns such a disk into a qcow2 v3 image whose data
//! clusters are compressed, in one sequential pass, on all cores, with memory
//! bounded independently of the disk size:
//!
//! - [`source`]: where the input bytes come from (a file, a byte range of a
//!   ZIP package read in place, or a sequential stream);
//! - [`reader`]: raw and qcow2 (v2/v3) input, validated so that a hostile
//!   image is refused before anything is read and never opens another path;
//! - [`writer`]: the on-disk layout of the compressed output image;
//! - [`convert()`]: the parallel pipeline that joins them.
//!
//! The output is readable by QEMU: deflate clusters use QEMU's 4 KiB window
//! (raw deflate, `windowBits = -12`), zstd clusters are one frame each.
//!
//! The qcow2 details we rely on are described in `docs/qcow2.md`.

mod codec;
pub mod convert;
mod format;
pub mod reader;
pub mod source;
pub mod writer;

pub use codec::Compression;
pub use convert::{Cancelled, ConvertOptions, ConvertStats, DEFAULT_CLUSTER_BITS, convert};
pub use reader::{
    DEFAULT_MAX_VIRTUAL_SIZE, DiskReader, InputFormat, MAX_VIRTUAL_SIZE, check_virtual_size,
    qcow2_virtual_size,
};
pub use source::{FileRange, ReadAt, Source};

/// Everything that can go wrong while reading or writing a disk image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not a usable disk image; the message says why.
    #[error("invalid disk image: {0}")]
    Invalid(String),
    /// The input uses a qcow2 feature this tool refuses on purpose or does
    /// not implement (backing files, encryption, external data files…).
    #[error("unsupported disk image: {0}")]
    Unsupported(String),
    /// Reading the input or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The conversion was cancelled (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
