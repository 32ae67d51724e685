//! The one time limit of a launch (`--timeout`), from the first request to
//! the viewer: every wait on the way takes what is left of it.

use std::time::{Duration, Instant};

/// When a launch must have its display, and how long it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    /// `total` from now.
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    /// The instant.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The time given in all, for messages ("within 3 s").
    pub fn total(&self) -> Duration {
        self.total
    }

    /// What is left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// `limit`, or what is left if that is shorter.
    pub fn cap(&self, limit: Duration) -> Duration {
        limit.min(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_left_shrinks_and_caps_other_limits() {
        let deadline = Deadline::after(Duration::from_secs(3));
        assert!(deadline.remaining() <= Duration::from_secs(3));
        assert_eq!(deadline.total(), Duration::from_secs(3));
        assert_eq!(
            deadline.cap(Duration::from_millis(10)),
            Duration::from_millis(10)
        );
        assert!(deadline.cap(Duration::from_secs(60)) <= Duration::from_secs(3));
        let passed = Deadline::after(Duration::ZERO);
        assert_eq!(passed.remaining(), Duration::ZERO);
    }
}
