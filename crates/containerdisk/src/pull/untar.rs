//! Untarring a layer we do not trust: only the disk comes out.
//!
//! The layer (plain or gzip tar, gzip recognised by its magic bytes) is read
//! to its end. The disk is the first regular file directly in `disk/` (as
//! KubeVirt takes the first file of `/disk`); nothing else is ever written
//! anywhere. A layer is refused outright when an entry has an absolute path
//! or a `..` component, or when `disk/` holds a link, a device or a FIFO,
//! or a disk larger than the bound.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::pull_error::PullError;

/// The directory a containerDisk keeps its disk in.
pub(crate) const DISK_DIR: &str = "disk";
/// The read buffer of a layer stream.
const BUFFER: usize = 256 << 10;

/// The disk found in a layer: its path in the layer and its size.
pub(crate) type FoundDisk = (String, u64);

/// How streaming a layer ended badly.
pub(crate) enum Streamed {
    /// The layer's content is refused.
    Refused(String),
    /// Fetching or writing failed.
    Failed(PullError),
}

/// Reads a layer (plain or gzip tar) to its end; writes the first regular
/// file directly in `disk/` to `disk`.
pub(crate) fn scan_layer(
    reader: io::PipeReader,
    disk: &Path,
    max_disk_size: u64,
) -> Result<Option<FoundDisk>, Streamed> {
    let mut raw = BufReader::with_capacity(BUFFER, reader);
    let gzip = raw
        .fill_buf()
        .map_err(|e| Streamed::Refused(format!("reading the layer: {e}")))?
        .starts_with(&[0x1f, 0x8b]);
    let found = if gzip {
        scan_tar(
            flate2::bufread::MultiGzDecoder::new(&mut raw),
            disk,
            max_disk_size,
        )?
    } else {
        scan_tar(&mut raw, disk, max_disk_size)?
    };
    // Read what follows the archive too, so that the whole blob is hashed.
    io::copy(&mut raw, &mut io::sink())
        .map_err(|e| Streamed::Refused(format!("reading the layer: {e}")))?;
    Ok(found)
}

fn scan_tar(
    reader: impl Read,
    disk: &Path,
    max_disk_size: u64,
) -> Result<Option<FoundDisk>, Streamed> {
    let refused = |reason: String| Streamed::Refused(reason);
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| refused(format!("not a tar archive: {e}")))?;
    let mut found = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| refused(format!("not a valid tar archive: {e}")))?;
        let DiskEntry { name, shown } = match classify(&entry, found.is_some()).map_err(refused)? {
            Some(disk) => disk,
            None => continue,
        };
        // The file's size (a PAX record or a sparse map may override the header's).
        let size = entry.size();
        if size > max_disk_size {
            return Err(refused(format!(
                "{shown:?} has {size} bytes, more than the {max_disk_size} allowed"
            )));
        }
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(disk)
            .map_err(|e| {
                Streamed::Failed(PullError::Io {
                    what: format!("creating {}", disk.display()),
                    source: e,
                })
            })?;
        let written = io::copy(&mut (&mut entry).take(size), &mut file).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::InvalidData {
                refused(format!("{shown:?}: {e}"))
            } else {
                Streamed::Failed(PullError::Io {
                    what: format!("writing {}", disk.display()),
                    source: e,
                })
            }
        })?;
        if written != size {
            return Err(refused(format!(
                "{shown:?} ends after {written} of its {size} bytes"
            )));
        }
        found = Some((name, size));
    }
    Ok(found)
}

/// The disk's entry, as [`classify`] finds it.
pub(crate) struct DiskEntry {
    /// Its path in the layer, normalised (`disk/disk.qcow2`).
    pub(crate) name: String,
    /// Its path as the layer spells it, for messages.
    pub(crate) shown: String,
}

/// Whether `entry` is the disk (the first regular file directly in
/// `disk/`; `found` says one was seen before). Refuses the layer, with the
/// reason, for an absolute or `..` path and for a link, device or FIFO in
/// `disk/`. The one home of these rules, for the streamed pull and the
/// lazy one.
pub(crate) fn classify<R: Read>(
    entry: &tar::Entry<'_, R>,
    found: bool,
) -> Result<Option<DiskEntry>, String> {
    let raw_path = entry.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw_path).into_owned();
    let components = check_path(&raw_path).map_err(|reason| format!("{shown:?}: {reason}"))?;
    let Some((first, rest)) = components.split_first() else {
        return Ok(None); // `.` or `./`
    };
    if *first != DISK_DIR.as_bytes() {
        return Ok(None); // never written anywhere
    }
    let kind = entry.header().entry_type();
    match kind {
        tar::EntryType::Directory => return Ok(None),
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {}
        tar::EntryType::Symlink | tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            return Err(format!(
                "{shown:?} is a link (to {target:?}), not a disk file"
            ));
        }
        other if other.is_pax_global_extensions() || other.is_pax_local_extensions() => {
            return Ok(None);
        }
        other => {
            return Err(format!(
                "{shown:?} is a {}, not a disk file",
                kind_name(other)
            ));
        }
    }
    // The disk is a file directly in disk/, not a whiteout.
    if rest.len() != 1 || rest[0].starts_with(b".wh.") || found {
        return Ok(None);
    }
    Ok(Some(DiskEntry {
        name: components_to_string(&components),
        shown,
    }))
}

/// The components of a tar path without `.`; refuses absolute paths and
/// `..`.
fn check_path(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if path.starts_with(b"/") {
        return Err("an absolute path in the layer");
    }
    let mut components = Vec::new();
    for component in path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("a `..` path in the layer"),
            other => components.push(other),
        }
    }
    Ok(components)
}

fn components_to_string(components: &[&[u8]]) -> String {
    components
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(
            check_path(b"./disk/disk.qcow2").unwrap(),
            [b"disk".as_slice(), b"disk.qcow2"]
        );
        assert_eq!(check_path(b"disk/").unwrap(), [b"disk".as_slice()]);
        assert!(check_path(b"/disk/disk.qcow2").is_err());
        assert!(check_path(b"disk/../../etc/passwd").is_err());
        assert!(check_path(b"..").is_err());
    }
}
