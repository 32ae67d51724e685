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

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::auth::Credentials;
use crate::digest::{Digest, Hasher};
use crate::layout::{REF_NAME, blob_path};
use crate::reference::{ImageReference, is_valid_tag};
use crate::registry::{MANIFEST_MAX, PushProgress, Registry, RegistryError, RegistryOptions};

/// The disk's file name in its cache directory.
pub const DISK_FILE: &str = "disk.qcow2";
/// What the cache keeps about the image, beside the disk.
pub const META_FILE: &str = "image.json";
/// The default bound on a disk's size: 256 GiB.
pub const MAX_DISK_SIZE: u64 = 256 << 30;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Layer types whose content is a tar, plain or gzip-compressed.
const TAR_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];
/// The directory a containerDisk keeps its disk in.
const DISK_DIR: &str = "disk";
/// The read buffer of a layer stream.
const BUFFER: usize = 256 << 10;

/// A manifest reference: a tag (in a layout, the `ref.name` annotation) or
/// a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A tag, or a layout's reference name.
    Tag(String),
    /// A manifest digest.
    Digest(Digest),
}

impl ImageRef {
    /// `sha256:…` is a digest, anything else a tag.
    pub fn parse(text: &str) -> ImageRef {
        match Digest::parse(text) {
            Ok(digest) => ImageRef::Digest(digest),
            Err(_) => ImageRef::Tag(text.to_owned()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            ImageRef::Tag(tag) => tag,
            ImageRef::Digest(digest) => digest.as_str(),
        }
    }
}

/// Where a containerDisk comes from.
#[derive(Clone)]
pub enum DiskSource {
    /// An image in a registry.
    Registry {
        /// `host[:port]`.
        registry: String,
        /// The repository, without the registry.
        repository: String,
        /// Tag or digest.
        reference: ImageRef,
        /// Credentials, if the registry needs them.
        credentials: Option<Credentials>,
        /// Plain HTTP to a registry that is not on loopback.
        insecure: bool,
    },
    /// An image in an OCI image layout directory.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// Its `org.opencontainers.image.ref.name`, or a manifest digest.
        reference: ImageRef,
    },
}

impl fmt::Debug for DiskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials' Debug hides the password.
        match self {
            DiskSource::Registry {
                registry,
                repository,
                reference,
                credentials,
                insecure,
            } => f
                .debug_struct("Registry")
                .field("registry", registry)
                .field("repository", repository)
                .field("reference", reference)
                .field("credentials", credentials)
                .field("insecure", insecure)
                .finish(),
            DiskSource::Layout { dir, reference } => f
                .debug_struct("Layout")
                .field("dir", dir)
                .field("reference", reference)
                .finish(),
        }
    }
}

impl fmt::Display for DiskSource {
    /// `registry/repository:tag`, `registry/repository@digest`,
    /// `oci:DIR:ref` or `oci:DIR@digest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = |reference: &ImageRef| match reference {
            ImageRef::Tag(_) => ':',
            ImageRef::Digest(_) => '@',
        };
        match self {
            DiskSource::Registry {
                registry,
                repository,
                reference,
                ..
            } => write!(
                f,
                "{registry}/{repository}{}{}",
                separator(reference),
                reference.as_str()
            ),
            DiskSource::Layout { dir, reference } => write!(
                f,
                "oci:{}{}{}",
                dir.display(),
                separator(reference),
                reference.as_str()
            ),
        }
    }
}

