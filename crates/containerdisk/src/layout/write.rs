//! Writing an image into a layout.
//!
//! Blobs are written to a temporary name, synced and renamed, so an
//! interrupted write never leaves a blob whose name does not match its
//! content; the index is written last, the same way, and the directory is
//! synced after each rename so that the new name survives a crash too.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::{INDEX_FILE, LAYOUT_FILE, LAYOUT_VERSION, REF_NAME, blobs_dir, parse_index};
use crate::image::{Image, MANIFEST_MEDIA_TYPE};
use crate::manifest::{Descriptor, ImageIndex};
use crate::{BlobSource, Digest, copy_blob};

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
    let blobs = blobs_dir(dir);
    fs::create_dir_all(&blobs)?;
    write_atomically(&dir.join(LAYOUT_FILE), LAYOUT_VERSION)?;
    write_blob(&blobs, layer, progress)?;
    write_blob(&blobs, &image.config, &mut |_| {})?;
    write_blob(&blobs, &image.manifest, &mut |_| {})?;
    let index_path = dir.join(INDEX_FILE);
    let mut index = read_index(&index_path)?;
    let mut entry = Descriptor::new(
        MANIFEST_MEDIA_TYPE,
        image.manifest.digest().clone(),
        image.manifest.size(),
    );
    entry
        .annotations
        .insert(REF_NAME.to_owned(), tag.to_owned());
    index
        .manifests
        .retain(|m| m.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
    index.manifests.push(entry);
    write_atomically(
        &index_path,
        &serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
    )?;
    Ok(image.manifest.digest().clone())
}

fn read_index(path: &Path) -> io::Result<ImageIndex> {
    match fs::read(path) {
        Ok(bytes) => parse_index(&bytes).map_err(|e| invalid(&format!("{}: {e}", path.display()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(ImageIndex::empty()),
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
    sync_dir(blobs)
}

/// Replaces `path` with `bytes` so that a crash leaves the old content or
/// the new, never a torn or empty file: temp file, fsync, rename, fsync of
/// the directory (which makes the rename itself durable).
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::MemoryBlob;
    use crate::manifest::{ImageManifest, Manifest, OCI_INDEX};

    fn image(content: &[u8]) -> (Image, MemoryBlob) {
        let layer = MemoryBlob::new(content.to_vec());
        (Image::new(&layer, &Default::default()), layer)
    }

    #[test]
    fn the_index_is_replaced_whole_and_keeps_foreign_entries() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        // An index another tool wrote, with fields we do not use.
        let foreign = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"x",
            "digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64",
            "variant":"v8"}},"annotations":{{"{REF_NAME}":"other"}}}}],"annotations":{{"a":"b"}}}}"#,
            Digest::of(b"other")
        );
        fs::write(dir.join(INDEX_FILE), &foreign).unwrap();
        let (first, layer) = image(b"one");
        write(dir, &first, &layer, "t", &mut |_| {}).unwrap();
        let (second, layer) = image(b"two");
        let digest = write(dir, &second, &layer, "t", &mut |_| {}).unwrap();

        let index = parse_index(&fs::read(dir.join(INDEX_FILE)).unwrap()).unwrap();
        assert_eq!(index.manifests.len(), 2);
        let old: ImageIndex = serde_json::from_str(&foreign).unwrap();
        assert_eq!(index.manifests[0], old.manifests[0]);
        assert_eq!(index.extra, old.extra);
        assert_eq!(index.manifests[1].digest, digest);
        assert_eq!(index.manifests[1].annotations[REF_NAME], "t");
        // The manifest it names is a valid image manifest.
        let bytes = fs::read(super::super::blob_path(dir, &digest)).unwrap();
        let parsed = Manifest::parse(MANIFEST_MEDIA_TYPE, &bytes).unwrap();
        assert!(matches!(parsed, Manifest::Image(ImageManifest { .. })));
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
}
