//! Tier 1: the cloudlets that report to this process, and deploy requests
//! placed on the best of them and forwarded there.
//!
//! `olive2022 tier1` serves this alone ([`crate::tier1`], outside this
//! room: it is a server like [`crate::server`]); `olive2022 cloudlet`
//! serves it next to its own VMs, itself being one more candidate, served
//! without HTTP. The room:
//!
//! - [`report`]: a report's body read, bounded and checked;
//! - [`auth`]: the bearer token reporting cloudlets present;
//! - [`registry`]: the reported cloudlets, refreshed, expired, removed
//!   (our `DELETE` extension) and marked failed after a failed forward;
//! - [`client`]: who asks (`X-ClientIP`, `X-Location`, `?results=N`);
//! - [`geoip`]: where a client without `X-Location` is, by its address
//!   (`--geoip-db`);
//! - [`placement`]: Sinfonia's matchers in order (network, location) and
//!   then load, as a ranked list of candidates;
//! - [`forward`]: one deploy request sent on to a tier 2, its answer
//!   checked;
//! - [`dispatch`]: the candidates tried in turn until enough answered;
//! - [`routes`]: the report endpoints, shared by both servers;
//! - [`metrics`]: forwards, reports and known cloudlets for Prometheus.
//!
//! [`Federation`] holds the state both servers share.

pub mod auth;
pub mod client;
pub mod dispatch;
pub mod forward;
pub mod geoip;
pub mod metrics;
pub mod placement;
pub mod registry;
pub mod report;
pub mod routes;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderMap;
use sinfonia::deploy::IpNet;

use crate::federation::client::ClientInfo;
use crate::rate_limit::RateLimiter;

pub use auth::BearerToken;
pub use geoip::{GeoIpDb, GeoIpError};
pub use registry::CloudletRegistry;

/// Default `--forward-timeout`: how long a tier 2 has to answer a
/// forwarded deploy before the next candidate is tried. A deploy waits for
/// the VM to start (not to boot), which takes a few seconds once the image
/// is cached; a first pull of a large image may need more.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Reports a minute per reporting address: a tier 2 reports every 15 s, so
/// this leaves room for a few dozen cloudlets behind one address.
pub const REPORTS_PER_MINUTE: u32 = 240;

/// What tier 1 needs to know.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    /// The token reporting cloudlets must present (`--cloudlet-token`);
    /// reports are open when `None`.
    pub cloudlet_token: Option<BearerToken>,
    /// How long a forwarded deploy may take (`--forward-timeout`).
    pub forward_timeout: Duration,
    /// The MaxMind city database that locates clients without
    /// `X-Location` (`--geoip-db`).
    pub geoip_db: Option<PathBuf>,
    /// Proxies whose `X-ClientIP` the deploy limit believes
    /// (`--trusted-proxy`; [`client::limited_address`]).
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for FederationConfig {
    fn default() -> FederationConfig {
        FederationConfig {
            cloudlet_token: None,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            geoip_db: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The tier-1 state: the reported cloudlets, how to reach them, who may
/// report.
#[derive(Debug)]
pub struct Federation {
    /// The reported cloudlets.
    pub registry: CloudletRegistry,
    /// Sends deploy requests on.
    pub forwarder: forward::Forwarder,
    /// The token reports must carry.
    pub token: Option<BearerToken>,
    /// Reports per reporting address.
    pub report_limiter: RateLimiter,
    /// Locates clients without `X-Location`, when given.
    pub geoip: Option<GeoIpDb>,
    /// Proxies whose `X-ClientIP` the deploy limit believes.
    pub trusted_proxies: Vec<IpNet>,
    /// Forwards, reports and known cloudlets, for `GET /metrics`.
    pub metrics: metrics::FederationMetrics,
}

/// Why tier 1 cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The HTTP client cannot be built (no TLS roots…).
    #[error("cannot forward deploys: {0}")]
    Client(String),
    /// The `--geoip-db` file cannot be used.
    #[error(transparent)]
    GeoIp(#[from] GeoIpError),
}

impl Federation {
    /// Empty: no cloudlet known yet. Opens the GeoIP database, when
    /// given; fails when it cannot be used or when the HTTP client cannot
    /// be built (no TLS roots…).
    pub fn new(config: FederationConfig) -> Result<Federation, FederationError> {
        let geoip = config.geoip_db.as_deref().map(GeoIpDb::open).transpose()?;
        Ok(Federation {
            registry: CloudletRegistry::new(),
            forwarder: forward::Forwarder::new(config.forward_timeout)
                .map_err(FederationError::Client)?,
            token: config.cloudlet_token,
            report_limiter: RateLimiter::new(REPORTS_PER_MINUTE),
            geoip,
            trusted_proxies: config.trusted_proxies,
            metrics: metrics::FederationMetrics::default(),
        })
    }

    /// The address a deploy request from `connection` counts against in
    /// the per-address limit ([`client::limited_address`]).
    pub fn limited_address(&self, connection: IpAddr, headers: &HeaderMap) -> IpAddr {
        client::limited_address(connection, headers, &self.trusted_proxies)
    }

    /// `client` as placement sees it: located by its address when it gave
    /// no `X-Location` and a GeoIP database is open.
    pub fn placed_client(&self, client: &ClientInfo) -> ClientInfo {
        match &self.geoip {
            Some(geoip) => geoip.locate_client(client),
            None => *client,
        }
    }
}
