//! The tier-2 cloudlets that report to this tier 1.
//!
//! A report adds a cloudlet or refreshes it (and clears a failure); a
//! cloudlet silent for [`REPORT_LIFETIME`] is forgotten, as Sinfonia's
//! tier 1 forgets it; `DELETE /api/v1/cloudlets/{uuid}` (our extension, a
//! cloudlet stopping gracefully) forgets it at once. A forward that failed
//! marks the cloudlet failed: it is skipped by placement until it reports
//! again. At most [`MAX_REPORTS`] are known: a new cloudlet beyond is
//! refused rather than pushing out one that reports.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use uuid::Uuid;

use crate::api::{CloudletInfo, rfc3339};
use crate::federation::placement::Profile;
use crate::problems::ApiError;

/// Most tier-2 cloudlets known at once.
pub const MAX_REPORTS: usize = 64;
/// How long a report counts without a new one (a tier 2 reports every
/// 15 s; Sinfonia's tier 1 forgets it after five minutes of silence).
pub const REPORT_LIFETIME: Duration = Duration::from_secs(300);

/// A reported cloudlet that placement may choose.
#[derive(Debug, Clone)]
pub struct RemoteCloudlet {
    /// Its identity.
    pub uuid: Uuid,
    /// Its name, for logs (else the UUID).
    pub name: String,
    /// Its deploy URL (`…/api/v1/deploy`).
    pub endpoint: String,
    /// What placement looks at.
    pub profile: Profile,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A cloudlet not known before.
    Added,
    /// A known cloudlet's new figures.
    Refreshed,
}

#[derive(Debug)]
struct Entry {
    info: CloudletInfo,
    remote: RemoteCloudlet,
    refreshed: Instant,
    failed: bool,
}

/// The reported cloudlets.
#[derive(Debug, Default)]
pub struct CloudletRegistry {
    entries: Mutex<Vec<Entry>>,
}

impl CloudletRegistry {
    /// None known.
    pub fn new() -> CloudletRegistry {
        CloudletRegistry::default()
    }

    /// The entries still fresh at `now`.
    fn fresh(&self, now: Instant) -> MutexGuard<'_, Vec<Entry>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|entry| {
            let fresh = now.duration_since(entry.refreshed) < REPORT_LIFETIME;
            if !fresh {
                tracing::info!(cloudlet = %entry.remote.uuid, endpoint = %entry.remote.endpoint,
                    "cloudlet forgotten: no report for 5 minutes");
            }
            fresh
        });
        entries
    }

    /// Records a checked report (its `uuid` is set).
    pub fn record(&self, mut report: CloudletInfo, now: Instant) -> Result<Recorded, ApiError> {
        let uuid = report
            .uuid
            .ok_or_else(|| ApiError::BadReport("`uuid` is missing".into()))?;
        report.last_update = Some(rfc3339(SystemTime::now()));
        let remote = RemoteCloudlet {
            uuid,
            name: report.name.clone().unwrap_or_else(|| uuid.to_string()),
            endpoint: report.endpoint.clone(),
            profile: Profile::of(&report),
        };
        let entry = Entry {
            info: report,
            remote,
            refreshed: now,
            failed: false,
        };
        let mut entries = self.fresh(now);
        match entries.iter().position(|known| known.remote.uuid == uuid) {
            Some(index) => {
                if entries[index].failed {
                    tracing::info!(cloudlet = %uuid, "a failed cloudlet reported again");
                }
                tracing::debug!(cloudlet = %uuid, endpoint = %entry.remote.endpoint, "cloudlet refreshed");
                entries[index] = entry;
                Ok(Recorded::Refreshed)
            }
            None if entries.len() >= MAX_REPORTS => Err(ApiError::TooManyCloudlets),
            None => {
                tracing::info!(cloudlet = %uuid, name = %entry.remote.name,
                    endpoint = %entry.remote.endpoint, "cloudlet added");
                entries.push(entry);
                Ok(Recorded::Added)
            }
        }
    }

    /// Forgets `uuid` at once; whether it was known.
    pub fn remove(&self, uuid: Uuid, now: Instant) -> bool {
        let mut entries = self.fresh(now);
        let before = entries.len();
        entries.retain(|entry| entry.remote.uuid != uuid);
        let removed = entries.len() < before;
        if removed {
            tracing::info!(cloudlet = %uuid, "cloudlet removed: it said goodbye");
        }
        removed
    }

    /// Skips `uuid` until it reports again.
    pub fn mark_failed(&self, uuid: Uuid, now: Instant) {
        if let Some(entry) = self
            .fresh(now)
            .iter_mut()
            .find(|entry| entry.remote.uuid == uuid)
        {
            entry.failed = true;
        }
    }

    /// The reports, oldest first, as `GET /api/v1/cloudlets/` lists them.
    pub fn list(&self, now: Instant) -> Vec<CloudletInfo> {
        self.fresh(now).iter().map(|e| e.info.clone()).collect()
    }

    /// The cloudlets placement may choose: fresh and not failed.
    pub fn candidates(&self, now: Instant) -> Vec<RemoteCloudlet> {
        self.fresh(now)
            .iter()
            .filter(|entry| !entry.failed)
            .map(|entry| entry.remote.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn report(n: u128) -> CloudletInfo {
        serde_json::from_value(serde_json::json!({
            "uuid": Uuid::from_u128(n),
            "endpoint": format!("http://192.0.2.{n}/api/v1/deploy"),
        }))
        .unwrap()
    }

    #[test]
    fn added_refreshed_failed_removed_and_expired() {
        let registry = CloudletRegistry::new();
        let start = Instant::now();
        assert_eq!(registry.record(report(1), start).unwrap(), Recorded::Added);
        assert_eq!(registry.record(report(2), start).unwrap(), Recorded::Added);
        registry.mark_failed(Uuid::from_u128(1), start);
        assert_eq!(registry.candidates(start).len(), 1);
        assert_eq!(registry.list(start).len(), 2);
        // A new report clears the failure.
        let later = start + Duration::from_secs(60);
        assert_eq!(
            registry.record(report(1), later).unwrap(),
            Recorded::Refreshed
        );
        assert_eq!(registry.candidates(later).len(), 2);
        assert!(registry.remove(Uuid::from_u128(1), later));
        assert!(!registry.remove(Uuid::from_u128(1), later));
        // Cloudlet 2 last reported at `start`.
        assert!(registry.list(start + REPORT_LIFETIME).is_empty());
    }

    #[test]
    fn a_new_cloudlet_beyond_the_cap_is_refused() {
        let registry = CloudletRegistry::new();
        let now = Instant::now();
        for n in 0..MAX_REPORTS as u128 {
            registry.record(report(n), now).unwrap();
        }
        assert!(registry.record(report(999), now).is_err());
        assert!(registry.record(report(0), now).is_ok());
    }
}
