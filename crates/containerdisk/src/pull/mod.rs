//! Pulling a containerDisk into a local cache, the way a cloudlet needs it:
//! the disk file of the image, not the image.
//!
//! [`fetch_disk`] resolves a [`DiskSource`] (a registry image by tag or
//! digest, or an image in an OCI layout directory) to a manifest, and
//! extracts the image's disk into `CACHE/<manifest-digest-hex>/disk.qcow2`:
//!
//! - manifests: OCI image manifests and Docker schema 2 manifests; an OCI
//!   index or Docker manifest list resolves to its `linux/amd64` entry. The
//!   cache is keyed by the digest the reference resolves to (the index's,
//!   for a multi-platform image). Every manifest and blob is checked against
//!   its digest;
//! - layers: uncompressed or gzip tar (`application/vnd.oci.image.layer.v1.tar`,
//!   `…tar+gzip`, Docker's `…rootfs.diff.tar.gzip`; gzip is recognised by
//!   its magic bytes), scanned in order. The disk is the first regular file
//!   directly in `disk/` (as KubeVirt takes the first file of `/disk`).
//!   Nothing else in a layer is ever written anywhere; a layer is refused
//!   outright when an entry has an absolute path or a `..` component, or
//!   when `disk/` holds a link, a device or a FIFO. A disk larger than
//!   [`FetchOptions::max_disk_size`] is refused;
//! - the layer is streamed: downloaded (or read from the layout), hashed and
//!   untarred in one pass through a pipe, so memory stays at a few buffers
//!   and disk space at the disk itself. Everything goes to a temporary
//!   directory in the cache, renamed into place only once the layer's digest
//!   has been checked: the cache never holds a partial or unverified disk;
//! - a fetch by digest whose disk is in the cache is answered without
//!   touching the registry (or the layout); a fetch by tag asks the
//!   registry for the manifest, then finds the disk in the cache.
//!
//! The disk is stored under the name `disk.qcow2` whatever its name in the
//! image (KubeVirt's own images use `disk/disk.img`); its format is the
//! caller's to check.
//!
//! The work is split by concern:
//!
//! - `disk_source`: [`DiskSource`], parsed from text or chart values;
//! - `registry_store`: a registry repository as an image source (the
//!   layout's is [`crate::layout::LayoutSource`]; both implement
//!   [`ImageSource`](crate::source::ImageSource));
//! - `resolve`: from the manifest a reference names to the image manifest;
//! - `stream`: a layer piped from its source through the tar scanner;
//! - `untar`: the tar scanner, which lets only the disk out;
//! - `cache`: the cache entries, and installing one atomically;
//! - this file: the options and the order of the steps.

pub(crate) mod cache;
mod disk_source;
mod evict;
pub(crate) mod registry_store;
pub(crate) mod resolve;
pub(crate) mod stream;
pub(crate) mod untar;

use std::path::Path;

use crate::layout::LayoutSource;
use crate::manifest::{Descriptor, TAR_LAYERS};
use crate::registry::{PushProgress, Registry, RegistryOptions};
use crate::source::ImageSource;

pub use self::cache::{CachedDisk, DISK_FILE, META_FILE, remove_partials};
pub use self::disk_source::DiskSource;
pub use self::evict::{Eviction, cache_bytes, evict_lru};
pub use crate::pull_error::PullError;
pub use crate::source::ImageRef;

use self::cache::{CacheMeta, Partial, cached};
use self::registry_store::RegistrySource;
use self::resolve::{layers, resolve};
use self::stream::stream_layer;
use self::untar::{DISK_DIR, FoundDisk, Streamed};

/// The default bound on a disk's size: 256 GiB.
pub const MAX_DISK_SIZE: u64 = 256 << 30;

/// How [`fetch_disk_with`] works.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The largest disk accepted.
    pub max_disk_size: u64,
    /// Timeouts and retries for a registry (its credentials and `insecure`
    /// come from the [`DiskSource`]).
    pub registry: RegistryOptions,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_disk_size: MAX_DISK_SIZE,
            registry: RegistryOptions::default(),
        }
    }
}

