//! What tier 1 tells Prometheus, the same in `olive2022 tier1`
//! (`olive2022_tier1_…`) and in a cloudlet playing tier 1 for others
//! (`olive2022_cloudlet_…`):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `…_forwards_total{outcome}` | counter | deploys sent on to a reported cloudlet: `deployed`, `refused` (it turned the request away: 4xx, 503 at capacity), `failed` (down, timed out, broken: it is skipped until it reports again) |
//! | `…_forward_seconds` | histogram | how long each forward took, whatever its outcome |
//! | `…_reports_total{outcome}` | counter | cloudlet reports and goodbyes: `accepted`, `goodbye`, `invalid`, `unauthorized`, `rate_limited`, `full` (the 64 known), `unknown` (a goodbye from a stranger) |
//! | `…_reported_cloudlets` | gauge | cloudlets whose reports are current |
//!
//! An operator sees from these whether the federation is healthy (reports
//! keep coming, forwards succeed) and how much a dead cloudlet cost.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::federation::forward::ForwardError;
use crate::problems::ApiError;

type Labels = Vec<(&'static str, &'static str)>;

/// Tier 1's metrics; clones count into the same series.
#[derive(Debug, Clone)]
pub struct FederationMetrics {
    forwards: Family<Labels, Counter>,
    forward_seconds: Histogram,
    reports: Family<Labels, Counter>,
    reported_cloudlets: Gauge,
}

impl Default for FederationMetrics {
    fn default() -> FederationMetrics {
        FederationMetrics {
            forwards: Family::default(),
            // 5 ms to about 20 s: a forward is an API call, or a VM start
            // on a cloudlet that must pull first (bounded by the forward
            // timeout).
            forward_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            reports: Family::default(),
            reported_cloudlets: Gauge::default(),
        }
    }
}

impl FederationMetrics {
    /// Adds these metrics to `registry` (under its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "forwards",
            "Deploys forwarded to reported cloudlets, by outcome",
            self.forwards.clone(),
        );
        registry.register(
            "forward_seconds",
            "Seconds each forwarded deploy took",
            self.forward_seconds.clone(),
        );
        registry.register(
            "reports",
            "Cloudlet reports and goodbyes, by outcome",
            self.reports.clone(),
        );
        registry.register(
            "reported_cloudlets",
            "Cloudlets whose reports are current",
            self.reported_cloudlets.clone(),
        );
    }

    /// Counts a forward that took `seconds`.
    pub fn forwarded<T>(&self, result: &Result<T, ForwardError>, seconds: f64) {
        let outcome = match result {
            Ok(_) => "deployed",
            Err(error) if error.is_fault() => "failed",
            Err(_) => "refused",
        };
        self.forwards
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
        self.forward_seconds.observe(seconds);
    }

    /// Counts a report (`goodbye`: a `DELETE`) by how it was answered.
    pub fn reported<T>(&self, result: &Result<T, ApiError>, goodbye: bool) {
        let outcome = match result {
            Ok(_) if goodbye => "goodbye",
            Ok(_) => "accepted",
            Err(ApiError::UnknownCloudlet(_)) => "unknown",
            Err(error) => match error.status().as_u16() {
                401 => "unauthorized",
                429 => "rate_limited",
                503 => "full",
                _ => "invalid",
            },
        };
        self.reports
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// Sets the number of cloudlets whose reports are current (at a
    /// scrape).
    pub fn set_reported_cloudlets(&self, count: usize) {
        self.reported_cloudlets
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_labelled() {
        let metrics = FederationMetrics::default();
        let mut registry = Registry::with_prefix("olive2022_tier1");
        metrics.register(&mut registry);
        metrics.forwarded::<()>(&Ok(()), 0.01);
        metrics.forwarded::<()>(&Err(ForwardError::Unreachable("refused".into())), 0.002);
        let busy = ForwardError::Status {
            status: 503,
            detail: "at capacity".into(),
        };
        metrics.forwarded::<()>(&Err(busy), 0.02);
        metrics.reported::<()>(&Ok(()), false);
        metrics.reported::<()>(&Ok(()), true);
        metrics.reported::<()>(&Err(ApiError::Unauthorized("no token")), false);
        metrics.set_reported_cloudlets(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        for line in [
            "olive2022_tier1_forwards_total{outcome=\"deployed\"} 1",
            "olive2022_tier1_forwards_total{outcome=\"failed\"} 1",
            "olive2022_tier1_forwards_total{outcome=\"refused\"} 1",
            "olive2022_tier1_forward_seconds_count 3",
            "olive2022_tier1_reports_total{outcome=\"accepted\"} 1",
            "olive2022_tier1_reports_total{outcome=\"goodbye\"} 1",
            "olive2022_tier1_reports_total{outcome=\"unauthorized\"} 1",
            "olive2022_tier1_reported_cloudlets 3",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
