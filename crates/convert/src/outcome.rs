//! One job's result as a flat record, success or failure alike: the line
//! `olive2022 convert --json` prints per job, so a script reads every job
//! of a batch the same way and finds the failures by `error`.

use std::error::Error as StdError;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ConvertError;
use crate::job::ConvertJob;
use crate::pipeline::ConvertReport;

/// What one job produced, or why it failed. Fields about the products
/// (`name` to `uploaded`) are `null` when `error` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// The canonical VMNetX URL.
    pub url: String,
    /// The VM's Sinfonia UUID.
    pub uuid: String,
    /// The VM's name.
    pub name: Option<String>,
    /// The image: a registry reference, or `oci:DIR:<uuid>`.
    pub image: Option<String>,
    /// The manifest's digest (`sha256:…`), which the recipe pins.
    pub digest: Option<String>,
    /// The recipe written.
    pub recipe: Option<PathBuf>,
    /// The disk's virtual size in bytes.
    pub virtual_size: Option<u64>,
    /// The compressed qcow2's size in bytes.
    pub disk_size: Option<u64>,
    /// The tar layer's size in bytes.
    pub layer_size: Option<u64>,
    /// Whether the layer was sent (false: the registry had it).
    pub uploaded: Option<bool>,
    /// Wall time of the job, failed or not.
    pub seconds: f64,
    /// Why the job failed, with its causes joined by `: `; `null` on
    /// success.
    pub error: Option<String>,
}

impl JobOutcome {
    /// The record of a conversion that succeeded.
    pub fn succeeded(job: &ConvertJob, report: &ConvertReport) -> JobOutcome {
        JobOutcome {
            name: Some(report.name.clone()),
            image: Some(report.image.clone()),
            digest: Some(report.digest.to_string()),
            recipe: Some(report.recipe.clone()),
            virtual_size: Some(report.virtual_size),
            disk_size: Some(report.disk_size),
            layer_size: Some(report.layer_size),
            uploaded: Some(report.uploaded),
            seconds: report.seconds,
            ..JobOutcome::named(job)
        }
    }

    /// The record of a conversion that failed after `seconds`.
    pub fn failed(job: &ConvertJob, error: &ConvertError, seconds: f64) -> JobOutcome {
        JobOutcome {
            seconds,
            error: Some(error_chain(error)),
            ..JobOutcome::named(job)
        }
    }

    /// Only the job's names, nothing produced.
    fn named(job: &ConvertJob) -> JobOutcome {
        JobOutcome {
            url: job.url.canonical().to_owned(),
            uuid: job.url.sinfonia_uuid().to_string(),
            name: None,
            image: None,
            digest: None,
            recipe: None,
            virtual_size: None,
            disk_size: None,
            layer_size: None,
            uploaded: None,
            seconds: 0.0,
            error: None,
        }
    }
}

/// `error: cause: cause…`, as `anyhow`'s `{:#}` shows it.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_failure_names_the_job_and_every_cause() {
        let job = ConvertJob::new("vmnetx+https://example.org/vm.nxpk", None).unwrap();
        let io = std::io::Error::other("connection refused");
        let error = ConvertError::Step {
            context: "cannot push".into(),
            source: Box::new(io),
        };
        let outcome = JobOutcome::failed(&job, &error, 1.5);
        assert_eq!(outcome.url, "vmnetx+https://example.org/vm.nxpk");
        assert_eq!(outcome.uuid, job.url.sinfonia_uuid().to_string());
        assert_eq!(
            outcome.error.as_deref(),
            Some("cannot push: connection refused")
        );
        assert_eq!((outcome.digest, outcome.seconds), (None, 1.5));
    }
}
