//! KubeVirt containerDisk images, without Docker.
//!
//! A containerDisk is an OCI image whose single layer holds `disk/` and one
//! disk image in it, owned by the `qemu` user (uid/gid 107) that KubeVirt
//! runs as. This crate builds that image around a qcow2 file without copying
//! it: the layer is a tar stream computed on the fly (headers, the file,
//! padding), hashed in one pass and uploaded straight from the file.
//!
//! - [`digest`]: content digests (`sha256:…`);
//! - [`layer`]: the tar layer of one disk file, readable at any offset;
//! - [`manifest`]: the OCI and Docker manifest formats and media types;
//! - [`image`]: the image config and manifest of a containerDisk;
//! - [`reference`](mod@reference): image references (`registry/repository:tag`);
//! - [`auth`]: registry credentials from the files container tools keep;
//! - [`credentials`]: the search for a registry's credentials: those files
//!   and the credential helpers they name;
//! - [`registry`]: the OCI distribution API (push and pull);
//! - [`layout`]: an OCI image layout directory instead of a registry,
//!   written and read;
//! - [`source`]: a registry or a layout as one [`source::ImageSource`];
//! - [`pull`]: a containerDisk's disk fetched into a local cache (from a
//!   registry or a layout), checked and extracted in one streamed pass.
//!
//! The image, the registry API and OCI layouts are described in
//! `docs/containerdisk.md`.

pub mod auth;
pub mod credentials;
pub mod digest;
pub mod image;
pub mod layer;
pub mod layout;
pub mod lazy;
pub mod manifest;
pub mod pull;
mod pull_error;
pub mod reference;
pub mod registry;
pub mod source;

pub use digest::Digest;

/// The bytes of a blob, readable at any offset: uploads retry and resume,
/// so they must be able to read a piece again.
pub trait BlobSource: Sync {
    /// The blob's digest.
    fn digest(&self) -> &Digest;
    /// The blob's size in bytes.
    fn size(&self) -> u64;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// Writes all of `blob` to `out`, reporting the bytes done to `progress`.
pub fn copy_blob(
    blob: &dyn BlobSource,
    out: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<()> {
    let mut buf = vec![0; 1 << 20];
    let mut offset = 0;
    while offset < blob.size() {
        let n = blob.read_at(offset, &mut buf)?;
        if n == 0 {
            let message = "the blob is shorter than its size (its file shrank?)";
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                message,
            ));
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
        progress(offset);
    }
    Ok(())
}

/// A small blob held in memory (configs, manifests).
#[derive(Debug, Clone)]
pub struct MemoryBlob {
    bytes: Vec<u8>,
    digest: Digest,
}

impl MemoryBlob {
    /// A blob of `bytes`.
    pub fn new(bytes: Vec<u8>) -> MemoryBlob {
        let digest = Digest::of(&bytes);
        MemoryBlob { bytes, digest }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl BlobSource for MemoryBlob {
    fn digest(&self) -> &Digest {
        &self.digest
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }
}
