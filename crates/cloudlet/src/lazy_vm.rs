//! A VM that runs ahead of its disk's download (a lazy pull,
//! `containerdisk::lazy`): the disk served to QEMU from the range cache,
//! and the watch that keeps the VM in step with the download.
//!
//! QEMU reads the disk over NBD (`vmrunner::nbd`) with `rerror=stop`: a
//! read whose bytes do not arrive in time pauses the guest (`io-error`)
//! instead of failing inside it. The watch, one thread per such VM, looks
//! twice a second: a paused guest is resumed (`cont`, which retries the
//! read) as soon as the registry answers again; a download that fails its
//! digest check stops the VM, and the reason waits for the client's next
//! deploy. The watch ends once the layer is a verified cache entry (reads
//! can no longer fail) or the VM stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerdisk::lazy::{LazyDisk, LazyState};
use sinfonia::deployment::DiskProgress;
use vmrunner::RunningVm;
use vmrunner::nbd::BlockSource;

/// How often the watch looks at the VM and the download.
const WATCH_PERIOD: Duration = Duration::from_millis(500);

/// A lazily pulled disk as QEMU's NBD export.
pub(crate) struct ServedLayer(pub(crate) Arc<LazyDisk>);

impl BlockSource for ServedLayer {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read_at(offset, buf)
    }
}

/// The watch over one VM and its download.
pub(crate) struct LazyWatch {
    disk: Arc<LazyDisk>,
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
}

impl LazyWatch {
    /// Starts watching `vm` (deployment `deployment`) run from `disk`.
    pub(crate) fn start(
        deployment: &str,
        disk: Arc<LazyDisk>,
        vm: Arc<Mutex<RunningVm>>,
    ) -> std::io::Result<LazyWatch> {
        let watch = LazyWatch {
            disk: Arc::clone(&disk),
            stop: Arc::default(),
            failure: Arc::default(),
        };
        let watcher = Watcher {
            deployment: deployment.to_owned(),
            disk,
            vm,
            stop: Arc::clone(&watch.stop),
            failure: Arc::clone(&watch.failure),
        };
        std::thread::Builder::new()
            .name("lazy-watch".into())
            .spawn(move || watcher.run())?;
        Ok(watch)
    }

    /// Ends the watch (the VM is being stopped).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The disk it watches.
    pub(crate) fn disk(&self) -> &LazyDisk {
        &self.disk
    }

    /// Why the VM was stopped under its client, if it was.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// The download's progress, as the deploy answer shows it.
    pub(crate) fn progress(&self) -> DiskProgress {
        let progress = self.disk.progress();
        let (state, error) = match progress.state {
            LazyState::Downloading => ("downloading", progress.registry_failure),
            LazyState::Verifying => ("verifying", None),
            LazyState::Complete(_) => ("complete", None),
            LazyState::Failed(reason) => ("failed", Some(reason)),
        };
        let complete = state == "complete";
        DiskProgress {
            state: state.to_owned(),
            bytes: if complete {
                progress.total
            } else {
                progress.present
            },
            total: progress.total,
            error,
        }
    }
}

/// The watch's thread.
struct Watcher {
    deployment: String,
    disk: Arc<LazyDisk>,
    vm: Arc<Mutex<RunningVm>>,
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
}

impl Watcher {
    fn run(self) {
        let deployment = self.deployment.as_str();
        let mut paused_since = None;
        while !self.stop.load(Ordering::SeqCst) {
            let state = self.disk.progress().state;
            if let LazyState::Failed(reason) = state {
                tracing::error!(
                    deployment,
                    reason,
                    "stopping the VM: its disk failed its check"
                );
                *lock(&self.failure) = Some(reason);
                let _ = lock(&self.vm).stop();
                return;
            }
            let Ok(run_state) = lock(&self.vm).run_state() else {
                return; // stopped
            };
            let paused = run_state == "io-error";
            if paused && paused_since.is_none() {
                paused_since = Some(std::time::Instant::now());
                tracing::warn!(
                    deployment,
                    registry_error = self.disk.progress().registry_failure,
                    "VM paused: its disk's bytes are not arriving"
                );
            }
            if paused && self.disk.flowing() && lock(&self.vm).resume().is_ok() {
                let paused_seconds = paused_since
                    .take()
                    .map(|since| since.elapsed().as_secs_f64());
                tracing::info!(
                    deployment,
                    paused_seconds,
                    "VM resumed: its disk's bytes flow again"
                );
            }
            if matches!(state, LazyState::Complete(_)) && !paused {
                return;
            }
            std::thread::sleep(WATCH_PERIOD);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
