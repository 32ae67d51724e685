//! Where an image is read from: a registry or an OCI layout, both behind
//! [`ImageSource`], so that a pull walks manifests and streams blobs the
//! same way from either.
//!
//! The implementations live with what they read: the OCI layout in
//! `layout::read`, the registry in `pull::registry_store`.

use std::io::Write;

use crate::digest::Digest;
use crate::pull_error::PullError;
use crate::registry::PushProgress;

/// A manifest reference: a tag (in a layout, the `ref.name` annotation) or
/// a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A tag, or a layout's reference name.
    Tag(String),
    /// A manifest digest.
    Digest(Digest),
}

impl ImageRef {
    /// `sha256:…` is a digest, anything else a tag.
    pub fn parse(text: &str) -> ImageRef {
        match Digest::parse(text) {
            Ok(digest) => ImageRef::Digest(digest),
            Err(_) => ImageRef::Tag(text.to_owned()),
        }
    }

    /// The tag or the digest, as text.
    pub fn as_str(&self) -> &str {
        match self {
            ImageRef::Tag(tag) => tag,
            ImageRef::Digest(digest) => digest.as_str(),
        }
    }
}

/// A manifest (or index) as fetched: its media type, bytes and checked
/// digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The media type it was served as (or declares, in a layout).
    pub media_type: String,
    /// Its bytes, at most [`crate::manifest::MANIFEST_MAX`].
    pub bytes: Vec<u8>,
    /// The digest of `bytes` (checked against the one asked for).
    pub digest: Digest,
}

/// A store of manifests and blobs, addressed by digest.
pub trait ImageSource {
    /// The manifest or index `reference` names, its digest checked.
    fn manifest(&self, reference: &ImageRef) -> Result<FetchedManifest, PullError>;

    /// Streams blob `digest` of `size` bytes into `out`, checking both and
    /// reporting to `progress`.
    fn blob(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<(), PullError>;
}
