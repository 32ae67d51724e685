//! The single tar layer of a containerDisk, computed on the fly.
//!
//! The layer is `disk/` (0555) and `disk/<file>` (0444), both owned by
//! uid/gid 107 (`qemu`, the user KubeVirt runs QEMU as), with fixed
//! timestamps so that the same disk always gives the same digest. Its bytes
//! are two tar headers, the file itself, padding and the end-of-archive
//! blocks: only the 1 KiB of headers lives in memory, the rest is read from
//! the file whenever an offset is asked for. Nothing is copied.
//!
//! The layer is stored uncompressed (`application/vnd.oci.image.layer.v1.tar`):
//! the disk inside is already a compressed qcow2. Measured on the benchmark
//! disk (`bench/extract.sh`), gzip -6, as `docker push` applies it, shrank
//! the 270.3 MB qcow2 by 2.3 % (to 264.1 MB) in 6.8 s: about twice the time
//! of the whole conversion, for every push and again for every pull.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use tar::{EntryType, Header};

use crate::digest::{Digest, Hasher};
use crate::{BlobSource, copy_blob};

/// Media type of the layer: an uncompressed tar (see the module docs; its
/// home is [`crate::manifest`]).
pub use crate::manifest::OCI_LAYER_TAR as MEDIA_TYPE;
/// The `qemu` user and group of KubeVirt's virt-launcher.
pub const QEMU_ID: u64 = 107;
/// The directory KubeVirt looks for the disk in.
pub const DISK_DIR: &str = "disk/";
/// Timestamps of the entries: fixed, for reproducible digests.
const MTIME: u64 = 0;
/// A tar block.
const BLOCK: u64 = 512;

/// The layer of one disk file; see the module documentation.
#[derive(Debug)]
pub struct DiskLayer {
    file: File,
    file_size: u64,
    headers: Vec<u8>,
    digest: Digest,
}

impl DiskLayer {
    /// The layer holding `file` as `disk/<name>`. Reads the file once to
    /// compute the digest, reporting bytes hashed to `progress`.
    pub fn new(file: File, name: &str, progress: &mut dyn FnMut(u64)) -> io::Result<DiskLayer> {
        let file_size = file.metadata()?.len();
        let headers = headers(name, file_size)?;
        let placeholder = Digest::of(b"");
        let mut layer = DiskLayer {
            file,
            file_size,
            headers,
            digest: placeholder,
        };
        layer.digest = layer.hash(progress)?;
        Ok(layer)
    }

    fn hash(&self, progress: &mut dyn FnMut(u64)) -> io::Result<Digest> {
        let mut hasher = Hasher::new();
        copy_blob(self, &mut hasher, progress)?;
        Ok(hasher.finish())
    }

    /// Size of the disk file inside the layer.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    fn data_end(&self) -> u64 {
        self.headers.len() as u64 + self.file_size
    }
}

/// The two headers: the directory and the file.
fn headers(name: &str, file_size: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(2 * BLOCK as usize);
    let path = format!("{DISK_DIR}{name}");
    for (path, kind, mode, size) in [
        (DISK_DIR, EntryType::Directory, 0o555, 0),
        (path.as_str(), EntryType::Regular, 0o444, file_size),
    ] {
        // GNU headers store sizes of 8 GiB and more in binary.
        let mut header = Header::new_gnu();
        header.set_path(path)?;
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(QEMU_ID);
        header.set_gid(QEMU_ID);
        header.set_username("qemu")?;
        header.set_groupname("qemu")?;
        header.set_mtime(MTIME);
        header.set_size(size);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
    }
    Ok(out)
}

impl BlobSource for DiskLayer {
    fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Headers, the file padded to a block, and two zero blocks.
    fn size(&self) -> u64 {
        self.headers.len() as u64 + self.file_size.next_multiple_of(BLOCK) + 2 * BLOCK
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let headers = self.headers.len() as u64;
        if offset >= self.size() || buf.is_empty() {
            return Ok(0);
        }
        if offset < headers {
            let start = offset as usize;
            let n = buf.len().min(self.headers.len() - start);
            buf[..n].copy_from_slice(&self.headers[start..start + n]);
            return Ok(n);
        }
        if offset < self.data_end() {
            let want = buf.len().min((self.data_end() - offset) as usize);
            let n = self.file.read_at(&mut buf[..want], offset - headers)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the disk file shrank",
                ));
            }
            return Ok(n);
        }
        // Padding and the end-of-archive blocks are zeros.
        let n = buf.len().min((self.size() - offset) as usize);
        buf[..n].fill(0);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};

    fn layer_of(content: &[u8]) -> (tempfile::NamedTempFile, DiskLayer) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        let layer = DiskLayer::new(file.reopen().unwrap(), "disk.qcow2", &mut |_| {}).unwrap();
        (file, layer)
    }

    fn bytes_of(layer: &DiskLayer) -> Vec<u8> {
        let mut out = Vec::new();
        copy_blob(layer, &mut out, &mut |_| {}).unwrap();
        out
    }

    #[test]
    fn the_tar_crate_reads_back_paths_modes_and_owners() {
        let content: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let (_file, layer) = layer_of(&content);
        let bytes = bytes_of(&layer);
        assert_eq!(bytes.len() as u64, layer.size());
        assert_eq!(*layer.digest(), Digest::of(&bytes));
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((
                entry.path().unwrap().to_string_lossy().into_owned(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                header.username().unwrap().map(str::to_owned),
                data,
            ));
        }
        let owner = Some("qemu".to_owned());
        assert_eq!(
            seen,
            vec![
                ("disk/".into(), 0o555, 107, 107, owner.clone(), vec![]),
                ("disk/disk.qcow2".into(), 0o444, 107, 107, owner, content),
            ]
        );
    }

    #[test]
    fn reads_at_any_offset_match_the_stream() {
        let (_file, layer) = layer_of(&[7; 1500]);
        let whole = bytes_of(&layer);
        for offset in [
            0,
            1,
            511,
            512,
            1023,
            1024,
            1025,
            2523,
            2560,
            whole.len() as u64 - 1,
        ] {
            let mut buf = [0u8; 700];
            let n = layer.read_at(offset, &mut buf).unwrap();
            assert!(n > 0);
            assert_eq!(
                &buf[..n],
                &whole[offset as usize..offset as usize + n],
                "at {offset}"
            );
        }
        assert_eq!(layer.read_at(whole.len() as u64, &mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn same_content_same_digest() {
        let (_a, first) = layer_of(b"qcow2 bytes");
        let (_b, second) = layer_of(b"qcow2 bytes");
        assert_eq!(first.digest(), second.digest());
    }

    #[test]
    fn sizes_beyond_8_gib_are_encoded() {
        let bytes = headers("disk.qcow2", 20 << 30).unwrap();
        let header = tar::Header::from_byte_slice(&bytes[512..1024]);
        assert_eq!(header.size().unwrap(), 20 << 30);
    }
}
