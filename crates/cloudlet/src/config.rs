//! The cloudlet's settings: where it listens, where recipes are, what it
//! tells clients about its tunnel, and how many VMs it runs for how long.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use sinfonia::deploy::{Endpoint, IpNet};
use sinfonia::tier2::TUNNEL_ADDRESS;
use uuid::Uuid;

use crate::api::valid_location;
use crate::federation::FederationConfig;
use crate::state::Limits;

/// Default `--listen`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Default `--max-vms`.
pub const DEFAULT_MAX_VMS: usize = 4;
/// Default `--deploy-rate`: deploy requests a minute per client address (a
/// client asks once per launch; the burst allows a classroom behind one
/// NAT address).
pub const DEFAULT_DEPLOY_RATE: u32 = 60;
/// Default `--idle-timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default time an `Expiring` deployment keeps its name and address.
pub const DEFAULT_EXPIRING_GRACE: Duration = Duration::from_secs(600);
/// Default cluster domain: search domains are `<name>.svc.cluster.local`,
/// `svc.cluster.local` and `cluster.local`, as on Kubernetes.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The cloudlet's settings.
#[derive(Debug, Clone)]
pub struct CloudletConfig {
    /// Where the HTTP API listens (`--listen`).
    pub listen: SocketAddr,
    /// The base URL tier 1 and clients use to reach the API, announced in
    /// the cloudlet list (`http://<listen>` when unset).
    pub api_url: Option<String>,
    /// The recipe directory (`--recipes`), holding `<uuid>.yaml` files.
    pub recipes_dir: PathBuf,
    /// The WireGuard endpoint clients connect to, `host:port`
    /// (`--public-endpoint`): `TunnelConfig.endpoint`.
    pub public_endpoint: String,
    /// The cloudlet's WireGuard public key: `TunnelConfig.publicKey`.
    pub tunnel_public_key: [u8; 32],
    /// Most VMs running at once (`--max-vms`).
    pub max_vms: usize,
    /// Deploy requests a minute per client address, in bursts of as many
    /// (`--deploy-rate`); 0 for no limit.
    pub deploy_rate: u32,
    /// A lease ends after this long without tunnel traffic or deploy
    /// request (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// How long an expired lease keeps its name and address for the same
    /// client, before it is forgotten.
    pub expiring_grace: Duration,
    /// The name server inside the tunnel: first entry of
    /// `TunnelConfig.dns` (default 10.5.0.1, the cloudlet itself).
    pub dns_server: Ipv4Addr,
    /// The cluster domain; a deployment's search domains are
    /// `<name>.svc.<domain>`, `svc.<domain>` and `<domain>`.
    pub cluster_domain: String,
    /// `TunnelConfig.allowedIPs` (default `0.0.0.0/0`, as Sinfonia).
    pub allowed_ips: Vec<String>,
    /// The cloudlet's identity in the cloudlet list (random by default).
    pub uuid: Uuid,
    /// The cloudlet's name in the cloudlet list.
    pub name: Option<String>,
    /// `[latitude, longitude]` of the machine, for the cloudlet list.
    pub locations: Vec<[f64; 2]>,
    /// Client networks considered close, for the cloudlet list.
    pub local_networks: Vec<String>,
    /// Client networks accepted, for the cloudlet list (default
    /// `0.0.0.0/0`).
    pub accepted_clients: Vec<String>,
    /// Client networks refused, for the cloudlet list.
    pub rejected_clients: Vec<String>,
    /// Tier 1: who may report and how long a forward may take.
    pub federation: FederationConfig,
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `max_vms` is 0.
    #[error("--max-vms must be at least 1")]
    MaxVms,
    /// `idle_timeout` is 0.
    #[error("--idle-timeout must be at least 1 second")]
    IdleTimeout,
    /// `public_endpoint` is not `host:port`.
    #[error("--public-endpoint `{value}`: {reason}")]
    Endpoint {
        /// As given.
        value: String,
        /// Why.
        reason: String,
    },
    /// A network is not `address/prefix`.
    #[error("`{0}` is not a network (address/prefix)")]
    Network(String),
    /// A location is not a latitude and longitude.
    #[error("[{0}, {1}] is not a [latitude, longitude]")]
    Location(f64, f64),
    /// The cluster domain is not a DNS name.
    #[error("`{0}` is not a DNS domain")]
    ClusterDomain(String),
}