impl DiskSource {
    /// Parses `oci:DIR:REF`, `oci:DIR@sha256:…` or a registry reference
    /// `host[:port]/repository[:tag][@sha256:…]` (a digest wins over a tag;
    /// neither means `latest`).
    pub fn parse(text: &str) -> Result<DiskSource, PullError> {
        let invalid = |reason: &str| PullError::InvalidSource(format!("{text:?}: {reason}"));
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, reference) = if let Some((dir, digest)) = rest.rsplit_once('@') {
                let digest = Digest::parse(digest).map_err(|e| invalid(&e.to_string()))?;
                (dir, ImageRef::Digest(digest))
            } else {
                match rest.rsplit_once(':') {
                    Some((dir, name)) if !name.is_empty() && !name.contains('/') => {
                        (dir, ImageRef::Tag(name.to_owned()))
                    }
                    _ => return Err(invalid("expected oci:DIR:REF or oci:DIR@sha256:…")),
                }
            };
            if dir.is_empty() {
                return Err(invalid("no layout directory"));
            }
            return Ok(DiskSource::Layout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        let parsed = ImageReference::parse(text).map_err(|e| invalid(&e.to_string()))?;
        let reference = match (parsed.digest, parsed.tag) {
            (Some(digest), _) => ImageRef::Digest(digest),
            (None, Some(tag)) => ImageRef::Tag(tag),
            (None, None) => ImageRef::Tag("latest".into()),
        };
        Ok(DiskSource::Registry {
            registry: parsed.registry,
            repository: parsed.repository,
            reference,
            credentials: None,
            insecure: false,
        })
    }

