//! The disk cache, keyed by the digest a reference resolves to:
//! `CACHE/<digest hex>/` holds the disk ([`DISK_FILE`], read-only) and what
//! is known of its image ([`META_FILE`]).
//!
//! A disk is extracted into a [`Partial`] directory in the cache and renamed
//! into place only once complete and checked, so the cache never holds a
//! partial or unverified disk; an entry is complete when its metadata names
//! its digest and its disk has the size recorded.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::pull_error::{PullError, io_error};

/// The disk's file name in its cache directory.
pub const DISK_FILE: &str = "disk.qcow2";
/// What the cache keeps about the image, beside the disk.
pub const META_FILE: &str = "image.json";

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

/// The content of [`META_FILE`] (fields in the order of the file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheMeta {
    /// The cache key.
    pub digest: Digest,
    /// The disk's path in the layer.
    pub entry: String,
    /// The layer the disk came from.
    pub layer: Digest,
    /// The image manifest's digest.
    pub manifest: Digest,
    /// The disk's size in bytes.
    pub size: u64,
    /// The image, as the source names it (for people reading the cache).
    #[serde(default)]
    pub source: String,
}

/// The cached disk of `digest`, if the cache has a complete one.
pub(crate) fn cached(cache_dir: &Path, digest: &Digest) -> Option<CachedDisk> {
    let dir = cache_dir.join(digest.hex());
    let meta: CacheMeta = serde_json::from_slice(&fs::read(dir.join(META_FILE)).ok()?).ok()?;
    let path = dir.join(DISK_FILE);
    if fs::metadata(&path).ok()?.len() != meta.size || meta.digest != *digest {
        return None;
    }
    touch(&dir);
    Some(CachedDisk {
        path,
        digest: meta.digest,
        manifest: meta.manifest,
        layer: meta.layer,
        entry: meta.entry,
        size: meta.size,
        cache_hit: true,
    })
}

/// Marks an entry used now: its [`META_FILE`]'s modification time is its
/// last use, which eviction goes by.
pub(crate) fn touch(entry_dir: &Path) {
    if let Ok(file) = fs::OpenOptions::new()
        .write(true)
        .open(entry_dir.join(META_FILE))
    {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// The name prefix of [`Partial`] directories.
const PARTIAL_PREFIX: &str = ".partial-";

/// Removes the temporary directories pulls left in `cache_dir` when their
/// process was killed (call it before any pull starts); returns how many.
pub fn remove_partials(cache_dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(PARTIAL_PREFIX)
        })
        .filter(|entry| fs::remove_dir_all(entry.path()).is_ok())
        .count()
}

/// A temporary directory in the cache that a disk is extracted into;
/// removed unless installed.
pub(crate) struct Partial {
    dir: tempfile::TempDir,
    cache_dir: PathBuf,
}

impl Partial {
    /// A new temporary directory in `cache_dir` (created if missing).
    pub(crate) fn create(cache_dir: &Path) -> Result<Partial, PullError> {
        fs::create_dir_all(cache_dir).map_err(io_error(format!(
            "creating the cache {}",
            cache_dir.display()
        )))?;
        let dir = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .tempdir_in(cache_dir)
            .map_err(io_error(format!(
                "creating a temporary directory in {}",
                cache_dir.display()
            )))?;
        Ok(Partial {
            dir,
            cache_dir: cache_dir.to_owned(),
        })
    }

    /// The temporary directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the disk is to be written.
    pub(crate) fn disk(&self) -> PathBuf {
        self.dir.path().join(DISK_FILE)
    }

    /// Records `meta`, makes the disk read-only and moves the directory to
    /// its place; returns the cached disk.
    pub(crate) fn install(self, meta: &CacheMeta) -> Result<CachedDisk, PullError> {
        let meta_path = self.dir.path().join(META_FILE);
        fs::write(
            &meta_path,
            serde_json::to_vec_pretty(meta).unwrap_or_default(),
        )
        .map_err(io_error(format!("writing {}", meta_path.display())))?;
        let disk = self.disk();
        fs::set_permissions(&disk, fs::Permissions::from_mode(0o444))
            .map_err(io_error(format!("protecting {}", disk.display())))?;
        let cache_dir = self.cache_dir.clone();
        install(self.dir, &cache_dir, &meta.digest)?;
        let fetched = cached(&cache_dir, &meta.digest).ok_or_else(|| PullError::Io {
            what: format!("reading back the cached disk of {}", meta.digest),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        Ok(CachedDisk {
            cache_hit: false,
            ..fetched
        })
    }
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