impl CloudletConfig {
    /// Defaults, with the settings that have none.
    pub fn new(
        recipes_dir: impl Into<PathBuf>,
        public_endpoint: impl Into<String>,
        tunnel_public_key: [u8; 32],
    ) -> CloudletConfig {
        CloudletConfig {
            listen: DEFAULT_LISTEN,
            api_url: None,
            recipes_dir: recipes_dir.into(),
            public_endpoint: public_endpoint.into(),
            tunnel_public_key,
            max_vms: DEFAULT_MAX_VMS,
            deploy_rate: DEFAULT_DEPLOY_RATE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            expiring_grace: DEFAULT_EXPIRING_GRACE,
            dns_server: TUNNEL_ADDRESS,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            allowed_ips: vec!["0.0.0.0/0".to_owned()],
            uuid: Uuid::new_v4(),
            name: None,
            locations: Vec::new(),
            local_networks: Vec::new(),
            accepted_clients: vec!["0.0.0.0/0".to_owned()],
            rejected_clients: Vec::new(),
            federation: FederationConfig::default(),
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_vms == 0 {
            return Err(ConfigError::MaxVms);
        }
        if self.idle_timeout.is_zero() {
            return Err(ConfigError::IdleTimeout);
        }
        self.public_endpoint
            .parse::<Endpoint>()
            .map_err(|reason| ConfigError::Endpoint {
                value: self.public_endpoint.clone(),
                reason,
            })?;
        for network in self
            .allowed_ips
            .iter()
            .chain(&self.local_networks)
            .chain(&self.accepted_clients)
            .chain(&self.rejected_clients)
        {
            if !network.contains('/') || network.parse::<IpNet>().is_err() {
                return Err(ConfigError::Network(network.clone()));
            }
        }
        for &[lat, lon] in &self.locations {
            if !valid_location(lat, lon) {
                return Err(ConfigError::Location(lat, lon));
            }
        }
        let domain = &self.cluster_domain;
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if domain.len() > 180 || !domain.split('.').all(label_ok) {
            return Err(ConfigError::ClusterDomain(domain.clone()));
        }
        Ok(())
    }

    /// The registry's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_vms: self.max_vms,
            idle_timeout: self.idle_timeout,
            expiring_grace: self.expiring_grace,
        }
    }

    /// The DNS domain of a deployment's services: `<name>.svc.<domain>`
    /// (the tunnel's DNS responder answers `vmi-vnc.<that>`).
    pub fn deployment_domain(&self, name: &str) -> String {
        format!("{name}.svc.{}", self.cluster_domain)
    }

    /// `TunnelConfig.dns` of a deployment: the name server, then the
    /// search domains `<name>.svc.<domain>`, `svc.<domain>`, `<domain>`.
    pub fn dns(&self, name: &str) -> Vec<String> {
        vec![
            self.dns_server.to_string(),
            self.deployment_domain(name),
            format!("svc.{}", self.cluster_domain),
            self.cluster_domain.clone(),
        ]
    }

    /// How often the registry looks for idle deployments: a quarter of the
    /// shortest timeout, between 10 ms and 5 s.
    pub fn reap_period(&self) -> Duration {
        (self
            .idle_timeout
            .min(self.expiring_grace.max(Duration::from_millis(1)))
            / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn validation() {
        let good = CloudletConfig::new("/r", "203.0.113.7:51820", [0; 32]);
        good.validate().unwrap();
        assert_eq!(
            good.dns("bold-tesla"),
            [
                "10.5.0.1",
                "bold-tesla.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        let mut bad = good.clone();
        bad.public_endpoint = "nowhere".into();
        assert!(matches!(bad.validate(), Err(ConfigError::Endpoint { .. })));
        let mut bad = good.clone();
        bad.max_vms = 0;
        assert_eq!(bad.validate(), Err(ConfigError::MaxVms));
        let mut bad = good.clone();
        bad.accepted_clients = vec!["10.0.0.1".into()];
        assert!(matches!(bad.validate(), Err(ConfigError::Network(_))));
        let mut bad = good;
        bad.cluster_domain = "Cluster..local".into();
        assert!(matches!(bad.validate(), Err(ConfigError::ClusterDomain(_))));
    }
}
