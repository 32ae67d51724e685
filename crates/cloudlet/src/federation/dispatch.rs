//! A deploy request placed and sent: the ranked candidates
//! ([`crate::federation::placement`]) tried in turn until `results`
//! deployments are in hand.
//!
//! Sinfonia's tier 1 asks its first choices at once and answers 500 when
//! they all failed. Ours moves on: a candidate that fails or times out is
//! followed by the next one, and a remote cloudlet at fault is skipped
//! until it reports again, so a dead cloudlet costs one client one
//! timeout at most. When every candidate failed: 502 with what each said.
//! Our own cloudlet (when tier 1 runs inside `olive2022 cloudlet`) is a
//! candidate like the others, deployed without HTTP, and a last resort for
//! a client every other cloudlet turns away.

use std::future::Future;
use std::time::Instant;

use sinfonia::deployment::Deployment;
use uuid::Uuid;

use crate::federation::Federation;
use crate::federation::client::ClientInfo;
use crate::federation::placement::{Matcher, Profile, rank};
use crate::problems::ApiError;

/// What to deploy, for whom.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The backend.
    pub uuid: Uuid,
    /// The client's WireGuard public key.
    pub key: [u8; 32],
    /// Who asks, from where.
    pub client: ClientInfo,
    /// How many deployments (`?results=N`, already clamped).
    pub results: usize,
}

/// This process's own cloudlet, as a candidate.
pub struct LocalCandidate<F> {
    /// Its identity (a report of its own is not a second candidate).
    pub uuid: Uuid,
    /// Its networks, locations and load.
    pub profile: Profile,
    /// Deploys here.
    pub deploy: F,
}

/// Places `request` and deploys it on the best candidates that answer.
pub async fn dispatch<F, Fut>(
    federation: &Federation,
    request: &DeployRequest,
    local: Option<LocalCandidate<F>>,
) -> Result<Vec<Deployment>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Deployment, ApiError>>,
{
    let own = local.as_ref().map(|local| local.uuid);
    let remotes: Vec<_> = federation
        .registry
        .candidates(Instant::now())
        .into_iter()
        .filter(|remote| Some(remote.uuid) != own)
        .collect();
    let offset = usize::from(local.is_some());
    let profiles: Vec<&Profile> = local
        .iter()
        .map(|local| &local.profile)
        .chain(remotes.iter().map(|remote| &remote.profile))
        .collect();
    // A location found by GeoIP places the deploy; it is not passed on as
    // the client's own `X-Location`.
    let placed = federation.placed_client(&request.client);
    let mut ranked = rank(&placed, &profiles);
    if local.is_some() && !ranked.iter().any(|(index, _)| *index == 0) {
        ranked.push((0, Matcher::Load));
    }
    let name = |index: usize| match index.checked_sub(offset) {
        None => "this cloudlet".to_owned(),
        Some(i) => remotes[i].name.clone(),
    };
    tracing::debug!(
        client = ?request.client.address,
        location = ?placed.location,
        candidates = ?ranked.iter().map(|&(i, m)| format!("{}:{}", name(i), m.as_str())).collect::<Vec<_>>(),
        "placement"
    );
    if ranked.is_empty() {
        return Err(ApiError::NoCloudlet);
    }
    let only_local = ranked.len() == 1 && local.is_some();
    let mut local = local;
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    for (index, matcher) in ranked {
        tracing::debug!(chosen = %name(index), matcher = matcher.as_str(), "placement: trying");
        match index.checked_sub(offset) {
            None => {
                let Some(own) = local.take() else { continue };
                match (own.deploy)().await {
                    Ok(deployment) => answers.push(deployment),
                    // Alone, our own answer (503 at capacity…) is the answer.
                    Err(error) if only_local => return Err(error),
                    Err(error) => failures.push(format!("this cloudlet: {}", error.detail())),
                }
            }
            Some(i) => {
                let remote = &remotes[i];
                let sent = Instant::now();
                let forwarded = federation
                    .forwarder
                    .deploy(
                        &remote.endpoint,
                        request.uuid,
                        &request.key,
                        &request.client,
                    )
                    .await;
                let seconds = sent.elapsed().as_secs_f64();
                federation.metrics.forwarded(&forwarded, seconds);
                match forwarded {
                    Ok(list) => answers.extend(list),
                    Err(error) => {
                        tracing::warn!(cloudlet = %remote.uuid, name = %remote.name,
                            endpoint = %remote.endpoint, %error, "forward failed");
                        if error.is_fault() {
                            federation.registry.mark_failed(remote.uuid, Instant::now());
                        }
                        failures.push(format!("{}: {error}", remote.name));
                    }
                }
            }
        }
        if answers.len() >= request.results {
            break;
        }
    }
    if answers.is_empty() {
        return Err(ApiError::CloudletsFailed(failures.join("; ")));
    }
    answers.truncate(request.results);
    Ok(answers)
}
