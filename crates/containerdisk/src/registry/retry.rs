//! When to try a request again, and when to give up.
//!
//! Uploads, downloads and manifest requests share one policy: an error
//! worth a retry ([`RegistryError::is_retryable`]) is followed by a pause
//! that doubles from [`RegistryOptions::backoff`] up to
//! [`RegistryOptions::max_backoff`], and the request gives up after
//! [`RegistryOptions::max_retries`] failures in a row. A transfer that
//! stores or receives new bytes resets the count, so a long one over a
//! flaky link still completes. The blob download runs the same policy in
//! the `transfer` crate's loop ([`policy`], [`gave_up`]).

use transfer::Backoff;

use super::{PushProgress, RegistryError, RegistryOptions};

/// The policy of `options`, for a transfer that runs its own loop (the
/// blob download's [`transfer::ranged::RangedGet`]).
pub(super) fn policy(options: &RegistryOptions) -> transfer::Retries {
    let backoff = Backoff {
        first: options.backoff,
        max: options.max_backoff,
    };
    transfer::Retries::new(options.max_retries, backoff)
}

/// The error after `failures` failed attempts in a row, the last being
/// `last`: itself when there was no retry, else wrapped in
/// [`RegistryError::GaveUp`].
pub(super) fn gave_up(failures: u32, last: RegistryError) -> RegistryError {
    if failures <= 1 {
        last
    } else {
        RegistryError::GaveUp {
            attempts: failures,
            last: Box::new(last),
        }
    }
}

/// Pauses between retries and counts failures without progress.
pub(super) struct Retries {
    policy: transfer::Retries,
}

impl Retries {
    pub(super) fn new(options: &RegistryOptions) -> Self {
        Retries {
            policy: policy(options),
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
        match self.policy.failed() {
            Ok(attempt) => {
                progress.retry(attempt, &error);
                self.policy.pause();
                Ok(())
            }
            Err(failures) => Err(gave_up(failures, error)),
        }
    }

    pub(super) fn progressed(&mut self) {
        self.policy.progressed();
    }
}
