//! Deploy requests per client address, bounded: each address has a token
//! bucket of `per_minute` tokens that refills continuously; a request with
//! no token left gets a 429 with `Retry-After`.
//!
//! A deploy request can pull an image and start a VM, so one address must
//! not be able to keep the cloudlet busy (a client asks once per launch,
//! and again only to renew its lease). The buckets of addresses that have
//! been quiet long enough to be full again are forgotten, so memory stays
//! bounded by the addresses seen within a minute, capped at
//! [`MAX_TRACKED`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses tracked at once; beyond, the fullest buckets go
/// first.
pub const MAX_TRACKED: usize = 10_000;

/// Token buckets by client address.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute` requests a minute per address, in bursts of as many;
    /// 0 means no limit.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `address` at `now`, or says how long until one is
    /// there.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&address) {
            forget_full(&mut buckets, now, per_second, capacity);
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// Drops the buckets that have refilled; if none has, the oldest half.
fn forget_full(
    buckets: &mut HashMap<IpAddr, Bucket>,
    now: Instant,
    per_second: f64,
    capacity: f64,
) {
    let refilled = |bucket: &Bucket| {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens + elapsed * per_second >= capacity
    };
    buckets.retain(|_, bucket| !refilled(bucket));
    if buckets.len() >= MAX_TRACKED {
        let mut ages: Vec<Instant> = buckets.values().map(|bucket| bucket.updated).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        buckets.retain(|_, bucket| bucket.updated > cutoff);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv4Addr;

    const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const BOB: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let limiter = RateLimiter::new(6);
        let start = Instant::now();
        for _ in 0..6 {
            assert!(limiter.check(ALICE, start).is_ok());
        }
        let wait = limiter.check(ALICE, start).unwrap_err();
        assert!((9.9..=10.1).contains(&wait.as_secs_f64()), "{wait:?}");
        // Another address has its own bucket.
        assert!(limiter.check(BOB, start).is_ok());
        // Ten seconds later, one more.
        let later = start + Duration::from_secs(10);
        assert!(limiter.check(ALICE, later).is_ok());
        assert!(limiter.check(ALICE, later).is_err());
    }

    #[test]
    fn zero_means_no_limit_and_memory_stays_bounded() {
        let unlimited = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| unlimited.check(ALICE, now).is_ok()));
        let limiter = RateLimiter::new(60);
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limiter.check(address, now + Duration::from_millis(u64::from(i)));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_TRACKED);
    }
}
