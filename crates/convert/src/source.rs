//! Turning the SOURCE argument into a local package file: a local `.nxpk`,
//! a `.netx` reference to download, or a URL to download.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tempfile::TempPath;
use vmnetx::shown::Shown;
use vmnetx::url::VmnetxUrl;

use crate::error::{Context, ConvertError};
use crate::observer::{Observer, Phase, Transfer};

/// Largest reference file read (they hold one URL).
const MAX_REFERENCE_SIZE: u64 = 64 * 1024;

/// A package ready to open.
#[derive(Debug)]
pub struct LocalPackage {
    /// Where the package is.
    pub path: PathBuf,
    /// The VMNetX URL it came from, when it came from one.
    pub url: Option<VmnetxUrl>,
    /// The downloaded copy, deleted when this is dropped.
    _download: Option<TempPath>,
}

/// Whether SOURCE is a URL rather than a path.
pub fn is_url(source: &str) -> bool {
    source.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Resolves SOURCE, downloading into `tmp_dir` when needed.
pub fn resolve(
    source: &str,
    tmp_dir: &Path,
    cancel: &Arc<AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<LocalPackage, ConvertError> {
    if is_url(source) {
        return download(source, tmp_dir, cancel, observer);
    }
    let path = PathBuf::from(source);
    let mut head = Vec::new();
    std::fs::File::open(&path)
        .and_then(|file| file.take(MAX_REFERENCE_SIZE + 1).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head.starts_with(b"PK") {
        return Ok(LocalPackage {
            path,
            url: None,
            _download: None,
        });
    }
    if vmnetx::reference::looks_like_reference(&head) {
        if head.len() as u64 > MAX_REFERENCE_SIZE {
            return Err(ConvertError::Invalid(format!(
                "{} is too large for a VMNetX reference",
                path.display()
            )));
        }
        let xml =
            String::from_utf8(head).with_context(|| format!("{} is not UTF-8", path.display()))?;
        let url = vmnetx::reference::parse_reference(&xml)
            .with_context(|| format!("invalid VMNetX reference {}", path.display()))?;
        observer.status(&format!("Reference points to {}", Shown(redact(&url))));
        return download(&url, tmp_dir, cancel, observer);
    }
    Err(ConvertError::Invalid(format!(
        "{} is neither a VMNetX package (.nxpk) nor a reference (.netx)",
        path.display()
    )))
}

fn download(
    source: &str,
    tmp_dir: &Path,
    cancel: &Arc<AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<LocalPackage, ConvertError> {
    let url = VmnetxUrl::parse(source).context("not a usable VMNetX URL")?;
    let fetch_url = vmnetx::url::download_url(source).context("not a usable VMNetX URL")?;
    let temp = tempfile::Builder::new()
        .prefix(".olive2022-download-")
        .suffix(".nxpk.part")
        .tempfile_in(tmp_dir)
        .with_context(|| format!("cannot create a temporary file in {}", tmp_dir.display()))?
        .into_temp_path();
    observer.status(&format!("Fetching {}", Shown(redact(&fetch_url))));
    let mut progress = observer.progress(Phase::Download);
    let mut transfer = Transfer {
        progress: progress.as_mut(),
        cancel,
    };
    let result =
        vmnetx::fetch::fetch_to_file(&fetch_url, &temp, &Default::default(), &mut transfer);
    progress.finish();
    let bytes = result.context("download failed")?;
    observer.detail(&format!("Downloaded {bytes} bytes"));
    Ok(LocalPackage {
        path: temp.to_path_buf(),
        url: Some(url),
        _download: Some(temp),
    })
}

/// A URL without its query string, which may hold an access token.
pub fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}
