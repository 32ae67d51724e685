//! The end of a lazy pull: the complete blob is checked against the
//! layer's digest and untarred into an ordinary cache entry, by the very
//! code a full pull uses (the blob is read as an OCI layout's, so the
//! digest, size and tar rules are those of `pull`).

use std::path::PathBuf;

use crate::digest::Digest;
use crate::layout::{LayoutSource, blob_path};
use crate::manifest::Descriptor;
use crate::pull::cache::{CacheMeta, CachedDisk, Partial};
use crate::pull::stream::stream_layer;
use crate::pull::untar::Streamed;
use crate::registry::NoProgress;

/// What the cache entry records about the image.
#[derive(Debug, Clone)]
pub(crate) struct EntryFacts {
    /// The cache key: the digest the reference resolved to.
    pub(crate) digest: Digest,
    /// The image manifest's digest.
    pub(crate) manifest: Digest,
    /// The image as its source names it.
    pub(crate) image: String,
}

/// Where a lazy pull keeps its sparse copy of `layer` inside `partial`:
/// the path an OCI layout would give the blob.
pub(crate) fn sparse_path(partial: &Partial, layer: &Digest) -> PathBuf {
    blob_path(partial.path(), layer)
}

/// Checks the complete copy of `layer` in `partial` and installs its disk
/// as the cache entry of `facts.digest`; the copy itself is removed first
/// (open handles keep reading it). Returns why not, as a sentence.
pub(crate) fn verify_and_install(
    partial: Partial,
    layer: &Descriptor,
    facts: &EntryFacts,
    max_disk_size: u64,
) -> Result<CachedDisk, String> {
    let source = LayoutSource::new(partial.path());
    let found = stream_layer(
        &source,
        layer,
        &partial.disk(),
        max_disk_size,
        &mut NoProgress,
    )
    .map_err(|error| match error {
        Streamed::Refused(reason) => format!("layer {} refused: {reason}", layer.digest),
        Streamed::Failed(error) => format!("layer {}: {error}", layer.digest),
    })?;
    let _ = std::fs::remove_dir_all(partial.path().join("blobs"));
    let Some((entry, size)) = found else {
        return Err(format!(
            "layer {} holds no disk once complete",
            layer.digest
        ));
    };
    partial
        .install(&CacheMeta {
            digest: facts.digest.clone(),
            entry,
            layer: layer.digest.clone(),
            manifest: facts.manifest.clone(),
            size,
            source: facts.image.clone(),
        })
        .map_err(|error| error.to_string())
}
