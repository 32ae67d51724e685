//! Streaming a layer: downloaded (or read from the layout), hashed and
//! untarred in one pass through a pipe, so memory stays at a few buffers
//! and disk space at the disk itself.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::untar::{FoundDisk, Streamed, scan_layer};
use crate::manifest::Descriptor;
use crate::pull_error::PullError;
use crate::registry::{PushProgress, RegistryError};
use crate::source::ImageSource;

/// Streams `layer` from `store` through the tar scanner; returns the disk's
/// entry name and size when the layer has one (written to `disk`).
pub(crate) fn stream_layer(
    store: &dyn ImageSource,
    layer: &Descriptor,
    disk: &Path,
    max_disk_size: u64,
    progress: &mut dyn PushProgress,
) -> Result<Option<FoundDisk>, Streamed> {
    // A tar of the largest disk, its headers and some other files.
    let max_layer = max_disk_size.saturating_add(1 << 30);
    if layer.size > max_layer {
        return Err(Streamed::Refused(format!(
            "{} bytes, more than a disk of at most {} bytes needs",
            layer.size, max_disk_size
        )));
    }
    let (reader, writer) = io::pipe().map_err(|e| {
        Streamed::Failed(PullError::Io {
            what: "creating a pipe".into(),
            source: e,
        })
    })?;
    let overflow = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let scanner = scope.spawn(|| scan_layer(reader, disk, max_disk_size));
        let mut limited = Limited {
            inner: writer,
            left: layer.size,
            overflow: &overflow,
        };
        let fetched = store.blob(&layer.digest, layer.size, &mut limited, progress);
        drop(limited);
        let scanned = scanner
            .join()
            .unwrap_or_else(|_| Err(Streamed::Refused("the tar scanner panicked".into())));
        if overflow.load(Ordering::Relaxed) {
            return Err(Streamed::Refused(format!(
                "the blob is longer than the {} bytes its descriptor gives",
                layer.size
            )));
        }
        match (fetched, scanned) {
            (Ok(()), scanned) => scanned,
            // The scanner stopped reading (and said why) first.
            (Err(error), Err(Streamed::Refused(reason))) if is_broken_pipe(&error) => {
                Err(Streamed::Refused(reason))
            }
            // The scanner failed writing the disk (a full disk): its error
            // is the cause, the broken pipe only its echo.
            (Err(error), Err(Streamed::Failed(cause))) if is_broken_pipe(&error) => {
                Err(Streamed::Failed(cause))
            }
            (Err(error), _) => Err(Streamed::Failed(error)),
        }
    })
}

fn is_broken_pipe(error: &PullError) -> bool {
    match error {
        PullError::Registry(RegistryError::WriteBlob { source, .. })
        | PullError::Io { source, .. } => source.kind() == io::ErrorKind::BrokenPipe,
        _ => false,
    }
}

/// A writer that takes at most `left` more bytes.
struct Limited<'a, W: Write> {
    inner: W,
    left: u64,
    overflow: &'a AtomicBool,
}

impl<W: Write> Write for Limited<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.overflow.store(true, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than the blob's size",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
