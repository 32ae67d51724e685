//! One deploy request sent on to a tier 2, as Sinfonia's tier 1 sends it:
//! `POST {endpoint}/{uuid}/{key}` with an empty body, the client's
//! `X-ClientIP` and `X-Location`, and its answer checked (a JSON list of
//! deployments of this backend for this key, each with a usable tunnel).
//!
//! Unlike Sinfonia, the whole exchange is bounded by the forward timeout
//! (connecting by a few seconds of it), so that a cloudlet that died or
//! hangs costs the client seconds, not minutes.
//!
//! A forwarded request carries [`FORWARDED_HEADER`]: a cloudlet that is
//! also a tier 1 serves such a request itself instead of placing it again,
//! so two cloudlets that know each other never bounce a request between
//! them.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sinfonia::deploy::Endpoint;
use sinfonia::deployment::Deployment;
use uuid::Uuid;

use crate::federation::client::{CLIENT_IP_HEADER, ClientInfo, LOCATION_HEADER};
use crate::problems::echo;
use crate::spec::parse_application_key;

/// Marks a request forwarded by our tier 1 (see the module docs).
pub const FORWARDED_HEADER: &str = "x-olive2022-forwarded";
/// Largest answer read from a tier 2 (a deployment is under 1 KiB).
pub const MAX_ANSWER: usize = 1024 * 1024;
/// The longest wait for a connection, within the forward timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a forward failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// No connection, or it broke.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the forward timeout.
    #[error("no answer within {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// An error status.
    #[error("answered {status}: {detail}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The problem's title and detail, or an excerpt of the body.
        detail: String,
    },
    /// A success that is not a usable list of deployments.
    #[error("answered something unusable: {0}")]
    Malformed(String),
}

impl ForwardError {
    /// Whether the cloudlet itself is at fault (down, broken, lying), so
    /// it should be skipped until it reports again; a refusal of this
    /// request (4xx, 503 at capacity) is not.
    pub fn is_fault(&self) -> bool {
        match self {
            ForwardError::Status { status, .. } => *status >= 500 && *status != 503,
            _ => true,
        }
    }
}

/// Sends deploy requests on.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    timeout: Duration,
}

impl Forwarder {
    /// Forwards bounded by `timeout`.
    pub fn new(timeout: Duration) -> Result<Forwarder, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(crate::listener::CLIENT_IDLE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Forwarder { client, timeout })
    }

    /// Asks the tier 2 at `endpoint` to deploy backend `uuid` for `key`.
    pub async fn deploy(
        &self,
        endpoint: &str,
        uuid: Uuid,
        key: &[u8; 32],
        client: &ClientInfo,
    ) -> Result<Vec<Deployment>, ForwardError> {
        let url = format!(
            "{}/{uuid}/{}",
            endpoint.trim_end_matches('/'),
            URL_SAFE_NO_PAD.encode(key)
        );
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .header(FORWARDED_HEADER, "1");
        if let Some(address) = client.address {
            request = request.header(CLIENT_IP_HEADER, address.to_string());
        }
        if let Some(location) = client.location_header() {
            request = request.header(LOCATION_HEADER, location);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let body = read_bounded(response)
            .await
            .map_err(|e| self.transport(&e))?;
        if !(200..300).contains(&status) {
            return Err(ForwardError::Status {
                status,
                detail: error_detail(&body),
            });
        }
        check_answer(&body, uuid, key)
    }

    fn transport(&self, error: &reqwest::Error) -> ForwardError {
        if error.is_timeout() {
            return ForwardError::TimedOut(self.timeout);
        }
        let mut cause: &dyn std::error::Error = error;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ForwardError::Unreachable(echo(&cause.to_string()))
    }
}

/// The body, refused beyond [`MAX_ANSWER`].
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            body.truncate(MAX_ANSWER);
            break;
        }
    }
    Ok(body)
}

/// A problem's `title: detail`, else a short excerpt of the body.
fn error_detail(body: &[u8]) -> String {
    let problem: Option<sinfonia::problem::Problem> = serde_json::from_slice(body).ok();
    match problem {
        Some(problem) => echo(&format!("{}: {}", problem.title, problem.detail)),
        None => echo(String::from_utf8_lossy(body).trim()),
    }
}

/// The deployments of a success answer, each checked.
fn check_answer(body: &[u8], uuid: Uuid, key: &[u8; 32]) -> Result<Vec<Deployment>, ForwardError> {
    let bad = |reason: String| ForwardError::Malformed(reason);
    let list: Vec<Deployment> = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "not a list of deployments: {}",
            echo(&e.to_string())
        ))
    })?;
    if list.is_empty() {
        return Err(bad("an empty list".into()));
    }
    for deployment in &list {
        if deployment.uuid != uuid {
            return Err(bad(format!(
                "a deployment of {} instead of {uuid}",
                deployment.uuid
            )));
        }
        if parse_application_key(&deployment.application_key).ok() != Some(*key) {
            return Err(bad("a deployment for another application key".into()));
        }
        let tunnel = &deployment.tunnel_config;
        if parse_application_key(&tunnel.public_key).is_err() {
            return Err(bad("a tunnel public key that is not 32 bytes".into()));
        }
        if tunnel.endpoint.parse::<Endpoint>().is_err() {
            return Err(bad(format!(
                "a tunnel endpoint `{}` that is not host:port",
                echo(&tunnel.endpoint)
            )));
        }
        if tunnel.address.is_empty() {
            return Err(bad("a tunnel without a client address".into()));
        }
    }
    Ok(list)
}
