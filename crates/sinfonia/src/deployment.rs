//! The deploy answer on the wire: what tier 1 and tier 2 write and tier 3
//! reads, exactly as Sinfonia spells it.
//!
//! `POST /api/v1/deploy/{uuid}/{key}` answers a JSON array of
//! [`Deployment`]s (best first), `GET` on the same path one of them:
//!
//! ```text
//! { "DeploymentName": "bold-tesla", "UUID": "<uuid>",
//!   "ApplicationKey": "<standard base64>", "Status": "Deployed",
//!   "Created": "2026-11-26T03:00:00+00:00",
//!   "TunnelConfig": { "publicKey": "<base64>", "allowedIPs": ["0.0.0.0/0"],
//!                     "endpoint": "203.0.113.7:51820",
//!                     "address": ["10.5.0.23"],
//!                     "dns": ["10.43.0.10", "bold-tesla.svc.cluster.local", …] } }
//! ```
//!
//! These types are the contract only: keys and addresses stay the strings
//! the wire carries. A server fills them from its own state; the tier-3
//! client ([`crate::deploy`]) reads them and then checks every field it
//! uses (32-byte keys, `host:port`, address syntax) into its own view.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a deployment is in its lifecycle.
///
/// Initializing → Deployed (each deploy request extends the lease) →
/// Expiring (tunnel idle: peer removed, VM stopped; a new request brings it
/// back under the same name and address) → Expired (gone; the next request
/// starts over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploymentStatus {
    /// The VM is being started.
    Initializing,
    /// The VM runs and the client's tunnel peer is in place.
    Deployed,
    /// Idle: the VM is stopped and the peer removed; name and address are
    /// kept for a while.
    Expiring,
    /// Released: nothing is left.
    Expired,
}

impl DeploymentStatus {
    /// The name on the wire (`"Deployed"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Initializing => "Initializing",
            DeploymentStatus::Deployed => "Deployed",
            DeploymentStatus::Expiring => "Expiring",
            DeploymentStatus::Expired => "Expired",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status equals its wire name (`status == "Deployed"`).
impl PartialEq<&str> for DeploymentStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One deployment as the deploy endpoints return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `DeploymentName`: two random words, the deployment's Kubernetes
    /// namespace on the cloudlet (optional on the wire).
    #[serde(
        rename = "DeploymentName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `UUID`: the backend.
    #[serde(rename = "UUID")]
    pub uuid: Uuid,
    /// `ApplicationKey`: the client's WireGuard public key, standard base64.
    #[serde(rename = "ApplicationKey")]
    pub application_key: String,
    /// `Status`.
    #[serde(rename = "Status")]
    pub status: DeploymentStatus,
    /// `Created`: when the VM was (last) started, RFC 3339 with an offset
    /// (optional on the wire).
    #[serde(rename = "Created", default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `TunnelConfig`: how the client reaches the deployment.
    #[serde(rename = "TunnelConfig")]
    pub tunnel_config: TunnelConfig,
    /// `Disk`: our extension, present while the VM's disk is still being
    /// downloaded behind it (a lazy pull); Sinfonia's clients ignore it.
    #[serde(rename = "Disk", default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskProgress>,
}

/// How far the download of a deployment's disk is (`Disk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskProgress {
    /// `downloading`, `verifying`, `complete` or `failed`.
    pub state: String,
    /// Bytes of the image's layer present on the cloudlet.
    pub bytes: u64,
    /// The layer's size.
    pub total: u64,
    /// Why the download is stalled or failed, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The WireGuard settings of a deployment, in the order Sinfonia writes
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelConfig {
    /// `publicKey`: the cloudlet's WireGuard public key, standard base64.
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// `allowedIPs`: what the client routes through the tunnel.
    #[serde(rename = "allowedIPs")]
    pub allowed_ips: Vec<String>,
    /// `endpoint`: the cloudlet's WireGuard UDP endpoint, `host:port`.
    pub endpoint: String,
    /// `address`: the client's tunnel address(es), with or without a
    /// prefix length (Sinfonia writes a bare address: a /32).
    pub address: Vec<String>,
    /// `dns`: the name servers' addresses, then the search domains
    /// (`<name>.svc.cluster.local`, `svc.cluster.local`, `cluster.local`).
    pub dns: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn field_names_and_round_trip() {
        let deployment = Deployment {
            name: Some("bold-tesla".into()),
            uuid: Uuid::nil(),
            application_key: "k".into(),
            status: DeploymentStatus::Deployed,
            created: None,
            tunnel_config: TunnelConfig {
                public_key: "p".into(),
                allowed_ips: vec!["0.0.0.0/0".into()],
                endpoint: "e:1".into(),
                address: vec!["10.5.0.2".into()],
                dns: vec![],
            },
            disk: None,
        };
        let json = serde_json::to_value(&deployment).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "ApplicationKey",
                "DeploymentName",
                "Status",
                "TunnelConfig",
                "UUID"
            ]
        );
        assert_eq!(json["UUID"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(json["Status"], "Deployed");
        assert_eq!(json["TunnelConfig"]["allowedIPs"][0], "0.0.0.0/0");
        assert_eq!(json["TunnelConfig"]["publicKey"], "p");
        let back: Deployment = serde_json::from_value(json).unwrap();
        assert_eq!(back, deployment);
        assert_eq!(DeploymentStatus::Expired.to_string(), "Expired");
        assert!(DeploymentStatus::Deployed == "Deployed");
    }
}
