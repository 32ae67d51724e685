//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`):
//! written instead of pushing to a registry (`--output oci:DIR`), and read
//! as an image source by a pull (`oci:DIR:REF`).
//!
//! - `write`: [`write`] puts an image in, crash-safe;
//! - `read`: [`LayoutSource`] finds manifests by reference name or digest
//!   and streams blobs, checking each against its digest.
//!
//! The layout's shape (file names, the index format) has its home here.

mod read;
mod write;

use std::path::{Path, PathBuf};

use crate::Digest;
use crate::manifest::ImageIndex;

pub use self::read::LayoutSource;
pub use self::write::write;
/// The annotation that names a manifest in `index.json` (its home is
/// [`crate::manifest`]).
pub use crate::manifest::ANNOTATION_REF_NAME as REF_NAME;

/// The index of the layout's images.
const INDEX_FILE: &str = "index.json";
/// The file that marks a directory as a layout.
const LAYOUT_FILE: &str = "oci-layout";
/// The content of [`LAYOUT_FILE`].
const LAYOUT_VERSION: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Where a blob lives in a layout.
pub fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    blobs_dir(dir).join(digest.hex())
}

/// The directory of the layout's (sha256) blobs.
fn blobs_dir(dir: &Path) -> PathBuf {
    dir.join("blobs").join("sha256")
}

/// Parses `index.json`.
fn parse_index(bytes: &[u8]) -> serde_json::Result<ImageIndex> {
    serde_json::from_slice(bytes)
}
