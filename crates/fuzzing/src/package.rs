//! A VMNetX package: a ZIP archive with a manifest, a domain and a disk.

use std::io::{Read, Write};

use vmnetx::package::{DiskMember, Manifest, Package};

/// The most bytes of the disk member read back: the input is at most a few
/// KiB, but a DEFLATE member could inflate far beyond it.
const MAX_DISK_READ: u64 = 1 << 20;

/// Opens `data` as a package file and reads its disk member (at most
/// [`MAX_DISK_READ`] bytes, through the checks of a compressed member), and
/// also parses `data` as a manifest on its own, since a fuzzer rarely
/// builds a ZIP archive whose manifest reaches the XML checks.
pub fn package(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Manifest::parse(text);
    }
    // The reader works on a path (it reads members in place with positional
    // reads), so the bytes go to a temporary file.
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).and_then(|()| file.flush()).is_err() {
        return;
    }
    let Ok(package) = Package::open(file.path()) else {
        return;
    };
    let _ = (package.manifest(), package.domain(), package.comment());
    let Ok(disk) = package.disk() else {
        return;
    };
    let len = disk.len();
    let _ = disk.is_empty();
    let reader: Box<dyn Read> = match disk {
        DiskMember::Stored { file, .. } => Box::new(file.take(len)),
        DiskMember::Deflated { reader, .. } => reader,
    };
    let _ = std::io::copy(&mut reader.take(MAX_DISK_READ), &mut std::io::sink());
}
