//! [`LazyPool`]: the lazy pulls of one cache, shared by the VMs that start
//! from the same image, and the choice between a lazy and a full pull.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::blob::{BlobOrigin, SparseBlob};
use super::disk::LazyDisk;
use super::finish::{EntryFacts, sparse_path};
use super::locate::{Located, locate_disk};
use super::{LazyMode, LazyOptions};
use crate::digest::Digest;
use crate::manifest::{DOCKER_LAYER_TAR, Descriptor, OCI_LAYER_TAR};
use crate::pull::cache::{CachedDisk, Partial, cached};
use crate::pull::registry_store::RegistrySource;
use crate::pull::resolve::{layers, resolve};
use crate::pull::{DiskSource, FetchOptions, PullError, fetch_disk_with, open_registry};
use crate::registry::NoProgress;
use crate::source::{FetchedManifest, ImageRef, ImageSource};

/// How [`LazyPool::start`] made the disk available.
pub enum Started {
    /// Complete in the cache (it was, or a full pull put it there).
    Cached(CachedDisk),
    /// Being pulled lazily.
    Lazy(Arc<LazyDisk>),
}

/// One pull in progress per image, and the failures still to be told.
#[derive(Default)]
struct Pulls {
    /// Per cache key: the lazy disk while anyone holds it.
    disks: HashMap<Digest, Weak<LazyDisk>>,
    /// Per cache key: why its last lazy copy was discarded.
    discarded: HashMap<Digest, String>,
    /// How long each lazy pull completed since the last
    /// [`LazyPool::take_completed`] took, from start to verified entry.
    completed: Vec<Duration>,
}

/// The lazy pulls into one cache directory.
pub struct LazyPool {
    cache_dir: PathBuf,
    fetch: FetchOptions,
    options: LazyOptions,
    mode: LazyMode,
    pulls: Arc<Mutex<Pulls>>,
    /// One lock per image: two deploys of it share one pull, and a slow
    /// registry holds up no other image.
    starting: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
}

