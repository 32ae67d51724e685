//! The JSON shapes the cloudlet speaks, exactly as Sinfonia's tier 1 and
//! tier 2 write them (`docs/sinfonia.md`).
//!
//! - [`CloudletInfo`]: what `GET /api/v1/cloudlets/` lists and what a tier 2
//!   reports with `POST /api/v1/cloudlets/`;
//! - [`RecipeInfo`]: a public recipe as `GET /api/v1/recipe/{uuid}/` shows it.
//!
//! The deploy answer and the error body are the contract every tier shares,
//! so they live in `sinfonia` ([`sinfonia::deployment`],
//! [`sinfonia::problem`]); these are the types only a server speaks.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

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

/// Whether `[lat, lon]` is a coordinate: the check every `locations` entry
/// and every `X-Location` passes.
pub(crate) fn valid_location(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
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
}