    /// The source a recipe's `vmi` chart values name: `repository` (a
    /// registry and path, or `oci:DIR`), `name`, and a `digest` (preferred)
    /// or a `tag` (default `latest`; for a layout, the name is the reference
    /// name). `credentials` apply to a registry.
    pub fn from_chart_values(
        repository: &str,
        name: &str,
        tag: Option<&str>,
        digest: Option<&str>,
        credentials: Option<Credentials>,
    ) -> Result<DiskSource, PullError> {
        let digest = digest
            .map(|text| Digest::parse(text).map_err(|e| PullError::InvalidSource(e.to_string())))
            .transpose()?;
        if let Some(dir) = repository.strip_prefix("oci:") {
            if dir.is_empty() {
                return Err(PullError::InvalidSource(format!(
                    "{repository:?}: no layout directory"
                )));
            }
            let reference = match digest {
                Some(digest) => ImageRef::Digest(digest),
                None => ImageRef::Tag(name.to_owned()),
            };
            return Ok(DiskSource::Layout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        let text = format!("{}/{name}", repository.trim_end_matches('/'));
        let parsed =
            ImageReference::parse(&text).map_err(|e| PullError::InvalidSource(e.to_string()))?;
        let reference = match (digest, tag) {
            (Some(digest), _) => ImageRef::Digest(digest),
            (None, Some(tag)) if is_valid_tag(tag) => ImageRef::Tag(tag.to_owned()),
            (None, Some(tag)) => {
                return Err(PullError::InvalidSource(format!("invalid tag {tag:?}")));
            }
            (None, None) => ImageRef::Tag("latest".into()),
        };
        Ok(DiskSource::Registry {
            registry: parsed.registry,
            repository: parsed.repository,
            reference,
            credentials,
            insecure: false,
        })
    }

    fn reference(&self) -> &ImageRef {
        match self {
            DiskSource::Registry { reference, .. } | DiskSource::Layout { reference, .. } => {
                reference
            }
        }
    }
}

/// A disk in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDisk {
    /// `CACHE/<digest hex>/disk.qcow2` (read-only).
    pub path: PathBuf,
    /// The digest the reference resolved to: the cache key.
    pub digest: Digest,
    /// The image manifest's digest (differs from `digest` when that is an
    /// index).
    pub manifest: Digest,
    /// The layer the disk came from.
    pub layer: Digest,
    /// The disk's path in the layer, e.g. `disk/disk.qcow2`.
    pub entry: String,
    /// The disk's size in bytes.
    pub size: u64,
    /// Whether the disk was already in the cache.
    pub cache_hit: bool,
}

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

/// Why a disk could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The source is malformed.
    #[error("invalid disk source {0}")]
    InvalidSource(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The OCI layout is missing something or holds wrong content.
    #[error("OCI layout {}: {reason}", dir.display())]
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A manifest (or index) we cannot use.
    #[error("image {image}: {reason}")]
    Manifest {
        /// The image.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer we refuse.
    #[error("image {image}, layer {layer}: {reason}")]
    Layer {
        /// The image.
        image: String,
        /// The layer's digest.
        layer: Digest,
        /// What is wrong.
        reason: String,
    },
    /// No layer holds a disk.
    #[error("image {image} holds no disk: {reason}")]
    NoDisk {
        /// The image.
        image: String,
        /// What was found instead.
        reason: String,
    },
    /// A cache file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> PullError {
    let what = what.into();
    move |source| PullError::Io { what, source }
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
        return Ok(hit);
    }
    let store = Store::open(source, options)?;
    let image = source.to_string();
    let top = store.manifest(source.reference())?;
    if let Some(hit) = cached(cache_dir, &top.digest) {
        return Ok(hit);
    }
    let manifest = resolve(&store, &image, top.clone())?;
    let layers = layers_of(&image, &manifest.bytes)?;
    fs::create_dir_all(cache_dir).map_err(io_error(format!(
        "creating the cache {}",
        cache_dir.display()
    )))?;
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(cache_dir)
        .map_err(io_error(format!(
            "creating a temporary directory in {}",
            cache_dir.display()
        )))?;
    let disk = partial.path().join(DISK_FILE);
    let mut found = None;
    for layer in &layers {
        let refuse = |reason: String| PullError::Layer {
            image: image.clone(),
            layer: layer.digest.clone(),
            reason,
        };
        if !TAR_LAYERS.contains(&layer.media_type.as_str()) {
            return Err(refuse(format!(
                "unsupported layer type {:?} (expected a tar, plain or gzip)",
                layer.media_type
            )));
        }
        if let Some((entry, size)) =
            stream_layer(&store, layer, &disk, options, progress).map_err(|error| match error {
                Streamed::Refused(reason) => refuse(reason),
                Streamed::Failed(error) => error,
            })?
        {
            found = Some((layer.digest.clone(), entry, size));
            break;
        }
    }
    let Some((layer, entry, size)) = found else {
        return Err(PullError::NoDisk {
            image,
            reason: format!(
                "no regular file in {DISK_DIR}/ in its {} layer(s)",
                layers.len()
            ),
        });
    };
    let meta = json!({
        "digest": top.digest,
        "manifest": manifest.digest,
        "layer": layer,
        "entry": entry,
        "size": size,
        "source": image,
    });
    let meta_path = partial.path().join(META_FILE);
    fs::write(
        &meta_path,
        serde_json::to_vec_pretty(&meta).unwrap_or_default(),
    )
    .map_err(io_error(format!("writing {}", meta_path.display())))?;
    fs::set_permissions(&disk, fs::Permissions::from_mode(0o444))
        .map_err(io_error(format!("protecting {}", disk.display())))?;
    install(partial, cache_dir, &top.digest)?;
    let fetched = cached(cache_dir, &top.digest).ok_or_else(|| PullError::Io {
        what: format!("reading back the cached disk of {}", top.digest),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;
    Ok(CachedDisk {
        cache_hit: false,
        ..fetched
    })
}

/// The cached disk of `digest`, if the cache has a complete one.
fn cached(cache_dir: &Path, digest: &Digest) -> Option<CachedDisk> {
    let dir = cache_dir.join(digest.hex());
    let meta: Value = serde_json::from_slice(&fs::read(dir.join(META_FILE)).ok()?).ok()?;
    let path = dir.join(DISK_FILE);
    let size = meta.get("size")?.as_u64()?;
    if fs::metadata(&path).ok()?.len() != size || meta.get("digest")?.as_str()? != digest.as_str() {
        return None;
    }
    Some(CachedDisk {
        path,
        digest: digest.clone(),
        manifest: Digest::parse(meta.get("manifest")?.as_str()?).ok()?,
        layer: Digest::parse(meta.get("layer")?.as_str()?).ok()?,
        entry: meta.get("entry")?.as_str()?.to_owned(),
        size,
        cache_hit: true,
    })
}

/// Renames the finished temporary directory to `CACHE/<hex>`, replacing an
/// incomplete one; a complete one put there meanwhile (a parallel fetch)
/// is kept.
fn install(partial: tempfile::TempDir, cache_dir: &Path, digest: &Digest) -> Result<(), PullError> {
    let target = cache_dir.join(digest.hex());
    if let Ok(file) = File::open(partial.path().join(DISK_FILE)) {
        let _ = file.sync_all();
    }
    for _ in 0..3 {
        match fs::rename(partial.path(), &target) {
            Ok(()) => {
                // The directory now has its final name: not to be deleted.
                let _ = partial.keep();
                if let Ok(dir) = File::open(cache_dir) {
                    let _ = dir.sync_all();
                }
                return Ok(());
            }
            Err(_) if cached(cache_dir, digest).is_some() => return Ok(()),
            Err(_) if target.exists() => {
                // An incomplete entry (from before a crash): set it aside.
                let stale = tempfile::Builder::new()
                    .prefix(".stale-")
                    .tempdir_in(cache_dir)
                    .map_err(io_error(format!(
                        "creating a temporary directory in {}",
                        cache_dir.display()
                    )))?;
                let _ = fs::rename(&target, stale.path().join("old"));
                let _ = fs::remove_dir_all(stale.path().join("old"));
            }
            Err(error) => {
                return Err(PullError::Io {
                    what: format!("moving the disk into {}", target.display()),
                    source: error,
                });
            }
        }
    }
    Err(PullError::Io {
        what: format!("moving the disk into {}", target.display()),
        source: io::Error::from(io::ErrorKind::AlreadyExists),
    })
}

/// A manifest's media type, bytes and (checked) digest.
#[derive(Debug, Clone)]
struct Fetched {
    media_type: String,
    bytes: Vec<u8>,
    digest: Digest,
}

/// Where manifests and blobs come from.
enum Store {
    Registry {
        registry: Box<Registry>,
        repository: String,
    },
    Layout {
        dir: PathBuf,
    },
}

impl Store {
    fn open(source: &DiskSource, options: &FetchOptions) -> Result<Store, PullError> {
        match source {
            DiskSource::Registry {
                registry,
                repository,
                credentials,
                insecure,
                ..
            } => {
                let options = RegistryOptions {
                    credentials: credentials.clone(),
                    insecure: *insecure,
                    ..options.registry.clone()
                };
                Ok(Store::Registry {
                    registry: Box::new(Registry::new(registry, options)?),
                    repository: repository.clone(),
                })
            }
            DiskSource::Layout { dir, .. } => Ok(Store::Layout { dir: dir.clone() }),
        }
    }

    fn manifest(&self, reference: &ImageRef) -> Result<Fetched, PullError> {
        match self {
            Store::Registry {
                registry,
                repository,
            } => {
                let (media_type, bytes, digest) =
                    registry.pull_manifest(repository, reference.as_str(), &[])?;
                Ok(Fetched {
                    media_type,
                    bytes,
                    digest,
                })
            }
            Store::Layout { dir } => layout_manifest(dir, reference),
        }
    }

    /// Streams blob `digest` of `size` bytes into `out`, checking both.
    fn blob(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<(), PullError> {
        match self {
            Store::Registry {
                registry,
                repository,
            } => {
                let got = registry.pull_blob(repository, digest, out, progress)?;
                if got != size {
                    return Err(RegistryError::Protocol {
                        registry: registry.name().to_owned(),
                        message: format!(
                            "sent {got} bytes for blob {digest}, the manifest says {size}"
                        ),
                    }
                    .into());
                }
                Ok(())
            }
            Store::Layout { dir } => layout_blob(dir, digest, size, out, progress),
        }
    }
}

fn layout_error(dir: &Path, reason: String) -> PullError {
    PullError::Layout {
        dir: dir.to_owned(),
        reason,
    }
}

/// A manifest of a layout, by reference name (in `index.json`) or digest.
fn layout_manifest(dir: &Path, reference: &ImageRef) -> Result<Fetched, PullError> {
    let (digest, declared_type) = match reference {
        ImageRef::Digest(digest) => (digest.clone(), None),
        ImageRef::Tag(name) => {
            let index_path = dir.join("index.json");
            let index = read_bounded(&index_path, MANIFEST_MAX)
                .map_err(|e| layout_error(dir, format!("cannot read index.json: {e}")))?;
            let index: Value = serde_json::from_slice(&index)
                .map_err(|e| layout_error(dir, format!("index.json is not JSON: {e}")))?;
            let entries = index
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| layout_error(dir, "index.json has no manifests list".into()))?;
            let entry = entries
                .iter()
                .find(|m| m["annotations"][REF_NAME].as_str() == Some(name))
                .ok_or_else(|| {
                    layout_error(dir, format!("no image named {name:?} in index.json"))
                })?;
            let digest = entry
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| {
                    layout_error(dir, format!("the entry of {name:?} has no valid digest"))
                })?;
            let media_type = entry
                .get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (digest, media_type)
        }
    };
    let path = blob_path(dir, &digest);
    let bytes = read_bounded(&path, MANIFEST_MAX)
        .map_err(|e| layout_error(dir, format!("cannot read manifest {digest}: {e}")))?;
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(layout_error(
            dir,
            format!("blob {digest} holds content of digest {actual}"),
        ));
    }
    let media_type = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|json| json.get("mediaType")?.as_str().map(str::to_owned))
        .or(declared_type)
        .unwrap_or_default();
    Ok(Fetched {
        media_type,
        bytes,
        digest,
    })
}