impl LazyPool {
    /// Pulls into `cache_dir` with `fetch` (registry options, disk bound),
    /// lazily when `mode` says so.
    pub fn new(
        cache_dir: &Path,
        fetch: FetchOptions,
        options: LazyOptions,
        mode: LazyMode,
    ) -> LazyPool {
        LazyPool {
            cache_dir: cache_dir.to_owned(),
            fetch,
            options,
            mode,
            pulls: Arc::default(),
            starting: Mutex::default(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> LazyMode {
        self.mode
    }

    /// Makes the disk of `source` available: from the cache, by a full
    /// pull, or lazily (see the module documentation for which).
    pub fn start(&self, source: &DiskSource) -> Result<Started, PullError> {
        if let ImageRef::Digest(digest) = source.reference()
            && let Some(hit) = cached(&self.cache_dir, digest)
        {
            return Ok(Started::Cached(hit));
        }
        if self.mode == LazyMode::Never || matches!(source, DiskSource::Layout { .. }) {
            return self.full(source);
        }
        let store =
            RegistrySource::new(open_registry(source, &self.fetch)?, &repository_of(source));
        let top = store.manifest(source.reference())?;
        let image_lock = Arc::clone(lock(&self.starting).entry(top.digest.clone()).or_default());
        let started = {
            let _one_start_per_image = lock(&image_lock);
            self.start_locked(source, &store, top.clone())
        };
        // The lock is dropped once nobody else waits on it, so the map
        // holds only images being started, not every image ever deployed.
        let mut starting = lock(&self.starting);
        if Arc::strong_count(&image_lock) == 2 {
            starting.remove(&top.digest);
        }
        started
    }

    /// [`LazyPool::start`] with the image's start lock held.
    fn start_locked(
        &self,
        source: &DiskSource,
        store: &RegistrySource,
        top: FetchedManifest,
    ) -> Result<Started, PullError> {
        let image = source.to_string();
        if let Some(hit) = cached(&self.cache_dir, &top.digest) {
            return Ok(Started::Cached(hit));
        }
        if let Some(reason) = lock(&self.pulls).discarded.remove(&top.digest) {
            return Err(PullError::Discarded { image, reason });
        }
        if let Some(disk) = self.shared(&top.digest) {
            tracing::info!(image, digest = %top.digest, "joining the lazy pull in progress");
            return Ok(Started::Lazy(disk));
        }
        let (manifest, image_manifest) = resolve(store, &image, top.clone())?;
        let layers = layers(&image, &image_manifest)?;
        let total: u64 = layers.iter().map(|layer| layer.size).sum();
        let plain = layers
            .iter()
            .all(|layer| [OCI_LAYER_TAR, DOCKER_LAYER_TAR].contains(&layer.media_type.as_str()));
        if !plain || (self.mode == LazyMode::Auto && total < self.options.threshold) {
            tracing::debug!(
                image,
                bytes = total,
                plain,
                "a full pull: nothing to gain lazily"
            );
            return self.full(source);
        }
        let facts = EntryFacts {
            digest: top.digest.clone(),
            manifest: manifest.digest,
            image: image.clone(),
        };
        for layer in layers {
            match self.try_layer(source, layer, &facts)? {
                Some(Started::Lazy(disk)) => {
                    lock(&self.pulls)
                        .disks
                        .insert(top.digest.clone(), Arc::downgrade(&disk));
                    return Ok(Started::Lazy(disk));
                }
                Some(cached) => return Ok(cached),
                None => continue,
            }
        }
        Err(PullError::NoDisk {
            image,
            reason: format!("no regular file in disk/ in its {} layer(s)", layers.len()),
        })
    }

    /// The lazy disk of `digest` still in use and not failed.
    fn shared(&self, digest: &Digest) -> Option<Arc<LazyDisk>> {
        let disk = lock(&self.pulls).disks.get(digest)?.upgrade()?;
        let failed = matches!(disk.progress().state, super::LazyState::Failed(_));
        (!failed).then_some(disk)
    }

    /// Starts a lazy pull of `layer` if it holds the disk (`None`: it has
    /// none). A layer whose disk cannot be read in place (a sparse tar
    /// entry) makes a full pull of the image instead, whose entry it
    /// returns.
    fn try_layer(
        &self,
        source: &DiskSource,
        layer: &Descriptor,
        facts: &EntryFacts,
    ) -> Result<Option<Started>, PullError> {
        let image = &facts.image;
        let partial = Partial::create(&self.cache_dir)?;
        let path = sparse_path(&partial, &layer.digest);
        let file = create_sparse(&path).map_err(crate::pull_error::io_error(format!(
            "creating {}",
            path.display()
        )))?;
        let origin = BlobOrigin {
            registry: open_registry(source, &self.fetch)?,
            repository: repository_of(source),
            digest: layer.digest.clone(),
            size: layer.size,
        };
        let blob = SparseBlob::start(origin, file, self.options.clone())
            .map_err(crate::pull_error::io_error("starting the lazy download"))?;
        let located = locate_disk(&blob, self.fetch.max_disk_size, self.options.start_timeout);
        if !matches!(located, Located::Found(_)) {
            blob.cancel();
        }
        let span = match located {
            Located::Found(span) => span,
            Located::NoDisk => return Ok(None),
            Located::Refused(reason) => {
                return Err(PullError::Layer {
                    image: image.clone(),
                    layer: layer.digest.clone(),
                    reason,
                });
            }
            Located::NotInPlace(reason) => {
                tracing::info!(
                    image,
                    reason,
                    "a full pull: the disk cannot be read in place"
                );
                return self.full(source).map(Some);
            }
            Located::Unreadable(error) => {
                return Err(PullError::Unreachable {
                    image: image.clone(),
                    waited: self.options.start_timeout,
                    reason: blob.failure().unwrap_or_else(|| error.to_string()),
                });
            }
        };
        tracing::info!(
            image,
            layer = %layer.digest,
            layer_bytes = layer.size,
            disk_offset = span.offset,
            disk_bytes = span.size,
            "lazy pull started: the VM may start before the download ends"
        );
        let disk = Arc::new(LazyDisk::new(
            image.clone(),
            facts.digest.clone(),
            layer.clone(),
            span,
            self.options.clone(),
            Arc::clone(&blob),
        ));
        self.spawn_completion(&disk, blob, partial, facts.clone())?;
        Ok(Some(Started::Lazy(disk)))
    }

    /// The background thread that completes, checks and installs the copy.
    fn spawn_completion(
        &self,
        disk: &Arc<LazyDisk>,
        blob: Arc<SparseBlob>,
        partial: Partial,
        facts: EntryFacts,
    ) -> Result<(), PullError> {
        let disk = Arc::clone(disk);
        let pulls = Arc::clone(&self.pulls);
        let max_disk_size = self.fetch.max_disk_size;
        std::thread::Builder::new()
            .name("lazy-download".into())
            .spawn(move || {
                let outcome = disk.complete(&blob, partial, &facts, max_disk_size);
                let mut pulls = lock(&pulls);
                match outcome {
                    Ok(took) => pulls.completed.push(took),
                    Err(reason) => {
                        pulls.discarded.insert(facts.digest.clone(), reason);
                    }
                }
                pulls.disks.remove(&facts.digest);
            })
            .map(drop)
            .map_err(crate::pull_error::io_error("starting the lazy download"))
    }

    /// Forgets why `disk`'s copy was discarded: the caller told a client
    /// (the deploy of a VM that ran on it), so the next start of the image
    /// tries again instead of saying it once more.
    pub fn reported(&self, disk: &LazyDisk) {
        lock(&self.pulls).discarded.remove(disk.key());
    }

    /// How long each lazy pull completed since the last call took, from
    /// its start to its verified cache entry (for a pull-time metric; a
    /// full pull's time is its caller's to measure).
    pub fn take_completed(&self) -> Vec<Duration> {
        std::mem::take(&mut lock(&self.pulls).completed)
    }

    /// The images whose start is under way or waited for (their start
    /// locks), for tests of the pool's bookkeeping.
    pub fn starts_in_progress(&self) -> usize {
        lock(&self.starting).len()
    }

    fn full(&self, source: &DiskSource) -> Result<Started, PullError> {
        fetch_disk_with(source, &self.cache_dir, &self.fetch, &mut NoProgress).map(Started::Cached)
    }

    /// Stops every lazy download (the cloudlet is stopping); their
    /// temporary copies are removed as their threads end.
    pub fn shutdown(&self) {
        let disks: Vec<Arc<LazyDisk>> = lock(&self.pulls)
            .disks
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for disk in disks {
            disk.cancel();
        }
    }
}

/// A new, empty file for the sparse copy (its directories made).
fn create_sparse(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

fn repository_of(source: &DiskSource) -> String {
    match source {
        DiskSource::Registry { repository, .. } => repository.clone(),
        DiskSource::Layout { .. } => String::new(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
