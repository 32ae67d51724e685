//! Reporting to tier 1, as a Sinfonia tier 2 does: who we are, where our
//! deploy endpoint is, which clients we take, and our load.
//!
//! [`Reporter::spawn`] starts one task per tier 1 (`--tier1-url`): each
//! sends `POST {tier1}/api/v1/cloudlets/` with a [`CloudletInfo`] every
//! [`REPORT_PERIOD`], each attempt bounded by [`REPORT_TIMEOUT`]. A tier 1
//! that does not answer 2xx is retried sooner, then less often
//! ([`FIRST_RETRY`] doubling up to [`MAX_BACKOFF`]); an outage is logged
//! once as a warning and its end once as info, and it never stops the
//! cloudlet. [`Reporter::goodbye`] stops the tasks and sends our extension
//! `DELETE {tier1}/api/v1/cloudlets/{uuid}` so that a tier 1 which knows it
//! forgets us at once (real Sinfonia does not; it drops us after five
//! minutes of silence); its answer is ignored.
//!
//! With a token (`--cloudlet-token`) every request carries
//! `Authorization: Bearer TOKEN`; the header is marked sensitive and the
//! token appears in no log and no `Debug` output.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::api::CloudletInfo;
use crate::resources::{ResourceSampler, VM_SLOTS_FREE};

/// How often a tier 2 reports (Sinfonia's 15 s; tier 1 forgets a cloudlet
/// after 5 minutes without one).
pub const REPORT_PERIOD: Duration = Duration::from_secs(15);
/// The longest one report may take, connection included.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the first report: enough for a first CPU measure.
pub const FIRST_REPORT_DELAY: Duration = Duration::from_secs(1);
/// The wait after a first failed report; it doubles with each failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two attempts while a tier 1 is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest the goodbye may delay a stop, for every tier 1 at once.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// How this cloudlet joins a Sinfonia federation: the tier 1s it reports
/// to and what it tells them (`--tier1-url`, `--public-url`,
/// `--cloudlet-token`, `--location`, `--local-network`,
/// `--accept-clients`, `--reject-clients`). The default reports nowhere.
#[derive(Clone, Default, PartialEq)]
pub struct Federation {
    /// The tier 1 base URLs to report to.
    pub tier1_urls: Vec<String>,
    /// The base URL tier 1 and clients reach the API at; `http://` and
    /// the address bound when unset.
    pub public_url: Option<String>,
    /// The bearer token of every report and goodbye.
    pub cloudlet_token: Option<String>,
    /// `[latitude, longitude]` of this cloudlet.
    pub locations: Vec<[f64; 2]>,
    /// Client networks considered close (`addr/len`).
    pub local_networks: Vec<String>,
    /// Client networks accepted (`addr/len`); empty means `0.0.0.0/0`.
    pub accepted_clients: Vec<String>,
    /// Client networks refused (`addr/len`).
    pub rejected_clients: Vec<String>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("tier1_urls", &self.tier1_urls)
            .field("public_url", &self.public_url)
            .field(
                "cloudlet_token",
                &self.cloudlet_token.as_ref().map(|_| "(set)"),
            )
            .field("locations", &self.locations)
            .field("local_networks", &self.local_networks)
            .field("accepted_clients", &self.accepted_clients)
            .field("rejected_clients", &self.rejected_clients)
            .finish()
    }
}

/// Where and how to report.
#[derive(Clone)]
pub struct ReporterConfig {
    /// The tier 1 base URLs (`https://tier1.example.org`).
    pub tier1_urls: Vec<String>,
    /// The bearer token sent to each of them, when set.
    pub token: Option<String>,
    /// What each report says besides the resources: uuid, endpoint, name,
    /// locations and client networks.
    pub identity: CloudletInfo,
}

impl std::fmt::Debug for ReporterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReporterConfig")
            .field("tier1_urls", &self.tier1_urls)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("identity", &self.identity)
            .finish()
    }
}

/// The running report tasks; [`Reporter::goodbye`] ends them.
pub struct Reporter {
    tasks: Vec<JoinHandle<()>>,
    client: reqwest::Client,
    config: Arc<ReporterConfig>,
}

/// How many VMs the cloudlet could still start, asked at each report.
pub type FreeSlots = Arc<dyn Fn() -> usize + Send + Sync>;

impl Reporter {
    /// Starts reporting to every tier 1 of `config` (none: nothing runs).
    /// Must be called inside a Tokio runtime.
    pub fn spawn(config: ReporterConfig, free_slots: FreeSlots) -> Reporter {
        let client = reqwest::Client::builder()
            .timeout(REPORT_TIMEOUT)
            .connect_timeout(REPORT_TIMEOUT)
            .pool_idle_timeout(crate::listener::CLIENT_IDLE_TIMEOUT)
            .build()
            .unwrap_or_default();
        let config = Arc::new(config);
        let sampler = Arc::new(Mutex::new(ResourceSampler::new()));
        lock(&sampler).sample();
        let tasks = config
            .tier1_urls
            .iter()
            .map(|tier1| {
                let task = ReportTask {
                    url: cloudlets_url(tier1),
                    client: client.clone(),
                    config: Arc::clone(&config),
                    sampler: Arc::clone(&sampler),
                    free_slots: Arc::clone(&free_slots),
                };
                tokio::spawn(task.run())
            })
            .collect();
        Reporter {
            tasks,
            client,
            config,
        }
    }

