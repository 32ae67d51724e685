//! The cloudlet-list endpoints, the same in `olive2022 tier1` and
//! `olive2022 cloudlet`:
//!
//! - `POST /api/v1/cloudlets/`: a report (Sinfonia's); 204;
//! - `DELETE /api/v1/cloudlets/{uuid}`: our extension, a cloudlet stopping
//!   gracefully; 204, or 404 when unknown.
//!
//! Both are limited per reporting address (429) and, with
//! `--cloudlet-token`, need `Authorization: Bearer TOKEN` (401).

use std::net::IpAddr;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::federation::Federation;
use crate::federation::auth::authorize;
use crate::federation::report::read_report;
use crate::problems::{ApiError, echo};

/// `POST /api/v1/cloudlets/`.
pub async fn post_report(
    federation: &Federation,
    headers: &HeaderMap,
    reporter: Option<IpAddr>,
    body: Body,
) -> Result<Response, ApiError> {
    let recorded = record_report(federation, headers, reporter, body).await;
    federation.metrics.reported(&recorded, false);
    recorded.map(|()| StatusCode::NO_CONTENT.into_response())
}

async fn record_report(
    federation: &Federation,
    headers: &HeaderMap,
    reporter: Option<IpAddr>,
    body: Body,
) -> Result<(), ApiError> {
    admit(federation, headers, reporter)?;
    let report = read_report(body).await?;
    federation.registry.record(report, Instant::now()).map(drop)
}

/// `DELETE /api/v1/cloudlets/{uuid}`.
pub fn delete_report(
    federation: &Federation,
    headers: &HeaderMap,
    reporter: Option<IpAddr>,
    uuid: &str,
) -> Result<Response, ApiError> {
    let removed = remove_cloudlet(federation, headers, reporter, uuid);
    federation.metrics.reported(&removed, true);
    removed.map(|()| StatusCode::NO_CONTENT.into_response())
}

fn remove_cloudlet(
    federation: &Federation,
    headers: &HeaderMap,
    reporter: Option<IpAddr>,
    uuid: &str,
) -> Result<(), ApiError> {
    admit(federation, headers, reporter)?;
    let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| ApiError::BadUuid { value: echo(uuid) })?;
    if federation.registry.remove(uuid, Instant::now()) {
        Ok(())
    } else {
        Err(ApiError::UnknownCloudlet(uuid))
    }
}

/// Rate limit first (a wrong token costs a token too), then the token.
fn admit(
    federation: &Federation,
    headers: &HeaderMap,
    reporter: Option<IpAddr>,
) -> Result<(), ApiError> {
    if let Some(address) = reporter {
        federation
            .report_limiter
            .check(address, Instant::now())
            .map_err(ApiError::RateLimited)?;
    }
    authorize(federation.token.as_ref(), headers)
}