/// Fetches the disk of `source` into `cache_dir` (created if missing) with
/// the default [`FetchOptions`]; see the module documentation.
pub fn fetch_disk(
    source: &DiskSource,
    cache_dir: &Path,
    progress: &mut dyn PushProgress,
) -> Result<CachedDisk, PullError> {
    fetch_disk_with(source, cache_dir, &FetchOptions::default(), progress)
}

/// [`fetch_disk`] with explicit options.
pub fn fetch_disk_with(
    source: &DiskSource,
    cache_dir: &Path,
    options: &FetchOptions,
    progress: &mut dyn PushProgress,
) -> Result<CachedDisk, PullError> {
    if let ImageRef::Digest(digest) = source.reference()
        && let Some(hit) = cached(cache_dir, digest)
    {
        tracing::debug!(image = %source, %digest, "disk in the cache; registry not asked");
        return Ok(hit);
    }
    let store = open(source, options)?;
    let image = source.to_string();
    let top = store.manifest(source.reference())?;
    if let Some(hit) = cached(cache_dir, &top.digest) {
        tracing::debug!(image, digest = %top.digest, "disk in the cache");
        return Ok(hit);
    }
    tracing::debug!(image, digest = %top.digest, "pulling the disk");
    let (manifest, image_manifest) = resolve(store.as_ref(), &image, top.clone())?;
    let layers = layers(&image, &image_manifest)?;
    let partial = Partial::create(cache_dir)?;
    let found = extract_disk(store.as_ref(), &image, layers, &partial, options, progress)?;
    let Some((layer, (entry, size))) = found else {
        return Err(PullError::NoDisk {
            image,
            reason: format!(
                "no regular file in {DISK_DIR}/ in its {} layer(s)",
                layers.len()
            ),
        });
    };
    tracing::debug!(image, digest = %top.digest, bytes = size, "disk extracted and verified");
    partial.install(&CacheMeta {
        digest: top.digest,
        entry,
        layer,
        manifest: manifest.digest,
        size,
        source: image,
    })
}

/// The registry repository or the layout `source` names.
fn open(source: &DiskSource, options: &FetchOptions) -> Result<Box<dyn ImageSource>, PullError> {
    match source {
        DiskSource::Registry { repository, .. } => {
            let registry = open_registry(source, options)?;
            Ok(Box::new(RegistrySource::new(registry, repository)))
        }
        DiskSource::Layout { dir, .. } => Ok(Box::new(LayoutSource::new(dir))),
    }
}

/// The client of the registry `source` names, with its credentials; a
/// layout has none.
pub(crate) fn open_registry(
    source: &DiskSource,
    options: &FetchOptions,
) -> Result<Registry, PullError> {
    match source {
        DiskSource::Registry {
            registry,
            credentials,
            insecure,
            ..
        } => {
            let options = RegistryOptions {
                credentials: credentials.clone(),
                insecure: *insecure,
                ..options.registry.clone()
            };
            Ok(Registry::new(registry, options)?)
        }
        DiskSource::Layout { dir, .. } => Err(PullError::InvalidSource(format!(
            "{} is a layout, not a registry",
            dir.display()
        ))),
    }
}

/// Streams `layers` in order into the tar scanner until one holds the disk
/// (written to `partial`); returns that layer's digest and what it holds.
fn extract_disk(
    store: &dyn ImageSource,
    image: &str,
    layers: &[Descriptor],
    partial: &Partial,
    options: &FetchOptions,
    progress: &mut dyn PushProgress,
) -> Result<Option<(crate::Digest, FoundDisk)>, PullError> {
    let disk = partial.disk();
    for layer in layers {
        let refuse = |reason: String| PullError::Layer {
            image: image.to_owned(),
            layer: layer.digest.clone(),
            reason,
        };
        if !TAR_LAYERS.contains(&layer.media_type.as_str()) {
            return Err(refuse(format!(
                "unsupported layer type {:?} (expected a tar, plain or gzip)",
                layer.media_type
            )));
        }
        let found = stream_layer(store, layer, &disk, options.max_disk_size, progress).map_err(
            |error| match error {
                Streamed::Refused(reason) => refuse(reason),
                Streamed::Failed(error) => error,
            },
        )?;
        if let Some(found) = found {
            return Ok(Some((layer.digest.clone(), found)));
        }
    }
    Ok(None)
}
