//! [`Progress`]: what a transfer tells its caller as it goes (bytes done,
//! retries), and how the caller asks it to stop.

use std::error::Error;

/// Hears how a transfer goes (progress bars, Ctrl-C).
pub trait Progress {
    /// The transfer starts at byte 0, with this total size if known.
    ///
    /// A download calls it again if it has to start over from byte 0.
    fn start(&mut self, total: Option<u64>);
    /// This many more bytes are done (for uploads: stored by the server).
    fn advance(&mut self, bytes: u64);
    /// The other side already had the data: nothing to send.
    fn skipped(&mut self) {}
    /// The transfer failed with `error` and is retried after a pause;
    /// `attempt` counts the failures since it last made progress.
    fn retry(&mut self, attempt: u32, error: &dyn Error) {
        let _ = (attempt, error);
    }
    /// Whether the caller wants the transfer to stop (Ctrl-C).
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _total: Option<u64>) {}
    fn advance(&mut self, _bytes: u64) {}
}