fn layout_blob(
    dir: &Path,
    digest: &Digest,
    size: u64,
    out: &mut dyn Write,
    progress: &mut dyn PushProgress,
) -> Result<(), PullError> {
    let path = blob_path(dir, digest);
    let mut file = File::open(&path)
        .map_err(|e| layout_error(dir, format!("cannot read blob {digest}: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| layout_error(dir, format!("cannot read blob {digest}: {e}")))?
        .len();
    if len != size {
        return Err(layout_error(
            dir,
            format!("blob {digest} has {len} bytes, the manifest says {size}"),
        ));
    }
    progress.start(size);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; BUFFER];
    let mut done = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(layout_error(dir, format!("reading blob {digest}: {e}"))),
        };
        done += n as u64;
        if done > size {
            return Err(layout_error(dir, format!("blob {digest} grew while read")));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io_error(format!("passing on blob {digest}")))?;
        progress.advance(n as u64);
    }
    let actual = hasher.finish();
    if actual != *digest || done != size {
        return Err(layout_error(
            dir,
            format!("blob {digest} holds content of digest {actual} ({done} bytes)"),
        ));
    }
    Ok(())
}

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

/// The image manifest `top` stands for: itself, or the `linux/amd64` entry
/// of an index.
fn resolve(store: &Store, image: &str, top: Fetched) -> Result<Fetched, PullError> {
    let refuse = |reason: String| PullError::Manifest {
        image: image.to_owned(),
        reason,
    };
    let json = parse_manifest(&top, image)?;
    match top.media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(top),
        OCI_INDEX | DOCKER_LIST => {
            let entries = json
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| refuse("an index without a manifests list".into()))?;
            let platform = |m: &Value| {
                let p = &m["platform"];
                (
                    p["os"].as_str().unwrap_or("?").to_owned(),
                    p["architecture"].as_str().unwrap_or("?").to_owned(),
                )
            };
            let amd64 = entries
                .iter()
                .find(|m| platform(m) == ("linux".into(), "amd64".into()));
            let chosen = match amd64 {
                Some(entry) => entry,
                // A layout's index of one image often names no platform.
                None if entries.len() == 1 && entries[0].get("platform").is_none() => &entries[0],
                None => {
                    let found: Vec<String> = entries
                        .iter()
                        .map(|m| {
                            let (os, arch) = platform(m);
                            format!("{os}/{arch}")
                        })
                        .collect();
                    return Err(refuse(format!(
                        "no linux/amd64 image in the index (it has: {})",
                        found.join(", ")
                    )));
                }
            };
            let digest = chosen
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| refuse("an index entry without a valid digest".into()))?;
            let child = store.manifest(&ImageRef::Digest(digest.clone()))?;
            if child.digest != digest {
                return Err(refuse(format!(
                    "index entry {digest} resolved to {}",
                    child.digest
                )));
            }
            parse_manifest(&child, image)?;
            match child.media_type.as_str() {
                OCI_MANIFEST | DOCKER_MANIFEST => Ok(child),
                other => Err(refuse(format!(
                    "the linux/amd64 entry of the index is a {other:?}, not an image manifest"
                ))),
            }
        }
        other => Err(refuse(format!(
            "unsupported manifest type {other:?} (expected an OCI or Docker schema 2 \
             manifest or index)"
        ))),
    }
}

