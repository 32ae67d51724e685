//! The image config and manifest of a containerDisk.
//!
//! Both are JSON with keys in a fixed order and no timestamps, so the same
//! disk and labels always give the same manifest digest.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::manifest::{Descriptor, ImageManifest, OCI_LAYER_TAR};
use crate::{BlobSource, Digest, MemoryBlob};

/// OCI image config (its home is [`crate::manifest`]).
pub use crate::manifest::OCI_CONFIG as CONFIG_MEDIA_TYPE;
/// OCI image manifest (its home is [`crate::manifest`]).
pub use crate::manifest::OCI_MANIFEST as MANIFEST_MEDIA_TYPE;

/// The config and manifest of an image of one layer.
#[derive(Debug, Clone)]
pub struct Image {
    /// The config blob.
    pub config: MemoryBlob,
    /// The manifest bytes (pushed under a tag, not as a blob).
    pub manifest: MemoryBlob,
}

#[derive(Serialize)]
struct Config<'a> {
    architecture: &'a str,
    os: &'a str,
    config: RunConfig<'a>,
    rootfs: RootFs<'a>,
    history: [History<'a>; 1],
}

#[derive(Serialize)]
struct RunConfig<'a> {
    #[serde(rename = "Labels")]
    labels: &'a BTreeMap<String, String>,
    /// KubeVirt's own containerDisks say so: the image is never run.
    #[serde(rename = "Entrypoint")]
    entrypoint: [&'a str; 1],
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: [&'a Digest; 1],
}

#[derive(Serialize)]
struct History<'a> {
    created_by: &'a str,
}

impl Image {
    /// The image of `layer` (uncompressed, so its digest is also its diff
    /// ID) for linux/amd64, with `labels`.
    pub fn new(layer: &dyn BlobSource, labels: &BTreeMap<String, String>) -> Image {
        let config = Config {
            architecture: "amd64",
            os: "linux",
            config: RunConfig {
                labels,
                entrypoint: ["no-entrypoint"],
            },
            rootfs: RootFs {
                kind: "layers",
                diff_ids: [layer.digest()],
            },
            history: [History {
                created_by: concat!("olive2022 ", env!("CARGO_PKG_VERSION"), " convert"),
            }],
        };
        let config = MemoryBlob::new(to_json(&config));
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            config: Some(Descriptor::new(
                CONFIG_MEDIA_TYPE,
                config.digest().clone(),
                config.size(),
            )),
            layers: vec![Descriptor::new(
                OCI_LAYER_TAR,
                layer.digest().clone(),
                layer.size(),
            )],
            extra: serde_json::Map::new(),
        };
        let manifest = MemoryBlob::new(to_json(&manifest));
        Image { config, manifest }
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_and_manifest_have_the_expected_shape() {
        let layer = MemoryBlob::new(b"a layer".to_vec());
        let labels = BTreeMap::from([(
            "org.opencontainers.image.title".to_owned(),
            "Windows 3.1".to_owned(),
        )]);
        let image = Image::new(&layer, &labels);
        let config: serde_json::Value = serde_json::from_slice(image.config.bytes()).unwrap();
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.title"],
            "Windows 3.1"
        );
        assert_eq!(config["rootfs"]["diff_ids"][0], layer.digest().as_str());
        let manifest: serde_json::Value = serde_json::from_slice(image.manifest.bytes()).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest["config"]["digest"], image.config.digest().as_str());
        assert_eq!(manifest["config"]["size"], image.config.size());
        assert_eq!(manifest["layers"][0]["mediaType"], crate::layer::MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["size"], 7);
        // The typed manifest keeps the byte layout digests were made of.
        let expected = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{MANIFEST_MEDIA_TYPE}\",\
             \"config\":{{\"mediaType\":\"{CONFIG_MEDIA_TYPE}\",\"digest\":\"{}\",\"size\":{}}},\
             \"layers\":[{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":7}}]}}",
            image.config.digest(),
            image.config.size(),
            crate::layer::MEDIA_TYPE,
            layer.digest(),
        );
        assert_eq!(image.manifest.bytes(), expected.as_bytes());
        // Same inputs, same bytes.
        assert_eq!(
            Image::new(&layer, &labels).manifest.bytes(),
            image.manifest.bytes()
        );
    }
}
