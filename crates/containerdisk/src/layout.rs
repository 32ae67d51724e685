//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`),
//! written instead of pushing to a registry (`--output oci:DIR`).
//!
//! Blobs are written to a temporary name and renamed, so an interrupted
//! write never leaves a blob whose name does not match its content; the
//! index is written last.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::image::{Image, MANIFEST_MEDIA_TYPE};
use crate::{BlobSource, Digest, copy_blob};

/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Writes `image` (with `layer`) into the layout at `dir` under `tag`,
/// creating the layout if needed and replacing an older entry of that tag.
/// Returns the manifest digest.
pub fn write(
    dir: &Path,
    image: &Image,
    layer: &dyn BlobSource,
    tag: &str,
    progress: &mut dyn FnMut(u64),
) -> io::Result<Digest> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs)?;
    write_atomically(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_blob(&blobs, layer, progress)?;
    write_blob(&blobs, &image.config, &mut |_| {})?;
    write_blob(&blobs, &image.manifest, &mut |_| {})?;
    let index_path = dir.join("index.json");
    let mut index = read_index(&index_path)?;
    let entry = json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": image.manifest.digest(),
        "size": image.manifest.size(),
        "annotations": { REF_NAME: tag },
    });
    let manifests = index["manifests"]
        .as_array_mut()
        .ok_or_else(|| invalid("index.json has no manifests list"))?;
    manifests.retain(|m| m["annotations"][REF_NAME] != tag);
    manifests.push(entry);
    write_atomically(
        &index_path,
        &serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
    )?;
    Ok(image.manifest.digest().clone())
}

/// Where a blob lives in a layout.
pub fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join("sha256").join(digest.hex())
}

fn read_index(path: &Path) -> io::Result<Value> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| invalid(&format!("{}: {e}", path.display())))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Ok(json!({ "schemaVersion": 2, "manifests": [] }))
        }
        Err(error) => Err(error),
    }
}

fn write_blob(
    blobs: &Path,
    blob: &dyn BlobSource,
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let path = blobs.join(blob.digest().hex());
    if fs::metadata(&path).is_ok_and(|meta| meta.len() == blob.size()) {
        return Ok(()); // content-addressed: same name, same bytes
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".blob-")
        .tempfile_in(blobs)?;
    copy_blob(blob, &mut temp, progress)?;
    temp.as_file().sync_all()?;
    temp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}
