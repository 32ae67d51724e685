//! [`LazyDisk`]: the disk of an image being pulled lazily, as VMs read it,
//! and the background thread that completes, checks and installs it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::LazyOptions;
use super::blob::SparseBlob;
use super::finish::{EntryFacts, verify_and_install};
use super::locate::DiskSpan;
use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::pull::cache::{CachedDisk, Partial};

/// Where a lazy pull is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LazyState {
    /// Bytes are still coming.
    Downloading,
    /// All bytes are in; the digest is being checked.
    Verifying,
    /// Checked and installed: the cache entry.
    Complete(CachedDisk),
    /// Discarded: the reason (a digest mismatch, a refused layer).
    Failed(String),
}

/// A lazy pull's figures, for a deployment's status and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazyProgress {
    /// Where it is.
    pub state: LazyState,
    /// Bytes of the layer present locally.
    pub present: u64,
    /// The layer's size.
    pub total: u64,
    /// Bytes received from the registry, duplicates included.
    pub fetched: u64,
    /// Range requests sent to the registry.
    pub requests: u64,
    /// The last failure while the registry does not answer.
    pub registry_failure: Option<String>,
}

/// What reads go to.
enum Backing {
    /// The sparse copy, the disk at `span.offset`.
    Sparse(Arc<SparseBlob>),
    /// The installed cache entry's disk file.
    Installed(File, CachedDisk),
    /// Nothing: the copy failed (why).
    Failed(String),
}

/// The disk of an image being pulled lazily; many VMs may share it.
pub struct LazyDisk {
    image: String,
    /// The cache key: the digest the image's reference resolved to.
    key: Digest,
    layer: Descriptor,
    span: DiskSpan,
    options: LazyOptions,
    backing: Mutex<Backing>,
    verifying: std::sync::atomic::AtomicBool,
    started: Instant,
}

impl LazyDisk {
    pub(crate) fn new(
        image: String,
        key: Digest,
        layer: Descriptor,
        span: DiskSpan,
        options: LazyOptions,
        blob: Arc<SparseBlob>,
    ) -> LazyDisk {
        LazyDisk {
            image,
            key,
            layer,
            span,
            options,
            backing: Mutex::new(Backing::Sparse(blob)),
            verifying: std::sync::atomic::AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// The image, as its source names it.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The digest the image's reference resolved to (its cache key).
    pub fn key(&self) -> &Digest {
        &self.key
    }

    /// The layer being downloaded.
    pub fn layer(&self) -> &Digest {
        &self.layer.digest
    }

    /// The disk's size in bytes.
    pub fn size(&self) -> u64 {
        self.span.size
    }

    /// Fills `buf` with the disk's bytes at `offset`, waiting for missing
    /// ones at most [`LazyOptions::read_timeout`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.span.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "bytes {offset}..{end} lie beyond the disk's {}",
                    self.span.size
                ),
            ));
        }
        let blob = match &*self.lock() {
            Backing::Sparse(blob) => Arc::clone(blob),
            Backing::Installed(file, _) => return file.read_exact_at(buf, offset),
            Backing::Failed(reason) => return Err(std::io::Error::other(reason.clone())),
        };
        blob.read_at(self.span.offset + offset, buf, self.options.read_timeout)
    }

    /// Where the pull is, with its figures.
    pub fn progress(&self) -> LazyProgress {
        let total = self.layer.size;
        let (state, counters, failure) = match &*self.lock() {
            Backing::Sparse(blob) => {
                let state = if self.verifying.load(std::sync::atomic::Ordering::Relaxed) {
                    LazyState::Verifying
                } else {
                    LazyState::Downloading
                };
                (state, blob.counters(), blob.failure())
            }
            Backing::Installed(_, disk) => (LazyState::Complete(disk.clone()), (total, 0, 0), None),
            Backing::Failed(reason) => (LazyState::Failed(reason.clone()), (0, 0, 0), None),
        };
        let (present, fetched, requests) = counters;
        LazyProgress {
            state,
            present,
            total,
            fetched,
            requests,
            registry_failure: failure,
        }
    }

    /// Whether data flows: the registry answered the last request (or
    /// nothing more is needed from it).
    pub fn flowing(&self) -> bool {
        match &*self.lock() {
            Backing::Sparse(blob) => blob.flowing(),
            Backing::Installed(..) => true,
            Backing::Failed(_) => false,
        }
    }

    /// Waits until the pull is complete or failed, at most `timeout`;
    /// returns where it is.
    pub fn wait(&self, timeout: Duration) -> LazyState {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.progress().state;
            let settled = matches!(state, LazyState::Complete(_) | LazyState::Failed(_));
            if settled || Instant::now() >= deadline {
                return state;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs on the background thread: downloads the rest, then checks and
    /// installs the layer. Returns how long the pull took from its start
    /// to the installed entry, or the reason the copy was discarded.
    pub(crate) fn complete(
        &self,
        blob: &SparseBlob,
        partial: Partial,
        facts: &EntryFacts,
        max_disk_size: u64,
    ) -> Result<Duration, String> {
        if !blob.download_rest() {
            self.fail("the download was cancelled".into());
            return Err("the download was cancelled".into());
        }
        self.verifying
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (_, fetched, requests) = blob.counters();
        let downloaded = self.started.elapsed();
        let installed =
            verify_and_install(partial, &self.layer, facts, max_disk_size).and_then(|disk| {
                match File::open(&disk.path) {
                    Ok(file) => Ok((file, disk)),
                    Err(error) => Err(format!("reopening {}: {error}", disk.path.display())),
                }
            });
        blob.cancel();
        match installed {
            Ok((file, disk)) => {
                tracing::info!(
                    image = self.image,
                    layer = %self.layer.digest,
                    bytes = self.layer.size,
                    fetched_bytes = fetched,
                    requests,
                    seconds = downloaded.as_secs_f64(),
                    "lazy pull complete and verified; the disk is a cache entry"
                );
                *self.lock() = Backing::Installed(file, disk);
                Ok(self.started.elapsed())
            }
            Err(reason) => {
                tracing::error!(image = self.image, layer = %self.layer.digest, reason, "lazy pull discarded: the layer failed its check");
                self.fail(reason.clone());
                Err(reason)
            }
        }
    }

    fn fail(&self, reason: String) {
        *self.lock() = Backing::Failed(reason);
    }

    /// Stops the download (the cloudlet is stopping); reads fail from now.
    pub(crate) fn cancel(&self) {
        if let Backing::Sparse(blob) = &*self.lock() {
            blob.cancel();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Backing> {
        self.backing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