    /// Stops reporting and tells every tier 1 we are gone: `DELETE
    /// {tier1}/api/v1/cloudlets/{uuid}`, all at once, for at most
    /// [`GOODBYE_TIMEOUT`], answers ignored.
    pub async fn goodbye(self) {
        for task in &self.tasks {
            task.abort();
        }
        let Some(uuid) = self.config.identity.uuid else {
            return;
        };
        let mut goodbyes = JoinSet::new();
        for tier1 in &self.config.tier1_urls {
            let url = format!("{}{uuid}", cloudlets_url(tier1));
            let request = authorized(self.client.delete(&url), self.config.token.as_deref());
            let tier1 = tier1.clone();
            goodbyes.spawn(async move {
                match request.timeout(GOODBYE_TIMEOUT).send().await {
                    Ok(answer) => {
                        tracing::info!(tier1, status = answer.status().as_u16(), "goodbye sent");
                    }
                    Err(error) => tracing::debug!(tier1, %error, "goodbye not delivered"),
                }
            });
        }
        let all = async { while goodbyes.join_next().await.is_some() {} };
        if tokio::time::timeout(GOODBYE_TIMEOUT, all).await.is_err() {
            tracing::debug!("goodbye unanswered in time");
        }
    }

    /// The uuid reported.
    pub fn uuid(&self) -> Option<Uuid> {
        self.config.identity.uuid
    }
}

/// One tier 1's reports.
struct ReportTask {
    url: String,
    client: reqwest::Client,
    config: Arc<ReporterConfig>,
    sampler: Arc<Mutex<ResourceSampler>>,
    free_slots: FreeSlots,
}

impl ReportTask {
    async fn run(self) {
        tokio::time::sleep(FIRST_REPORT_DELAY).await;
        let mut failures: u32 = 0;
        loop {
            let wait = match self.send().await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(tier1 = %self.url, "tier 1 reachable again");
                    }
                    failures = 0;
                    REPORT_PERIOD
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(tier1 = %self.url, %error, "tier 1 unreachable; retrying");
                    }
                    failures = failures.saturating_add(1);
                    backoff(failures)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One report; an error for no answer or an answer other than 2xx.
    async fn send(&self) -> Result<(), String> {
        let report = self.report();
        let request = self.client.post(&self.url).json(&report);
        let answer = authorized(request, self.config.token.as_deref())
            .send()
            .await
            .map_err(|error| describe(&error.without_url()))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        tracing::debug!(tier1 = %self.url, resources = ?report.resources, "report sent");
        Ok(())
    }

    fn report(&self) -> CloudletInfo {
        let mut report = self.config.identity.clone();
        report.resources = lock(&self.sampler).measure();
        report
            .resources
            .insert(VM_SLOTS_FREE.into(), (self.free_slots)() as f64);
        report
    }
}

/// An error and its causes, `: `-separated ("error sending request" alone
/// does not say that the connection was refused).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

/// The wait after `failures` failed reports in a row.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_RETRY * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// `{tier1}/api/v1/cloudlets/`, whether or not the base ends in `/`.
fn cloudlets_url(tier1: &str) -> String {
    format!("{}/api/v1/cloudlets/", tier1.trim_end_matches('/'))
}

/// `request` with `Authorization: Bearer TOKEN` (sensitive) when a token
/// is set.
fn authorized(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    let Some(token) = token else {
        return request;
    };
    match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(mut value) => {
            value.set_sensitive(true);
            request.header(AUTHORIZATION, value)
        }
        // Refused by the settings already; never sent half-formed.
        Err(_) => request,
    }
}

fn lock(sampler: &Mutex<ResourceSampler>) -> std::sync::MutexGuard<'_, ResourceSampler> {
    sampler
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn urls_and_debug_keep_the_token_out() {
        assert_eq!(
            cloudlets_url("http://t1.example/"),
            "http://t1.example/api/v1/cloudlets/"
        );
        let config = ReporterConfig {
            tier1_urls: vec!["http://t1.example".into()],
            token: Some("s3cret".into()),
            identity: CloudletInfo {
                uuid: None,
                name: None,
                endpoint: "http://x/api/v1/deploy".into(),
                resources: Default::default(),
                locations: vec![],
                local_networks: vec![],
                accepted_clients: vec![],
                rejected_clients: vec![],
                last_update: None,
            },
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