fn parse_manifest(fetched: &Fetched, image: &str) -> Result<Value, PullError> {
    let refuse = |reason: String| PullError::Manifest {
        image: image.to_owned(),
        reason: format!("manifest {}: {reason}", fetched.digest),
    };
    let json: Value =
        serde_json::from_slice(&fetched.bytes).map_err(|e| refuse(format!("not JSON: {e}")))?;
    if json.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(refuse("schemaVersion is not 2".into()));
    }
    if let Some(declared) = json.get("mediaType").and_then(Value::as_str)
        && declared != fetched.media_type
    {
        return Err(refuse(format!(
            "says it is a {declared:?} but was served as {:?}",
            fetched.media_type
        )));
    }
    Ok(json)
}

/// A layer descriptor.
#[derive(Debug, Clone)]
struct LayerRef {
    media_type: String,
    digest: Digest,
    size: u64,
}

fn layers_of(image: &str, manifest: &[u8]) -> Result<Vec<LayerRef>, PullError> {
    let refuse = |reason: String| PullError::Manifest {
        image: image.to_owned(),
        reason,
    };
    let json: Value =
        serde_json::from_slice(manifest).map_err(|e| refuse(format!("not JSON: {e}")))?;
    let layers = json
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("the manifest has no layers list".into()))?;
    if layers.is_empty() {
        return Err(refuse("the manifest has no layers".into()));
    }
    layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let digest = layer
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .ok_or_else(|| refuse(format!("layer {i} has no valid digest")))?;
            let size = layer
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| refuse(format!("layer {i} has no size")))?;
            let media_type = layer
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Ok(LayerRef {
                media_type,
                digest,
                size,
            })
        })
        .collect()
}

