//! What the caller of a pipeline sees: status lines, one progress meter per
//! phase, the question of a VM's name, and the way to cancel.
//!
//! The download and upload loops of `vmnetx` and `containerdisk` take their
//! own progress traits; the adapters here feed both from one
//! [`PhaseProgress`], so a caller implements progress once.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A phase of a pipeline that moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Downloading the package.
    Download,
    /// Compressing the disk (counted in bytes of the virtual disk).
    Compress,
    /// Hashing the compressed disk as a tar layer.
    Hash,
    /// Uploading the layer.
    Upload,
}

impl Phase {
    /// A short label for a progress bar.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Compress => "compress",
            Phase::Hash => "hash",
            Phase::Upload => "upload",
        }
    }
}

/// The progress of one phase.
pub trait PhaseProgress {
    /// The phase (re)starts at byte 0; `total` when known.
    fn start(&mut self, total: Option<u64>);
    /// `bytes` more are done.
    fn advance(&mut self, bytes: u64);
    /// The bytes done so far are `done` (for phases that report totals).
    fn set_position(&mut self, done: u64);
    /// A transfer failed with `error` and is retried (attempt `attempt`).
    fn retry(&mut self, attempt: u32, error: &dyn Display);
    /// The phase is over.
    fn finish(&mut self);
}

/// What a pipeline reports to, and asks of, its caller.
pub trait Observer {
    /// A status line: one step started or ended.
    fn status(&mut self, line: &str);
    /// A detail for the curious.
    fn detail(&mut self, line: &str);
    /// A progress meter for `phase`.
    fn progress(&mut self, phase: Phase) -> Box<dyn PhaseProgress>;
    /// A name for a VM whose package names none, when the caller can ask
    /// somebody; `None` means nobody can answer.
    fn ask_vm_name(&mut self) -> Option<String>;
}

/// Progress that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl PhaseProgress for NoProgress {
    fn start(&mut self, _total: Option<u64>) {}
    fn advance(&mut self, _bytes: u64) {}
    fn set_position(&mut self, _done: u64) {}
    fn retry(&mut self, _attempt: u32, _error: &dyn Display) {}
    fn finish(&mut self) {}
}

/// A [`PhaseProgress`] seen through the download and upload traits of the
/// rooms below, with the caller's cancellation flag.
pub(crate) struct Transfer<'a> {
    pub(crate) progress: &'a mut dyn PhaseProgress,
    pub(crate) cancel: &'a Arc<AtomicBool>,
}

/// One progress trait serves downloads and registry transfers alike
/// (`transfer::Progress`, re-exported by `vmnetx` and `containerdisk`).
impl vmnetx::fetch::Progress for Transfer<'_> {
    fn start(&mut self, total: Option<u64>) {
        self.progress.start(total);
    }

    fn advance(&mut self, bytes: u64) {
        self.progress.advance(bytes);
    }

    fn retry(&mut self, attempt: u32, error: &dyn std::error::Error) {
        self.progress.retry(attempt, &error);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}
