//! From the manifest a reference names to the image manifest to pull: an
//! OCI image manifest or Docker schema 2 manifest is itself; an OCI index
//! or Docker manifest list resolves to its `linux/amd64` entry (or to its
//! only entry when that names no platform, as a layout's index often does).

use crate::manifest::{Descriptor, ImageIndex, ImageManifest, Manifest, ManifestError};
use crate::pull_error::PullError;
use crate::source::{FetchedManifest, ImageRef, ImageSource};

/// The platform a cloudlet runs.
const WANTED_OS: &str = "linux";
/// The architecture a cloudlet runs.
const WANTED_ARCHITECTURE: &str = "amd64";

/// The image manifest `top` stands for, fetched from `store` if `top` is an
/// index: its digest and content.
pub(crate) fn resolve(
    store: &dyn ImageSource,
    image: &str,
    top: FetchedManifest,
) -> Result<(FetchedManifest, ImageManifest), PullError> {
    let refuse = |reason: String| PullError::Manifest {
        image: image.to_owned(),
        reason,
    };
    let index = match Manifest::parse(&top.media_type, &top.bytes) {
        Ok(Manifest::Image(manifest)) => return Ok((top, manifest)),
        Ok(Manifest::Index(index)) => index,
        Err(error) => return Err(manifest_error(&top, image, error)),
    };
    let digest = choose(&index).map_err(refuse)?.digest.clone();
    let child = store.manifest(&ImageRef::Digest(digest.clone()))?;
    if child.digest != digest {
        return Err(refuse(format!(
            "index entry {digest} resolved to {}",
            child.digest
        )));
    }
    let not_an_image = |media_type: &str| {
        refuse(format!(
            "the linux/amd64 entry of the index is a {media_type:?}, not an image manifest"
        ))
    };
    match Manifest::parse(&child.media_type, &child.bytes) {
        Ok(Manifest::Image(manifest)) => Ok((child, manifest)),
        Ok(Manifest::Index(_)) | Err(ManifestError::Unsupported(_)) => {
            Err(not_an_image(&child.media_type))
        }
        Err(error) => Err(manifest_error(&child, image, error)),
    }
}

/// The layers of `manifest`, refused when there are none.
pub(crate) fn layers<'a>(
    image: &str,
    manifest: &'a ImageManifest,
) -> Result<&'a [Descriptor], PullError> {
    if manifest.layers.is_empty() {
        return Err(PullError::Manifest {
            image: image.to_owned(),
            reason: "the manifest has no layers".into(),
        });
    }
    Ok(&manifest.layers)
}

/// The entry of `index` a cloudlet runs.
fn choose(index: &ImageIndex) -> Result<&Descriptor, String> {
    let entries = &index.manifests;
    let platform = |entry: &Descriptor| match &entry.platform {
        Some(p) => (or_unknown(&p.os), or_unknown(&p.architecture)),
        None => ("?".to_owned(), "?".to_owned()),
    };
    let wanted = (WANTED_OS.to_owned(), WANTED_ARCHITECTURE.to_owned());
    if let Some(entry) = entries.iter().find(|entry| platform(entry) == wanted) {
        return Ok(entry);
    }
    match entries.as_slice() {
        [only] if only.platform.is_none() => Ok(only),
        _ => {
            let found: Vec<String> = entries
                .iter()
                .map(|entry| {
                    let (os, arch) = platform(entry);
                    format!("{os}/{arch}")
                })
                .collect();
            Err(format!(
                "no linux/amd64 image in the index (it has: {})",
                found.join(", ")
            ))
        }
    }
}

fn or_unknown(text: &str) -> String {
    if text.is_empty() { "?" } else { text }.to_owned()
}

/// Why `fetched` of `image` cannot be used, as an error naming both.
fn manifest_error(fetched: &FetchedManifest, image: &str, error: ManifestError) -> PullError {
    let reason = match error {
        // A type we do not know is the image's fault, not the manifest's.
        ManifestError::Unsupported(_) => error.to_string(),
        _ => format!("manifest {}: {error}", fetched.digest),
    };
    PullError::Manifest {
        image: image.to_owned(),
        reason,
    }
}
