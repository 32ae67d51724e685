//! A tier 2's report (`POST /api/v1/cloudlets/`), read and checked before
//! the registry sees it: a bounded body that must arrive in time, an
//! `http(s)` deploy URL ending in `/vN/deploy`, networks that parse,
//! coordinates on Earth, bounded lists.

use std::time::Duration;

use axum::body::Body;
use sinfonia::deploy::IpNet;

use crate::api::CloudletInfo;
use crate::api::valid_location;
use crate::problems::{ApiError, MAX_BODY, echo};

/// How long a report's body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most entries in each network list of a report.
pub const MAX_NETWORKS: usize = 256;
/// Most locations and most resources in a report.
pub const MAX_ENTRIES: usize = 64;

/// The report in `body`, parsed and checked.
pub async fn read_report(body: Body) -> Result<CloudletInfo, ApiError> {
    // A report is a few hundred bytes: a client that takes longer than
    // this to send one is holding a connection, not reporting.
    let body = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY))
        .await
        .map_err(|_| ApiError::BadReport("the body did not arrive in time".into()))?
        .map_err(|e| {
            let error = e.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                ApiError::BodyTooLarge
            } else {
                ApiError::BadReport(echo(&error.to_string()))
            }
        })?;
    let report: CloudletInfo =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadReport(echo(&e.to_string())))?;
    check_report(&report)?;
    Ok(report)
}

/// Refuses a report tier 1 could not use or should not keep.
pub fn check_report(report: &CloudletInfo) -> Result<(), ApiError> {
    let bad = |reason: String| Err(ApiError::BadReport(reason));
    if report.uuid.is_none() {
        return bad("`uuid` is missing".into());
    }
    if let Err(reason) = check_endpoint(&report.endpoint) {
        return bad(format!("`endpoint` `{}` {reason}", echo(&report.endpoint)));
    }
    if let Some(name) = &report.name
        && name.len() > 253
    {
        return bad("`name` is too long".into());
    }
    if report.resources.len() > MAX_ENTRIES || report.resources.keys().any(|k| k.len() > 64) {
        return bad("`resources` is too large".into());
    }
    if let Some((name, value)) = report.resources.iter().find(|(_, v)| !v.is_finite()) {
        return bad(format!("`resources`: `{}` is {value}", echo(name)));
    }
    if report.locations.len() > MAX_ENTRIES {
        return bad("`locations` is too large".into());
    }
    if let Some([lat, lon]) = report
        .locations
        .iter()
        .find(|[lat, lon]| !valid_location(*lat, *lon))
    {
        return bad(format!(
            "`locations`: [{lat}, {lon}] is not a [latitude, longitude]"
        ));
    }
    for (field, networks) in [
        ("local_networks", &report.local_networks),
        ("accepted_clients", &report.accepted_clients),
        ("rejected_clients", &report.rejected_clients),
    ] {
        if networks.len() > MAX_NETWORKS {
            return bad(format!("`{field}` is too large"));
        }
        if let Some(network) = networks.iter().find(|n| n.parse::<IpNet>().is_err()) {
            return bad(format!("`{field}`: `{}` is not a network", echo(network)));
        }
    }
    Ok(())
}

/// A tier 2's deploy URL as Sinfonia's tier 1 accepts it: `http(s)`, a
/// host, no credentials, and a path ending in `/v<N>/deploy`.
pub fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    if endpoint.len() > 2048 {
        return Err("is longer than 2048 bytes");
    }
    let url = url::Url::parse(endpoint).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("is not an http(s) URL with a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("holds credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("has a query or fragment");
    }
    let mut segments = url.path().trim_end_matches('/').rsplit('/');
    let deploy = segments.next() == Some("deploy");
    let version = segments.next().and_then(|v| v.strip_prefix('v'));
    if !(deploy && version.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())))
    {
        return Err("does not end in /v<N>/deploy");
    }
    Ok(())
}

/// The networks of a list already checked by [`check_report`] (or by the
/// cloudlet's own settings); an entry that does not parse is skipped.
pub fn networks(list: &[String]) -> Vec<IpNet> {
    list.iter().filter_map(|n| n.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(check_endpoint("http://192.0.2.1:8080/api/v1/deploy").is_ok());
        assert!(check_endpoint("https://edge.example.org/x/api/v2/deploy/").is_ok());
        for bad in [
            "ftp://192.0.2.1/api/v1/deploy",
            "http://u:p@192.0.2.1/api/v1/deploy",
            "http://192.0.2.1/api/v1/deploy?x=1",
            "http://192.0.2.1/api/deploy",
            "not a url",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
