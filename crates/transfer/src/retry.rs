//! [`Retries`]: when a failed transfer tries again, and when it gives up.
//!
//! A failure worth another attempt is followed by a pause that doubles from
//! a first one up to a ceiling ([`Backoff`]); the transfer gives up after a
//! number of failures in a row, and one that made progress since its last
//! failure starts counting again.

use std::time::Duration;

/// Pauses between attempts: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The pause before the first retry.
    pub first: Duration,
    /// The longest pause (never shorter than `first`).
    pub max: Duration,
}

impl Backoff {
    /// The pause before the `failures`-th retry in a row (counted from 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first
            .saturating_mul(1 << doublings)
            .min(self.max.max(self.first))
    }
}

/// Counts failures in a row and pauses between attempts.
#[derive(Debug, Clone)]
pub struct Retries {
    max_retries: u32,
    backoff: Backoff,
    failures: u32,
}

impl Retries {
    /// A policy that allows `max_retries` failures in a row (0: no retry).
    pub fn new(max_retries: u32, backoff: Backoff) -> Retries {
        Retries {
            max_retries,
            backoff,
            failures: 0,
        }
    }

    /// Records a failure worth a retry: `Ok(attempt)` when another attempt
    /// is due (after [`Self::pause`]), `Err(failures)` when the transfer
    /// must give up.
    pub fn failed(&mut self) -> Result<u32, u32> {
        self.failures = self.failures.saturating_add(1);
        if self.failures > self.max_retries {
            Err(self.failures)
        } else {
            Ok(self.failures)
        }
    }

    /// Sleeps before the next attempt, longer the more failures in a row.
    pub fn pause(&self) {
        std::thread::sleep(self.backoff.delay(self.failures));
    }

    /// The transfer made progress: failures count from zero again.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling() {
        let backoff = Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(8),
        };
        let delays: Vec<u64> = (1..=7)
            .map(|n| backoff.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        let odd = Backoff {
            first: Duration::from_secs(3),
            max: Duration::from_secs(1),
        };
        assert_eq!(odd.delay(4), Duration::from_secs(3));
    }

    #[test]
    fn failures_in_a_row_give_up_and_progress_resets_them() {
        let mut retries = Retries::new(
            2,
            Backoff {
                first: Duration::ZERO,
                max: Duration::ZERO,
            },
        );
        assert_eq!(retries.failed(), Ok(1));
        assert_eq!(retries.failed(), Ok(2));
        retries.progressed();
        assert_eq!(retries.failed(), Ok(1));
        assert_eq!(retries.failed(), Ok(2));
        assert_eq!(retries.failed(), Err(3));
    }
}
