//! A layer blob copied lazily: a sparse local file the size of the blob,
//! the map of the ranges it holds, and the threads that fill it.
//!
//! - A read of bytes not present asks for them: the missing parts, widened
//!   to [`LazyOptions::granule`] boundaries, join the demand queue, and the
//!   read waits (at most [`LazyOptions::read_timeout`]) until they are in.
//! - Two demand workers take the queue in order, coalescing neighbouring
//!   requests up to `MAX_DEMAND_FETCH` (8 MiB), one ranged `GET` each, so a VM's
//!   reads are answered after one round trip.
//! - One background worker downloads the rest front to back in
//!   [`LazyOptions::chunk`]-sized ranged `GET`s, skipping what is present,
//!   and yields the link to the demand workers: while one of them is
//!   fetching, it stops reading its body (TCP then slows the sender), so a
//!   VM's read is never queued behind megabytes of background data.
//! - A failed fetch is retried with a capped backoff until the blob is
//!   complete or cancelled; the last failure is kept, so the caller can
//!   tell whether data flows ([`SparseBlob::flowing`]).
//!
//! Bytes are written where they belong in the file and are not checked
//! here: the whole blob's digest is checked once it is complete. This file
//! holds the copy and its readers; `fetch.rs` the workers that fill it.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod fetch;

use super::LazyOptions;
use super::ranges::Ranges;
use crate::digest::Digest;
use crate::registry::Registry;

/// How many demand workers run: two, so one round trip overlaps another.
const DEMAND_WORKERS: usize = 2;

/// Where the blob comes from.
pub(crate) struct BlobOrigin {
    /// The registry client (authentication, TLS, redirects).
    pub(crate) registry: Registry,
    /// The repository in it.
    pub(crate) repository: String,
    /// The blob.
    pub(crate) digest: Digest,
    /// Its size.
    pub(crate) size: u64,
}

/// What the workers and readers share, under one lock.
#[derive(Default)]
struct Shared {
    /// The ranges in the file.
    present: Ranges,
    /// Ranges ever asked for (no range is queued twice).
    asked: Ranges,
    /// Demand ranges not yet taken by a worker, oldest first.
    queue: VecDeque<(u64, u64)>,
    /// The last fetch's failure, `None` once a fetch succeeds again.
    failure: Option<String>,
}

/// A sparse copy of one blob, filled on demand and in the background.
pub(crate) struct SparseBlob {
    origin: BlobOrigin,
    file: File,
    options: LazyOptions,
    shared: Mutex<Shared>,
    changed: Condvar,
    cancelled: AtomicBool,
    /// Demand fetches running now; the background worker yields to them.
    demand_busy: AtomicUsize,
    /// Bytes received from the registry, duplicates included.
    fetched: AtomicU64,
    /// Range requests sent.
    requests: AtomicU64,
}

impl SparseBlob {
    /// A sparse copy of `origin` in `file` (set to the blob's size), with
    /// its demand workers running.
    pub(crate) fn start(
        origin: BlobOrigin,
        file: File,
        options: LazyOptions,
    ) -> std::io::Result<Arc<SparseBlob>> {
        file.set_len(origin.size)?;
        let blob = Arc::new(SparseBlob {
            origin,
            file,
            options,
            shared: Mutex::new(Shared::default()),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            demand_busy: AtomicUsize::new(0),
            fetched: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        for worker in 0..DEMAND_WORKERS {
            let blob = Arc::clone(&blob);
            std::thread::Builder::new()
                .name(format!("lazy-demand-{worker}"))
                .spawn(move || blob.serve_demand())?;
        }
        Ok(blob)
    }

    /// The blob's size.
    pub(crate) fn size(&self) -> u64 {
        self.origin.size
    }

    /// Fills `buf` from `offset`, fetching what is missing first; fails
    /// when the bytes have not arrived within `timeout`, or after
    /// [`SparseBlob::cancel`].
    pub(crate) fn read_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        timeout: Duration,
    ) -> std::io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        if end > self.origin.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "bytes {offset}..{end} lie beyond the blob's {}",
                    self.origin.size
                ),
            ));
        }
        let deadline = Instant::now() + timeout;
        let mut shared = self.lock();
        loop {
            if shared.present.covers(offset, end) {
                drop(shared);
                return self.file.read_exact_at(buf, offset);
            }
            if self.cancelled.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("the lazy download was cancelled"));
            }
            self.ask(&mut shared, offset, end);
            let now = Instant::now();
            if now >= deadline {
                let why = shared
                    .failure
                    .clone()
                    .unwrap_or_else(|| "still downloading".into());
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "bytes {offset}..{end} of blob {} did not arrive within {timeout:?}: {why}",
                        self.origin.digest
                    ),
                ));
            }
            shared = self
                .changed
                .wait_timeout(shared, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Queues the missing parts of `[start, end)`, widened to granules.
    fn ask(&self, shared: &mut Shared, start: u64, end: u64) {
        let granule = self.options.granule.max(1);
        let wide_start = start / granule * granule;
        let wide_end = end
            .div_ceil(granule)
            .saturating_mul(granule)
            .min(self.origin.size);
        let mut added = false;
        for (gap_start, gap_end) in shared.present.missing(wide_start, wide_end) {
            for (new_start, new_end) in shared.asked.missing(gap_start, gap_end) {
                shared.queue.push_back((new_start, new_end));
                added = true;
            }
            shared.asked.insert(gap_start, gap_end);
        }
        if added {
            self.changed.notify_all();
        }
    }

    /// Stops every worker; waiting reads fail.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        let _guard = self.lock();
        self.changed.notify_all();
    }

    /// Whether the last fetch succeeded (data flows from the registry).
    pub(crate) fn flowing(&self) -> bool {
        self.lock().failure.is_none()
    }

    /// The last failure, while the registry does not answer.
    pub(crate) fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Bytes present, bytes received (duplicates included), requests sent.
    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        (
            self.lock().present.total(),
            self.fetched.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
