//! What `olive2022 tier1` tells Prometheus at `GET /metrics`:
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `olive2022_tier1_deploy_requests_total{outcome}` | counter | deploy requests: `placed`, `no_cloudlet` (none takes this client), `cloudlets_failed` (every candidate failed: 502), `unknown_recipe`, `bad_request`, `rate_limited`, `failed` |
//! | `olive2022_tier1_forwards_total{outcome}`, `…_forward_seconds`, `…_reports_total{outcome}`, `…_reported_cloudlets` | | forwards, reports and known cloudlets ([`crate::federation::metrics`]) |

use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::federation::metrics::FederationMetrics;
use crate::problems::ApiError;
use crate::recipes::RecipeLoadError;

type Labels = Vec<(&'static str, &'static str)>;

/// Tier 1's metrics.
#[derive(Debug)]
pub struct Tier1Metrics {
    registry: Registry,
    deploy_requests: Family<Labels, Counter>,
}

impl Tier1Metrics {
    /// Every metric registered, at zero, with the federation's.
    pub fn new(federation: &FederationMetrics) -> Tier1Metrics {
        let mut registry = Registry::with_prefix("olive2022_tier1");
        let deploy_requests = Family::<Labels, Counter>::default();
        registry.register(
            "deploy_requests",
            "Deploy requests, by outcome",
            deploy_requests.clone(),
        );
        federation.register(&mut registry);
        Tier1Metrics {
            registry,
            deploy_requests,
        }
    }

    /// Counts a deploy request by its answer.
    pub fn deploy_request(&self, result: &Result<Response, ApiError>) {
        let outcome = match result {
            Ok(_) => "placed",
            Err(ApiError::NoCloudlet) => "no_cloudlet",
            Err(ApiError::CloudletsFailed(_)) => "cloudlets_failed",
            Err(ApiError::Recipe(RecipeLoadError::NotFound { .. })) => "unknown_recipe",
            Err(ApiError::BadUuid { .. } | ApiError::BadKey(_) | ApiError::BadHeader(_)) => {
                "bad_request"
            }
            Err(ApiError::RateLimited(_)) => "rate_limited",
            Err(_) => "failed",
        };
        self.deploy_requests
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// The text for `GET /metrics`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
