//! What the cloudlet tells Prometheus: `GET /metrics` in the OpenMetrics
//! text format (which Prometheus scrapes natively), through the
//! `prometheus-client` crate.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `olive2022_cloudlet_vms_running` | gauge | deployments whose VM runs |
//! | `olive2022_cloudlet_deploy_requests_total{outcome}` | counter | deploy requests by [`Outcome`] |
//! | `olive2022_cloudlet_tunnel_peers` | gauge | clients admitted on the WireGuard endpoint |
//! | `olive2022_cloudlet_tunnel_bytes_total{direction}` | counter | WireGuard bytes, `rx` and `tx` |
//! | `olive2022_cloudlet_image_cache_bytes` | gauge | bytes in the image cache |
//! | `olive2022_cloudlet_forwards_total{outcome}`, `…_forward_seconds`, `…_reports_total{outcome}`, `…_reported_cloudlets` | | the tier-1 role, for the cloudlets that report here ([`crate::federation::metrics`]) |
//! | `olive2022_cloudlet_pull_seconds` | histogram | time from a pull's start to its complete disk image (full pulls, and lazy ones when their download is verified; not cache hits) |
//!
//! The gauges and the tunnel's byte counts are read from the registry and
//! the backend ([`crate::Backend::stats`]) when Prometheus asks, so they
//! cost nothing between scrapes.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::backend::BackendStats;
use crate::federation::metrics::FederationMetrics;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a deploy request ended, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A deployment was started or found.
    Deployed,
    /// Refused: at capacity (503).
    AtCapacity,
    /// Refused: too many requests from the address (429).
    RateLimited,
    /// Refused: a bad UUID or key (400).
    BadRequest,
    /// No recipe for the UUID (404).
    UnknownRecipe,
    /// The recipe is unusable or asks for a VM that cannot run here.
    InvalidRecipe,
    /// The pull, the VM or the tunnel failed (500).
    Failed,
}

impl Outcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Deployed => "deployed",
            Outcome::AtCapacity => "at_capacity",
            Outcome::RateLimited => "rate_limited",
            Outcome::BadRequest => "bad_request",
            Outcome::UnknownRecipe => "unknown_recipe",
            Outcome::InvalidRecipe => "invalid_recipe",
            Outcome::Failed => "failed",
        }
    }
}

type Labels = Vec<(&'static str, &'static str)>;

/// The cloudlet's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    vms_running: Gauge,
    deploy_requests: Family<Labels, Counter>,
    tunnel_peers: Gauge,
    tunnel_bytes: Family<Labels, Counter>,
    image_cache_bytes: Gauge,
    pull_seconds: Histogram,
    /// The backend's byte totals at the last scrape: counters only go up by
    /// the difference.
    reported_bytes: Mutex<(u64, u64)>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        Metrics::with_federation(&FederationMetrics::default())
    }

    /// Every metric registered, at zero, with those of the tier-1 role
    /// (which its [`crate::federation::Federation`] counts).
    pub fn with_federation(federation: &FederationMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("olive2022_cloudlet");
        federation.register(&mut registry);
        let vms_running = Gauge::default();
        registry.register(
            "vms_running",
            "Deployments whose VM runs",
            vms_running.clone(),
        );
        let deploy_requests = Family::<Labels, Counter>::default();
        registry.register(
            "deploy_requests",
            "Deploy requests, by outcome",
            deploy_requests.clone(),
        );
        let tunnel_peers = Gauge::default();
        registry.register(
            "tunnel_peers",
            "Clients admitted on the WireGuard endpoint",
            tunnel_peers.clone(),
        );
        let tunnel_bytes = Family::<Labels, Counter>::default();
        registry.register(
            "tunnel_bytes",
            "WireGuard UDP bytes, by direction (rx, tx)",
            tunnel_bytes.clone(),
        );
        let image_cache_bytes = Gauge::default();
        registry.register(
            "image_cache_bytes",
            "Bytes in the image cache",
            image_cache_bytes.clone(),
        );
        // 0.25 s to about 17 minutes: a cached layer to a multi-GiB pull.
        let pull_seconds = Histogram::new(exponential_buckets(0.25, 2.0, 13));
        registry.register(
            "pull_seconds",
            "Seconds from a pull's start to its complete disk image (lazy pulls once verified; not cache hits)",
            pull_seconds.clone(),
        );
        Metrics {
            registry,
            vms_running,
            deploy_requests,
            tunnel_peers,
            tunnel_bytes,
            image_cache_bytes,
            pull_seconds,
            reported_bytes: Mutex::new((0, 0)),
        }
    }

    /// Counts a deploy request.
    pub fn deploy_request(&self, outcome: Outcome) {
        self.deploy_requests
            .get_or_create(&vec![("outcome", outcome.label())])
            .inc();
    }

    /// The text for `GET /metrics`, with the gauges set from `vms_running`
    /// and the backend's `stats`.
    pub fn render(&self, vms_running: usize, stats: &BackendStats) -> String {
        self.vms_running.set(saturating_i64(vms_running as u64));
        self.tunnel_peers
            .set(saturating_i64(stats.tunnel_peers as u64));
        self.image_cache_bytes
            .set(saturating_i64(stats.image_cache_bytes));
        for seconds in &stats.pull_seconds {
            self.pull_seconds.observe(*seconds);
        }
        {
            let mut reported = self
                .reported_bytes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (rx, tx) = (stats.tunnel_rx_bytes, stats.tunnel_tx_bytes);
            let direction = |name| vec![("direction", name)];
            self.tunnel_bytes
                .get_or_create(&direction("rx"))
                .inc_by(rx.saturating_sub(reported.0));
            self.tunnel_bytes
                .get_or_create(&direction("tx"))
                .inc_by(tx.saturating_sub(reported.1));
            *reported = (rx.max(reported.0), tx.max(reported.1));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_rendered_with_its_value() {
        let metrics = Metrics::new();
        metrics.deploy_request(Outcome::Deployed);
        metrics.deploy_request(Outcome::Deployed);
        metrics.deploy_request(Outcome::AtCapacity);
        let stats = BackendStats {
            tunnel_peers: 2,
            tunnel_rx_bytes: 1000,
            tunnel_tx_bytes: 500,
            image_cache_bytes: 4096,
            pull_seconds: vec![1.5],
        };
        let text = metrics.render(3, &stats);
        for line in [
            "olive2022_cloudlet_vms_running 3",
            "olive2022_cloudlet_deploy_requests_total{outcome=\"deployed\"} 2",
            "olive2022_cloudlet_deploy_requests_total{outcome=\"at_capacity\"} 1",
            "olive2022_cloudlet_tunnel_peers 2",
            "olive2022_cloudlet_tunnel_bytes_total{direction=\"rx\"} 1000",
            "olive2022_cloudlet_tunnel_bytes_total{direction=\"tx\"} 500",
            "olive2022_cloudlet_image_cache_bytes 4096",
            "olive2022_cloudlet_pull_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // A peer removed takes its bytes with it; the counter never goes
        // down, and grows by what is new.
        let later = BackendStats {
            tunnel_rx_bytes: 1200,
            tunnel_tx_bytes: 400,
            ..BackendStats::default()
        };
        let text = metrics.render(0, &later);
        assert!(text.contains("olive2022_cloudlet_tunnel_bytes_total{direction=\"rx\"} 1200"));
        assert!(text.contains("olive2022_cloudlet_tunnel_bytes_total{direction=\"tx\"} 500"));
    }
}
