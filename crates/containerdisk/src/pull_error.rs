//! [`PullError`]: why a disk could not be pulled, whatever the source.
//!
//! It lives apart from `pull` because the image sources (the OCI layout
//! reader among them) return it too, and `pull` uses them.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::registry::RegistryError;

/// Why a disk could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The source is malformed.
    #[error("invalid disk source {0}")]
    InvalidSource(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The OCI layout is missing something or holds wrong content.
    #[error("OCI layout {}: {reason}", dir.display())]
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A manifest (or index) we cannot use.
    #[error("image {image}: {reason}")]
    Manifest {
        /// The image.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer we refuse.
    #[error("image {image}, layer {layer}: {reason}")]
    Layer {
        /// The image.
        image: String,
        /// The layer's digest.
        layer: Digest,
        /// What is wrong.
        reason: String,
    },
    /// No layer holds a disk.
    #[error("image {image} holds no disk: {reason}")]
    NoDisk {
        /// The image.
        image: String,
        /// What was found instead.
        reason: String,
    },
    /// The registry did not send a lazily pulled layer's first bytes (its
    /// tar headers) in time: no VM can start from it now.
    #[error("image {image}: the registry sent no part of the disk within {waited:?}: {reason}")]
    Unreachable {
        /// The image.
        image: String,
        /// How long the deploy waited.
        waited: std::time::Duration,
        /// The last failure.
        reason: String,
    },
    /// The previous lazy download of the image did not pass its check and
    /// was discarded (said once, to the next deploy; the one after tries
    /// again).
    #[error("image {image}: its last download failed its check and was discarded: {reason}")]
    Discarded {
        /// The image.
        image: String,
        /// Why.
        reason: String,
    },
    /// A cache file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
}

/// A `map_err` adapter: an I/O failure while doing `what`.
pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> PullError {
    let what = what.into();
    move |source| PullError::Io { what, source }
}