/// How streaming a layer ended badly.
enum Streamed {
    /// The layer's content is refused.
    Refused(String),
    /// Fetching or writing failed.
    Failed(PullError),
}

/// Streams `layer` from `store` through the tar scanner; returns the disk's
/// entry name and size when the layer has one (written to `disk`).
fn stream_layer(
    store: &Store,
    layer: &LayerRef,
    disk: &Path,
    options: &FetchOptions,
    progress: &mut dyn PushProgress,
) -> Result<Option<(String, u64)>, Streamed> {
    // A tar of the largest disk, its headers and some other files.
    let max_layer = options.max_disk_size.saturating_add(1 << 30);
    if layer.size > max_layer {
        return Err(Streamed::Refused(format!(
            "{} bytes, more than a disk of at most {} bytes needs",
            layer.size, options.max_disk_size
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
        let scanner = scope.spawn(|| scan_layer(reader, disk, options.max_disk_size));
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

/// Reads a layer (plain or gzip tar) to its end; writes the first regular
/// file directly in `disk/` to `disk`.
fn scan_layer(
    reader: io::PipeReader,
    disk: &Path,
    max_disk_size: u64,
) -> Result<Option<(String, u64)>, Streamed> {
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
) -> Result<Option<(String, u64)>, Streamed> {
    let refused = |reason: String| Streamed::Refused(reason);
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| refused(format!("not a tar archive: {e}")))?;
    let mut found = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| refused(format!("not a valid tar archive: {e}")))?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let components =
            check_path(&raw_path).map_err(|reason| refused(format!("{shown:?}: {reason}")))?;
        let Some((first, rest)) = components.split_first() else {
            continue; // `.` or `./`
        };
        if *first != DISK_DIR.as_bytes() {
            continue; // never written anywhere
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                return Err(refused(format!(
                    "{shown:?} is a link (to {target:?}), not a disk file"
                )));
            }
            other if other.is_pax_global_extensions() || other.is_pax_local_extensions() => {
                continue;
            }
            other => {
                return Err(refused(format!(
                    "{shown:?} is a {}, not a disk file",
                    kind_name(other)
                )));
            }
        }
        // The disk is a file directly in disk/, not a whiteout.
        if rest.len() != 1 || rest[0].starts_with(b".wh.") || found.is_some() {
            continue;
        }
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
        found = Some((components_to_string(&components), size));
    }
    Ok(found)
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

    #[test]
    fn sources_parse() {
        let digest = Digest::of(b"x");
        let layout = DiskSource::parse("oci:/var/lib/layout:1234-abcd").unwrap();
        assert!(matches!(
            &layout,
            DiskSource::Layout { dir, reference: ImageRef::Tag(name) }
                if dir == Path::new("/var/lib/layout") && name == "1234-abcd"
        ));
        assert_eq!(layout.to_string(), "oci:/var/lib/layout:1234-abcd");
        let by_digest = DiskSource::parse(&format!("oci:/l@{digest}")).unwrap();
        assert!(matches!(
            by_digest,
            DiskSource::Layout { reference: ImageRef::Digest(ref d), .. } if *d == digest
        ));
        assert!(DiskSource::parse("oci:/no/reference").is_err());
        let registry = DiskSource::parse("localhost:5000/olive/x:v1").unwrap();
        assert_eq!(registry.to_string(), "localhost:5000/olive/x:v1");
        let pinned = DiskSource::parse(&format!("localhost:5000/olive/x:v1@{digest}")).unwrap();
        assert_eq!(
            pinned.to_string(),
            format!("localhost:5000/olive/x@{digest}")
        );
        assert!(DiskSource::parse("ubuntu").is_err());

        let from_values = DiskSource::from_chart_values(
            "registry.example.org/olive2022",
            "uuid-1",
            Some("vmnetx"),
            Some(digest.as_str()),
            None,
        )
        .unwrap();
        assert_eq!(
            from_values.to_string(),
            format!("registry.example.org/olive2022/uuid-1@{digest}")
        );
        let tagged =
            DiskSource::from_chart_values("localhost:5000/o", "u", Some("t"), None, None).unwrap();
        assert_eq!(tagged.to_string(), "localhost:5000/o/u:t");
        let layout =
            DiskSource::from_chart_values("oci:/srv/layout", "uuid-1", None, None, None).unwrap();
        assert_eq!(layout.to_string(), "oci:/srv/layout:uuid-1");
        assert!(
            DiskSource::from_chart_values("localhost:5000/o", "u", None, Some("sha256:1"), None)
                .is_err()
        );
    }
}
