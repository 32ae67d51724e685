//! Reading a layout as an [`ImageSource`]: manifests by reference name (the
//! `ref.name` annotation in `index.json`) or digest, blobs streamed and
//! checked against their size and digest.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{INDEX_FILE, REF_NAME, blob_path, parse_index};
use crate::digest::{Digest, Hasher};
use crate::manifest::{MANIFEST_MAX, declared_media_type};
use crate::pull_error::{PullError, io_error};
use crate::registry::PushProgress;
use crate::source::{FetchedManifest, ImageRef, ImageSource};

/// The read buffer of a blob.
const BUFFER: usize = 256 << 10;

/// The images of the layout at a directory.
#[derive(Debug, Clone)]
pub struct LayoutSource {
    dir: PathBuf,
}

impl LayoutSource {
    /// The layout at `dir` (nothing is read yet).
    pub fn new(dir: &Path) -> LayoutSource {
        LayoutSource {
            dir: dir.to_owned(),
        }
    }

    fn error(&self, reason: String) -> PullError {
        PullError::Layout {
            dir: self.dir.clone(),
            reason,
        }
    }

    /// The digest and declared media type of the manifest named `name`.
    fn find(&self, name: &str) -> Result<(Digest, String), PullError> {
        let index = read_bounded(&self.dir.join(INDEX_FILE), MANIFEST_MAX)
            .map_err(|e| self.error(format!("cannot read {INDEX_FILE}: {e}")))?;
        let index = parse_index(&index)
            .map_err(|e| self.error(format!("{INDEX_FILE} is not a valid index: {e}")))?;
        let entry = index
            .manifests
            .into_iter()
            .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(name))
            .ok_or_else(|| self.error(format!("no image named {name:?} in {INDEX_FILE}")))?;
        Ok((entry.digest, entry.media_type))
    }
}

impl ImageSource for LayoutSource {
    fn manifest(&self, reference: &ImageRef) -> Result<FetchedManifest, PullError> {
        let (digest, declared_type) = match reference {
            ImageRef::Digest(digest) => (digest.clone(), None),
            ImageRef::Tag(name) => {
                let (digest, media_type) = self.find(name)?;
                (digest, Some(media_type).filter(|t| !t.is_empty()))
            }
        };
        let bytes = read_bounded(&blob_path(&self.dir, &digest), MANIFEST_MAX)
            .map_err(|e| self.error(format!("cannot read manifest {digest}: {e}")))?;
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(self.error(format!("blob {digest} holds content of digest {actual}")));
        }
        // The manifest's own word first; the index entry's if it has none.
        let media_type = declared_media_type(&bytes)
            .or(declared_type)
            .unwrap_or_default();
        Ok(FetchedManifest {
            media_type,
            bytes,
            digest,
        })
    }

    fn blob(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<(), PullError> {
        let path = blob_path(&self.dir, digest);
        let unreadable = |e: io::Error| self.error(format!("cannot read blob {digest}: {e}"));
        let mut file = File::open(&path).map_err(unreadable)?;
        let len = file.metadata().map_err(unreadable)?.len();
        if len != size {
            return Err(self.error(format!(
                "blob {digest} has {len} bytes, the manifest says {size}"
            )));
        }
        progress.start(Some(size));
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; BUFFER];
        let mut done = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(format!("reading blob {digest}: {e}"))),
            };
            done += n as u64;
            if done > size {
                return Err(self.error(format!("blob {digest} grew while read")));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(io_error(format!("passing on blob {digest}")))?;
            progress.advance(n as u64);
        }
        let actual = hasher.finish();
        if actual != *digest || done != size {
            return Err(self.error(format!(
                "blob {digest} holds content of digest {actual} ({done} bytes)"
            )));
        }
        Ok(())
    }
}

/// The bytes of `path`, refused when larger than `max`.
fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}
