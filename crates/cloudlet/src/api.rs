//! The JSON shapes the cloudlet speaks, exactly as Sinfonia's tier 1 and
//! tier 2 write them (`docs/sinfonia.md`).
//!
//! - [`DeploymentInfo`]: one element of the deploy answer (`POST` returns a
//!   JSON array of them, `GET` one object), with its [`TunnelConfigInfo`];
//! - [`Problem`]: an `application/problem+json` error body (RFC 9457);
//! - [`CloudletInfo`]: what `GET /api/v1/cloudlets/` lists and what a tier 2
//!   reports with `POST /api/v1/cloudlets/`;
//! - [`RecipeInfo`]: a public recipe as `GET /api/v1/recipe/{uuid}/` shows it.
//!
//! These are the server's own types; the tier-3 client parses answers with
//! its stricter `sinfonia::deploy` types.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

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

/// One deployment as the deploy endpoints return it.
///
/// ```text
/// { "DeploymentName": "bold-tesla", "UUID": "<uuid>",
///   "ApplicationKey": "<standard base64>", "Status": "Deployed",
///   "Created": "2026-11-26T03:00:00+00:00", "TunnelConfig": { … } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentInfo {
    /// `DeploymentName`: two random words, unique on the cloudlet.
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
    /// `Created`: when the VM was (last) started, RFC 3339 with an offset.
    #[serde(rename = "Created", default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `TunnelConfig`: how the client reaches the deployment.
    #[serde(rename = "TunnelConfig")]
    pub tunnel_config: TunnelConfigInfo,
}

/// The WireGuard settings of a deployment, in the order Sinfonia writes
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelConfigInfo {
    /// `publicKey`: the cloudlet's WireGuard public key, standard base64.
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// `allowedIPs`: what the client routes through the tunnel.
    #[serde(rename = "allowedIPs")]
    pub allowed_ips: Vec<String>,
    /// `endpoint`: the cloudlet's WireGuard UDP endpoint, `host:port`.
    pub endpoint: String,
    /// `address`: the client's tunnel address (one IPv4 address, written
    /// without a prefix length as Sinfonia writes it; it is a /32).
    pub address: Vec<String>,
    /// `dns`: the name server's address, then the search domains
    /// (`<name>.svc.cluster.local`, `svc.cluster.local`, `cluster.local`).
    pub dns: Vec<String>,
}

/// An `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `type`: always `about:blank` (the status says it all).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// `title`: a short summary, the same for every occurrence.
    pub title: String,
    /// `status`: the HTTP status code.
    pub status: u16,
    /// `detail`: what happened this time, in terms a user can act on.
    pub detail: String,
}

impl Problem {
    /// A problem of type `about:blank`.
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: "about:blank".to_owned(),
            title: title.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// A tier-2 cloudlet as tier 1 lists it (`GET /api/v1/cloudlets/`) and as a
/// tier 2 reports itself (`POST /api/v1/cloudlets/`).
///
/// Unknown fields in a report are ignored, as Sinfonia ignores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudletInfo {
    /// `uuid`: the tier-2 instance (required in a report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    /// `name`: for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `endpoint`: the tier 2's deploy URL, e.g.
    /// `http://192.0.2.1:8080/api/v1/deploy`.
    pub endpoint: String,
    /// `resources`: load measurements (name → number).
    #[serde(default)]
    pub resources: BTreeMap<String, f64>,
    /// `locations`: `[latitude, longitude]` of the cloudlets it manages.
    #[serde(default)]
    pub locations: Vec<[f64; 2]>,
    /// `local_networks`: client networks considered close (`addr/len`).
    #[serde(default)]
    pub local_networks: Vec<String>,
    /// `accepted_clients`: client networks it accepts.
    #[serde(default)]
    pub accepted_clients: Vec<String>,
    /// `rejected_clients`: client networks it refuses.
    #[serde(default)]
    pub rejected_clients: Vec<String>,
    /// `last_update`: when tier 1 last heard of it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
}

/// A public recipe as `GET /api/v1/recipe/{uuid}/` returns it: `chart` and
/// `version`, `description` when set, `values` when not empty (Sinfonia's
/// `DeploymentRecipe.asdict`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeInfo {
    /// The Helm chart.
    pub chart: String,
    /// The chart version.
    pub version: String,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The values passed to the chart.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub values: Map<String, Value>,
}

impl From<&sinfonia::Recipe> for RecipeInfo {
    fn from(recipe: &sinfonia::Recipe) -> RecipeInfo {
        RecipeInfo {
            chart: recipe.chart.clone(),
            version: recipe.version.clone(),
            description: recipe.description.clone(),
            values: recipe.values.clone(),
        }
    }
}

/// A time as RFC 3339 in UTC with a numeric offset, to the second, as
/// Sinfonia writes `Created`: `2026-11-26T03:00:00+00:00`.
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01),
/// after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is in 1..=31 and month in 1..=12 by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_662_000);
        assert_eq!(rfc3339(t), "2026-11-26T03:00:00+00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399);
        assert_eq!(rfc3339(leap), "2000-02-29T23:59:59+00:00");
    }

    #[test]
    fn deployment_field_names() {
        let info = DeploymentInfo {
            name: Some("bold-tesla".into()),
            uuid: Uuid::nil(),
            application_key: "k".into(),
            status: DeploymentStatus::Deployed,
            created: None,
            tunnel_config: TunnelConfigInfo {
                public_key: "p".into(),
                allowed_ips: vec!["0.0.0.0/0".into()],
                endpoint: "e:1".into(),
                address: vec!["10.5.0.2".into()],
                dns: vec![],
            },
        };
        let json = serde_json::to_value(&info).unwrap();
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
        assert_eq!(json["TunnelConfig"]["allowedIPs"][0], "0.0.0.0/0");
        assert_eq!(json["TunnelConfig"]["publicKey"], "p");
        let back: DeploymentInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }
}
