//! What to convert ([`ConvertJob`], one per VMNetX URL, or a batch file of
//! them) and how ([`ConvertSettings`]): where the image and recipe go.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use containerdisk::auth::Credentials;
use containerdisk::reference::ImageReference;
use diskimage::Compression;
use serde::{Deserialize, Serialize};
use vmnetx::url::VmnetxUrl;

use crate::error::{Context, ConvertError};

/// The tag the original pushes, kept for compatibility.
pub const TAG: &str = "latest";

/// One conversion to do.
#[derive(Debug, Clone)]
pub struct ConvertJob {
    /// The VMNetX URL, which names the VM (its Sinfonia UUID).
    pub url: VmnetxUrl,
    /// The VMNetX URL as given (downloads keep its query string).
    pub source_url: String,
    /// A local copy of the package, instead of downloading it.
    pub package: Option<PathBuf>,
}

impl ConvertJob {
    /// A job for `url`, from `package` when given.
    pub fn new(url: &str, package: Option<PathBuf>) -> Result<ConvertJob, ConvertError> {
        let parsed =
            VmnetxUrl::parse(url).with_context(|| format!("not a usable VMNetX URL: {url}"))?;
        Ok(ConvertJob {
            url: parsed,
            source_url: url.to_owned(),
            package,
        })
    }

    /// What the package is read from: the local file, else the URL.
    pub fn source(&self) -> String {
        match &self.package {
            Some(path) => path.to_string_lossy().into_owned(),
            None => self.source_url.clone(),
        }
    }
}

/// How to convert, the same for every job of a batch.
#[derive(Debug, Clone)]
pub struct ConvertSettings {
    /// The registry repository prefix: images go to `REG/<uuid>:latest`.
    pub registry: String,
    /// An OCI layout directory instead of a registry.
    pub layout: Option<PathBuf>,
    /// Plain HTTP to a registry that is not on loopback.
    pub insecure_registry: bool,
    /// CA certificates (PEM) trusted for the registry besides the system's.
    pub registry_ca: Option<PathBuf>,
    /// Where `<uuid>.yaml` recipes go.
    pub recipes: PathBuf,
    /// Where the compressed disk (and a downloaded package) go; a given
    /// directory keeps the compressed disk, the system's loses it.
    pub tmp_dir: Option<PathBuf>,
    /// A name for a VM whose package names none.
    pub name: Option<String>,
    /// Cluster compression.
    pub compression: Compression,
    /// Compressing threads (default: all cores).
    pub threads: Option<u16>,
    /// The largest virtual size accepted (see
    /// [`diskimage::DEFAULT_MAX_VIRTUAL_SIZE`]).
    pub max_virtual_size: u64,
    /// The Helm chart the recipe names.
    pub chart: String,
    /// Its version.
    pub chart_version: String,
    /// Pull credentials for the cloudlets; with them the recipe is
    /// restricted and private (0600), without them the image is public.
    pub pull_credentials: Option<Credentials>,
    /// Set to stop at the next safe point.
    pub cancel: Arc<AtomicBool>,
}

/// Where one job's image goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A registry repository `REG/<uuid>:latest`.
    Registry(ImageReference),
    /// An OCI image layout directory.
    Layout(PathBuf),
}

/// What a job would do (the dry run; one `--json` line per job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The canonical VMNetX URL.
    pub url: String,
    /// The VM's Sinfonia UUID.
    pub uuid: String,
    /// The package file, or the canonical URL.
    pub source: String,
    /// The image: a reference, or `oci:DIR`.
    pub image: String,
    /// The recipe file.
    pub recipe: PathBuf,
}

impl ConvertSettings {
    /// Where `job`'s image goes.
    pub fn destination(&self, job: &ConvertJob) -> Result<Destination, ConvertError> {
        if let Some(dir) = &self.layout {
            return Ok(Destination::Layout(dir.clone()));
        }
        let text = format!(
            "{}/{}:{TAG}",
            self.registry.trim_end_matches('/'),
            job.url.sinfonia_uuid()
        );
        ImageReference::parse(&text)
            .map(Destination::Registry)
            .with_context(|| format!("invalid --registry {:?}", self.registry))
    }

    /// Where `job`'s recipe goes.
    pub fn recipe_path(&self, job: &ConvertJob) -> PathBuf {
        self.recipes
            .join(format!("{}.yaml", job.url.sinfonia_uuid()))
    }

    /// What `job` would do.
    pub fn plan(&self, job: &ConvertJob) -> Result<Plan, ConvertError> {
        let image = match self.destination(job)? {
            Destination::Registry(reference) => reference.to_string(),
            Destination::Layout(dir) => format!("oci:{}", dir.display()),
        };
        Ok(Plan {
            url: job.url.canonical().to_owned(),
            uuid: job.url.sinfonia_uuid().to_string(),
            source: job.package.as_ref().map_or_else(
                || job.url.canonical().to_owned(),
                |path| path.display().to_string(),
            ),
            image,
            recipe: self.recipe_path(job),
        })
    }
}

/// `--batch FILE`: one `VMNETX_URL [PACKAGE_FILE]` per line; blank lines
/// and `#` comments are skipped.
pub fn read_batch(file: &Path) -> Result<Vec<ConvertJob>, ConvertError> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut jobs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", file.display(), number + 1);
        let mut words = line.split_whitespace();
        let url = words.next().unwrap_or_default();
        let package = words.next().map(PathBuf::from);
        if words.next().is_some() {
            return Err(ConvertError::Invalid(format!(
                "{}: expected `VMNETX_URL [PACKAGE_FILE]`",
                at()
            )));
        }
        jobs.push(ConvertJob::new(url, package).with_context(at)?);
    }
    if jobs.is_empty() {
        return Err(ConvertError::Invalid(format!(
            "{} lists no VMNetX URL",
            file.display()
        )));
    }
    Ok(jobs)
}
