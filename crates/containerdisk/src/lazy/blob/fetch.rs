//! The workers that fill a [`SparseBlob`]: two demand workers taking the
//! queue of ranges readers wait for, and the background download of the
//! rest; each range is one ranged `GET`, written into the file and marked
//! present piece by piece.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::SparseBlob;

/// The largest range one demand `GET` asks for.
const MAX_DEMAND_FETCH: u64 = 8 << 20;
/// The longest pause between two attempts at a failing fetch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl SparseBlob {
    /// A demand worker: takes queued ranges until cancelled.
    pub(super) fn serve_demand(&self) {
        let mut failures = 0u32;
        while let Some((start, end)) = self.next_demand() {
            self.demand_busy.fetch_add(1, Ordering::SeqCst);
            let fetched = self.fetch(start, end, true);
            self.demand_busy.fetch_sub(1, Ordering::SeqCst);
            if let Err((done_to, _)) = fetched {
                // What is still missing goes back to the front.
                self.lock().queue.push_front((done_to, end));
                failures += 1;
                self.pause(failures);
            } else {
                failures = 0;
            }
        }
    }

    /// The next demand range, coalesced with the queued ones that follow
    /// it closely; `None` once cancelled.
    fn next_demand(&self) -> Option<(u64, u64)> {
        let mut shared = self.lock();
        loop {
            if self.cancelled.load(Ordering::Relaxed) {
                return None;
            }
            while let Some((start, end)) = shared.queue.pop_front() {
                let Some((start, mut end)) = shared.present.first_gap(start, end) else {
                    continue;
                };
                while let Some(&(next_start, next_end)) = shared.queue.front() {
                    let close = next_start >= end && next_start - end <= self.options.granule;
                    if !close || next_end - start > MAX_DEMAND_FETCH {
                        break;
                    }
                    end = next_end;
                    shared.queue.pop_front();
                }
                return Some((start, end));
            }
            shared = self
                .changed
                .wait_timeout(shared, Duration::from_millis(500))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// The background worker's loop: fetches the rest of the blob front
    /// to back; returns whether the blob is complete (false: cancelled).
    pub(crate) fn download_rest(&self) -> bool {
        let mut cursor = 0;
        let mut failures = 0u32;
        loop {
            if self.cancelled.load(Ordering::Relaxed) {
                return false;
            }
            let gap = {
                let shared = self.lock();
                shared
                    .present
                    .first_gap(cursor, self.origin.size)
                    .or_else(|| shared.present.first_gap(0, self.origin.size))
            };
            let Some((start, gap_end)) = gap else {
                return true;
            };
            let end = gap_end.min(start.saturating_add(self.options.chunk.max(1)));
            match self.fetch(start, end, false) {
                Ok(()) => {
                    cursor = end;
                    failures = 0;
                }
                Err((done_to, _)) => {
                    cursor = done_to;
                    failures += 1;
                    self.pause(failures);
                }
            }
        }
    }

    /// One ranged GET of `[start, end)`, written into the file and marked
    /// present piece by piece; on failure, how far it got and why.
    fn fetch(&self, start: u64, end: u64, demand: bool) -> Result<(), (u64, String)> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut position = start;
        let origin = &self.origin;
        let result = origin.registry.read_blob_range(
            &origin.repository,
            &origin.digest,
            origin.size,
            (start, end),
            &mut |piece| {
                if self.cancelled.load(Ordering::Relaxed) {
                    return Err(std::io::Error::other("cancelled"));
                }
                if !demand {
                    self.yield_to_demand();
                }
                self.file.write_all_at(piece, position)?;
                self.fetched
                    .fetch_add(piece.len() as u64, Ordering::Relaxed);
                let piece_end = position + piece.len() as u64;
                self.lock().present.insert(position, piece_end);
                position = piece_end;
                self.changed.notify_all();
                Ok(())
            },
        );
        let mut shared = self.lock();
        match result {
            Ok(()) => {
                if shared.failure.take().is_some() {
                    tracing::info!(blob = %origin.digest, "the registry answers again");
                }
                Ok(())
            }
            Err(error) => {
                let reason = error.to_string();
                if shared.failure.is_none() && !self.cancelled.load(Ordering::Relaxed) {
                    tracing::warn!(blob = %origin.digest, error = %reason, "a range of the lazy download failed; retrying");
                }
                shared.failure = Some(reason.clone());
                self.changed.notify_all();
                Err((position, reason))
            }
        }
    }

    /// Holds the background download while demand fetches run (bounded, so
    /// its connection never idles into a timeout).
    fn yield_to_demand(&self) {
        let since = Instant::now();
        while self.demand_busy.load(Ordering::SeqCst) > 0
            && since.elapsed() < Duration::from_secs(10)
            && !self.cancelled.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits before the next attempt: 250 ms doubling up to [`MAX_BACKOFF`].
    fn pause(&self, failures: u32) {
        let delay = Duration::from_millis(250)
            .saturating_mul(1 << failures.min(4))
            .min(MAX_BACKOFF);
        let shared = self.lock();
        // Woken early by a cancel.
        let _ = self.changed.wait_timeout(shared, delay);
    }
}
