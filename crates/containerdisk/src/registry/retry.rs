//! When to try a request again, and when to give up.
//!
//! Uploads, downloads and manifest requests share one policy: an error
//! worth a retry ([`RegistryError::is_retryable`]) is followed by a pause
//! that doubles from [`RegistryOptions::backoff`] up to
//! [`RegistryOptions::max_backoff`], and the request gives up after
//! [`RegistryOptions::max_retries`] failures in a row. A transfer that
//! stores or receives new bytes resets the count, so a long one over a
//! flaky link still completes.

use std::time::Duration;

use super::{PushProgress, RegistryError, RegistryOptions};

/// Pauses between retries and counts failures without progress.
pub(super) struct Retries<'a> {
    options: &'a RegistryOptions,
    failures: u32,
    pause: Duration,
}

impl<'a> Retries<'a> {
    pub(super) fn new(options: &'a RegistryOptions) -> Self {
        Retries {
            options,
            failures: 0,
            pause: options.backoff,
        }
    }

    /// Records a failure: `Ok` after pausing when another attempt is due,
    /// the error (wrapped when retries happened) when not.
    pub(super) fn failed(
        &mut self,
        error: RegistryError,
        progress: &mut dyn PushProgress,
    ) -> Result<(), RegistryError> {
        if !error.is_retryable() {
            return Err(error);
        }
        self.count(error, progress)
    }

    /// Like [`Self::failed`], for an error known to be worth a retry here.
    pub(super) fn count(
        &mut self,
        error: RegistryError,
        progress: &mut dyn PushProgress,
    ) -> Result<(), RegistryError> {
        self.failures += 1;
        if self.failures > self.options.max_retries {
            return Err(if self.failures == 1 {
                error
            } else {
                RegistryError::GaveUp {
                    attempts: self.failures,
                    last: Box::new(error),
                }
            });
        }
        progress.retry(self.failures, &error);
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(self.options.max_backoff.max(self.options.backoff));
        Ok(())
    }

    pub(super) fn progressed(&mut self) {
        self.failures = 0;
        self.pause = self.options.backoff;
    }
}
