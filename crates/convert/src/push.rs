//! The compressed disk as a one-layer containerDisk image, pushed to a
//! registry or written as an OCI layout.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use containerdisk::credentials;
use containerdisk::image::{Image, MANIFEST_MEDIA_TYPE};
use containerdisk::layer::DiskLayer;
use containerdisk::reference::ImageReference;
use containerdisk::registry::{Registry, RegistryOptions};
use containerdisk::{Digest, layout};

use crate::error::{Context, ConvertError};
use crate::job::{ConvertJob, Destination, TAG};
use crate::observer::{Observer, Phase, Transfer};

/// Where the image went.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The image: a registry reference, or `oci:DIR:<uuid>`.
    pub image: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// Whether the layer had to be sent (a registry may have it already).
    pub uploaded: bool,
}

/// Hashes the compressed disk of `size` bytes as the image's tar layer.
pub fn hash_layer(
    file: File,
    size: u64,
    observer: &mut dyn Observer,
) -> Result<DiskLayer, ConvertError> {
    let mut progress = observer.progress(Phase::Hash);
    progress.start(Some(size));
    let layer = DiskLayer::new(file, "disk.qcow2", &mut |done| progress.set_position(done));
    progress.finish();
    layer.context("cannot read the compressed disk back")
}

/// The original's two labels, plus where the VM came from.
pub fn labels(name: &str, job: &ConvertJob) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "org.opencontainers.image.url".into(),
            "https://olivearchive.org".into(),
        ),
        ("org.opencontainers.image.title".into(), name.into()),
        (
            "org.opencontainers.image.source".into(),
            job.url.canonical().into(),
        ),
        (
            "org.olivearchive.sinfonia.uuid".into(),
            job.url.sinfonia_uuid().to_string(),
        ),
    ])
}

/// How to reach the registry: plain HTTP allowed, and its CA.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// CA certificates (PEM) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
}

/// Sends `image` with its `layer` to `destination`.
pub fn store(
    destination: &Destination,
    image: &Image,
    layer: &DiskLayer,
    job: &ConvertJob,
    access: &Access,
    cancel: &Arc<AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<Pushed, ConvertError> {
    match destination {
        Destination::Registry(reference) => {
            let (digest, uploaded) = push(reference, image, layer, access, cancel, observer)?;
            Ok(Pushed {
                image: reference.to_string(),
                digest,
                uploaded,
            })
        }
        Destination::Layout(dir) => {
            let uuid = job.url.sinfonia_uuid().to_string();
            let digest = layout::write(dir, image, layer, &uuid, &mut |_| {})
                .with_context(|| format!("cannot write the OCI layout {}", dir.display()))?;
            Ok(Pushed {
                image: format!("oci:{}:{uuid}", dir.display()),
                digest,
                uploaded: true,
            })
        }
    }
}

/// Pushes layer, config and manifest; returns the manifest digest and
/// whether the layer had to be uploaded.
fn push(
    reference: &ImageReference,
    image: &Image,
    layer: &DiskLayer,
    access: &Access,
    cancel: &Arc<AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<(Digest, bool), ConvertError> {
    let found = credentials::lookup_from_env(&reference.registry, &reference.repository)
        .with_context(|| format!("cannot get the credentials for {}", reference.registry))?;
    let options = RegistryOptions {
        insecure: access.insecure,
        credentials: found.credentials,
        credentials_origin: Some(found.origin),
        ca_file: access.ca_file.clone(),
        ..RegistryOptions::default()
    };
    let registry = Registry::new(&reference.registry, options)
        .with_context(|| format!("cannot use the registry of {reference}"))?;
    let repository = &reference.repository;
    let mut progress = observer.progress(Phase::Upload);
    let mut transfer = Transfer {
        progress: progress.as_mut(),
        cancel,
    };
    let uploaded = registry.push_blob(repository, layer, &mut transfer);
    progress.finish();
    let uploaded =
        uploaded.with_context(|| format!("cannot push the disk layer to {reference}"))?;
    if !uploaded {
        observer.status("The registry already has this disk: upload skipped");
    }
    registry
        .push_blob(
            repository,
            &image.config,
            &mut containerdisk::registry::NoProgress,
        )
        .with_context(|| format!("cannot push the image config to {reference}"))?;
    let tag = reference.tag.as_deref().unwrap_or(TAG);
    registry
        .push_manifest(repository, tag, MANIFEST_MEDIA_TYPE, image.manifest.bytes())
        .with_context(|| format!("cannot push the manifest to {reference}"))
        .map(|digest| (digest, uploaded))
}
