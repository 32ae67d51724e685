//! The OCI and Docker manifest formats: every media type this crate knows,
//! and the manifests, indexes and descriptors as typed structs (modelled on
//! rust-oci-client's `manifest.rs`).
//!
//! Reading is lenient where the formats are: fields we do not use are kept
//! in `extra` (so a rewritten `index.json` loses nothing), a layer without a
//! media type has an empty one, an index entry without a platform has none.
//! What a manifest must be to be pulled is checked by [`Manifest::parse`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (a multi-platform image, or a layout's `index.json`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer: an uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer: a gzip-compressed tar.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (Docker's multi-platform index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker layer: a gzip-compressed tar.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer: an uncompressed tar.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The manifest types a pull accepts (the registry's `Accept`).
pub const PULLABLE_MANIFESTS: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// The layer types whose content is a tar, plain or gzip-compressed.
pub const TAR_LAYERS: &[&str] = &[
    OCI_LAYER_TAR,
    OCI_LAYER_TAR_GZIP,
    DOCKER_LAYER_TAR_GZIP,
    DOCKER_LAYER_TAR,
];

/// The annotation that names a manifest in a layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest manifest (or index) read, from a registry or a layout.
pub const MANIFEST_MAX: u64 = 4 << 20;

/// A content descriptor: what a manifest or index says about a blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type (empty when the descriptor gives none).
    #[serde(default)]
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations, e.g. [`ANNOTATION_REF_NAME`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Fields this crate does not use, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// A descriptor of `media_type`, `digest` and `size`, nothing else.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            extra: Map::new(),
        }
    }
}

/// The platform an index entry is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// Fields this crate does not use (variant, os.version, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image manifest, OCI or Docker schema 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// [`OCI_MANIFEST`] or [`DOCKER_MANIFEST`] (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config (a pull does not need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Fields this crate does not use, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image index (OCI, or a Docker manifest list), or a layout's
/// `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// [`OCI_INDEX`] or [`DOCKER_MANIFEST_LIST`] (optional in OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
    /// Fields this crate does not use, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageIndex {
    /// An empty index, as a new layout starts with.
    pub fn empty() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: None,
            manifests: Vec::new(),
            extra: Map::new(),
        }
    }
}

/// A manifest as pulled: an image manifest or an index.
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// An OCI image manifest or Docker schema 2 manifest.
    Image(ImageManifest),
    /// An OCI image index or Docker manifest list.
    Index(ImageIndex),
}

/// Why bytes are not a manifest we can use.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the shape of its type.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// `schemaVersion` is missing or not 2.
    #[error("schemaVersion is not 2")]
    SchemaVersion,
    /// The `mediaType` field contradicts the type it was served as.
    #[error("says it is a {declared:?} but was served as {served:?}")]
    MediaTypeMismatch {
        /// The `mediaType` field.
        declared: String,
        /// The type it was served as.
        served: String,
    },
    /// A type that is neither a manifest nor an index.
    #[error(
        "unsupported manifest type {0:?} (expected an OCI or Docker schema 2 manifest or index)"
    )]
    Unsupported(String),
}

/// The fields every manifest and index shares.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    schema_version: Option<Value>,
    #[serde(default)]
    media_type: Option<Value>,
}

impl Manifest {
    /// Parses `bytes` served as `media_type`: checks it is JSON of schema
    /// version 2 whose own `mediaType` (if any) agrees, then reads it as a
    /// manifest or an index by its type.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let header: Header = serde_json::from_slice(bytes).map_err(ManifestError::NotJson)?;
        if header.schema_version.as_ref().and_then(Value::as_u64) != Some(2) {
            return Err(ManifestError::SchemaVersion);
        }
        if let Some(declared) = header.media_type.as_ref().and_then(Value::as_str)
            && declared != media_type
        {
            return Err(ManifestError::MediaTypeMismatch {
                declared: declared.to_owned(),
                served: media_type.to_owned(),
            });
        }
        match media_type {
            OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(bytes)
                .map(Manifest::Image)
                .map_err(ManifestError::NotJson),
            OCI_INDEX | DOCKER_MANIFEST_LIST => serde_json::from_slice(bytes)
                .map(Manifest::Index)
                .map_err(ManifestError::NotJson),
            other => Err(ManifestError::Unsupported(other.to_owned())),
        }
    }
}

/// The `mediaType` a manifest gives itself, if it is JSON and gives one.
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    let header: Header = serde_json::from_slice(bytes).ok()?;
    header.media_type?.as_str().map(str::to_owned)
}
