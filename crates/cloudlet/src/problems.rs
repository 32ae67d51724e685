//! How the API fails: [`ApiError`], every error as an
//! `application/problem+json` body, and the log of failures.
//!
//! - [`ApiError`]: each refusal with its status and `title`; its `detail`
//!   never carries what a recipe file holds (that goes to the log);
//! - [`problem_response`] and [`ensure_problem`]: our errors and axum's own
//!   rejections (405, 413, bad path encoding, 414 from [`limit_uri`]) all
//!   leave as problem+json;
//! - [`LogThrottle`]: a burst of identical refusals (a full cloudlet
//!   answering 503 to a crowd) is one log event per second plus a count, not
//!   one line per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sinfonia::keys::KeyFormatError;
use sinfonia::problem::{PROBLEM_JSON, Problem};
use uuid::Uuid;

use crate::backend::BackendError;
use crate::recipes::RecipeLoadError;
use crate::spec::ValuesError;
use crate::state::DeployError;

/// Largest request body accepted (a cloudlet report is a few hundred
/// bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// Longest request target (path and query) served; Sinfonia's longest is
/// under 200 bytes. Longer ones get a 414 problem.
pub const MAX_URI_LENGTH: usize = 8 * 1024;

/// An API request that fails, answered as `application/problem+json`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The backend UUID does not parse.
    #[error("`{value}` is not a UUID (nor the alias `helloworld`)")]
    BadUuid {
        /// As sent (shortened, escaped).
        value: String,
    },
    /// The application key is not a WireGuard public key.
    #[error(
        "the application key is not a WireGuard public key (32 bytes in URL-safe or standard base64): {0}"
    )]
    BadKey(KeyFormatError),
    /// The recipe is missing or unusable.
    #[error(transparent)]
    Recipe(RecipeLoadError),
    /// The recipe's values cannot run here.
    #[error("the recipe for {uuid} cannot be deployed: {source}")]
    Values {
        /// The backend.
        uuid: Uuid,
        /// What is wrong.
        source: ValuesError,
    },
    /// The recipe is private.
    #[error("the recipe for {uuid} is restricted")]
    Restricted {
        /// The backend.
        uuid: Uuid,
    },
    /// The deployment failed or was refused.
    #[error(transparent)]
    Deploy(DeployError),
    /// No deployment for this UUID and key.
    #[error("no deployment of {uuid} for this application key")]
    NoDeployment {
        /// The backend.
        uuid: Uuid,
    },
    /// A cloudlet report that is not one.
    #[error("invalid cloudlet report: {0}")]
    BadReport(String),
    /// No such endpoint.
    #[error("no endpoint at {0}")]
    NoRoute(String),
    /// A cloudlet report from a new cloudlet when
    /// [`crate::federation::registry::MAX_REPORTS`] are known.
    #[error("this tier 1 knows as many cloudlets as it accepts; try again later")]
    TooManyCloudlets,
    /// Too many deploy requests from one address
    /// ([`crate::rate_limit`]).
    #[error("too many deploy requests from this address; try again in {} s", retry_after_seconds(*.0))]
    RateLimited(std::time::Duration),
    /// A request body larger than the server reads.
    #[error("the request body is larger than the {} bytes accepted", MAX_BODY)]
    BodyTooLarge,
    /// The request target is longer than [`MAX_URI_LENGTH`].
    #[error("the request target is {0} bytes, more than the {MAX_URI_LENGTH} accepted")]
    UriTooLong(usize),
    /// A report or goodbye without the right `--cloudlet-token`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// `X-ClientIP`, `X-Location` or `?results` that does not parse.
    #[error("{0}")]
    BadHeader(String),
    /// No known cloudlet takes this client.
    #[error(
        "no cloudlet is available for this client: none reported, those that did failed since, or none accepts it"
    )]
    NoCloudlet,
    /// Every candidate failed; what each said.
    #[error("every cloudlet tried failed: {0}")]
    CloudletsFailed(String),
    /// `DELETE /api/v1/cloudlets/{uuid}` of a cloudlet not known.
    #[error("no cloudlet {0} is known")]
    UnknownCloudlet(Uuid),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadUuid { .. }
            | ApiError::BadKey(_)
            | ApiError::BadReport(_)
            | ApiError::BadHeader(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NoCloudlet => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::CloudletsFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::UnknownCloudlet(_) => StatusCode::NOT_FOUND,
            ApiError::Recipe(RecipeLoadError::NotFound { .. })
            | ApiError::NoDeployment { .. }
            | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Restricted { .. } => StatusCode::FORBIDDEN,
            ApiError::Deploy(
                DeployError::AtCapacity { .. }
                | DeployError::NoAddress
                | DeployError::Start {
                    source: BackendError::Unavailable(_),
                    ..
                }
                | DeployError::Peer {
                    source: BackendError::Unavailable(_),
                    ..
                },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Values { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyCloudlets => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::Recipe(_) | ApiError::Deploy(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `title`.
    pub fn title(&self) -> &'static str {
        match self {
            ApiError::BadUuid { .. } => "Invalid UUID",
            ApiError::BadKey(_) => "Invalid application key",
            ApiError::Recipe(RecipeLoadError::NotFound { .. }) => "Unknown application",
            ApiError::Recipe(_) => "Invalid recipe",
            ApiError::Values { .. } => "Recipe cannot run here",
            ApiError::TooManyCloudlets => "Too many cloudlets",
            ApiError::RateLimited(_) => "Too Many Requests",
            ApiError::BodyTooLarge => "Payload Too Large",
            ApiError::UriTooLong(_) => "URI Too Long",
            ApiError::Restricted { .. } => "Restricted recipe",
            ApiError::Deploy(DeployError::AtCapacity { .. } | DeployError::NoAddress) => {
                "Cloudlet at capacity"
            }
            ApiError::Deploy(_) => "Deployment failed",
            ApiError::NoDeployment { .. } => "No deployment",
            ApiError::BadReport(_) => "Invalid cloudlet report",
            ApiError::NoRoute(_) => "Not Found",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::BadHeader(_) => "Invalid request",
            ApiError::NoCloudlet => "No cloudlet available",
            ApiError::CloudletsFailed(_) => "Every cloudlet failed",
            ApiError::UnknownCloudlet(_) => "Unknown cloudlet",
        }
    }

    /// The problem's `detail`: the error, except that a recipe's own
    /// failure is named, not described (its description may quote the file).
    pub fn detail(&self) -> String {
        match self {
            ApiError::Recipe(error) => error.client_detail(),
            other => other.to_string(),
        }
    }

    /// As a problem body.
    pub fn problem(&self) -> Problem {
        Problem::new(self.status().as_u16(), self.title(), self.detail())
    }

    /// Logs what the operator should see: server-side failures in full,
    /// with their cause; client mistakes are not logged here (the access
    /// log has them), nor unusable recipes (the recipe store logs those).
    fn log(&self) {
        let status = self.status();
        match self {
            // The recipe store logged why when it parsed the file.
            ApiError::Recipe(_) => {}
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                if let Some(suppressed) = REFUSALS.allow(Instant::now()) {
                    tracing::warn!(
                        status = status.as_u16(),
                        error = %self,
                        suppressed,
                        "request refused"
                    );
                }
            }
            _ if status.is_server_error() => {
                tracing::error!(status = status.as_u16(), error = %self, "request failed");
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = problem_response(&self.problem());
        if let ApiError::RateLimited(wait) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds(wait)),
            );
        }
        if let ApiError::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Whole seconds to wait, at least 1 (`Retry-After` counts in seconds).
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The 503 refusals of the whole process, logged at most once a second.
static REFUSALS: LogThrottle = LogThrottle::new(Duration::from_secs(1));

/// Lets one log event through per period and counts the ones it held back.
#[derive(Debug)]
pub struct LogThrottle {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    /// At most one event per `period`.
    pub const fn new(period: Duration) -> LogThrottle {
        LogThrottle {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// Whether to log an event happening `now`: `Some(n)` with the number
    /// of events held back since the last one logged, or `None` to hold
    /// this one back.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held_back) = &mut *state;
        match last {
            Some(at) if now.duration_since(*at) < self.period => {
                *held_back += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held_back))
            }
        }
    }
}

/// A problem as a response: its status, `application/problem+json`.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// A value from a request, shortened and escaped for a message.
pub(crate) fn echo(value: &str) -> String {
    let short: String = value.chars().take(64).collect();
    let mut escaped: String = short.escape_debug().collect();
    if value.chars().count() > 64 {
        escaped.push('…');
    }
    escaped
}

/// The fallback: no endpoint at this path.
pub(crate) async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(echo(uri.path()))
}

/// Turns every error response that is not already a problem (axum's own
/// rejections: 405, 413, bad path encoding…) into one.
pub async fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let title = status.canonical_reason().unwrap_or("Error");
    let detail = match (text.is_empty(), status) {
        (false, _) => echo(&text),
        (true, StatusCode::METHOD_NOT_ALLOWED) => {
            "this endpoint does not support the request's method".to_owned()
        }
        (true, _) => title.to_owned(),
    };
    let problem = Problem::new(status.as_u16(), title, detail);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&problem).unwrap_or_default()),
    )
}

/// Refuses a request whose target is longer than [`MAX_URI_LENGTH`] before
/// routing, with a 414 problem.
pub async fn limit_uri(request: Request, next: Next) -> Response {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if length > MAX_URI_LENGTH {
        return ApiError::UriTooLong(length).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_lets_one_event_a_period_through_and_counts_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(throttle.allow(start), Some(0));
        for ms in [1, 10, 500, 999] {
            assert_eq!(throttle.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.allow(start + Duration::from_millis(1000)), Some(4));
        assert_eq!(throttle.allow(start + Duration::from_millis(2500)), Some(0));
    }
}
