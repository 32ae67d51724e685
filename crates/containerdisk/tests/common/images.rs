//! Disk images as `convert` builds them, pushed with our registry client.

use std::collections::BTreeMap;
use std::io::Write;

use containerdisk::Digest;
use containerdisk::image::{Image, MANIFEST_MEDIA_TYPE};
use containerdisk::layer::DiskLayer;
use containerdisk::registry::{NoProgress, Registry};
use testkit::XorShift;

/// `len` pseudo-random bytes (incompressible) from `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    XorShift::new(seed).bytes(len)
}

/// A disk file and its containerDisk image, as `convert` builds them.
pub struct Converted {
    /// The disk's bytes.
    pub content: Vec<u8>,
    /// Its layer.
    pub layer: DiskLayer,
    /// Its image.
    pub image: Image,
    _file: tempfile::NamedTempFile,
}

pub fn converted(len: usize, seed: u64) -> Converted {
    let content = random_bytes(len, seed);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&content).unwrap();
    let layer = DiskLayer::new(file.reopen().unwrap(), "disk.qcow2", &mut |_| {}).unwrap();
    let labels = BTreeMap::from([("org.opencontainers.image.title".to_owned(), "t".to_owned())]);
    let image = Image::new(&layer, &labels);
    Converted {
        content,
        layer,
        image,
        _file: file,
    }
}

/// Pushes a converted image under `tag` with our push code.
pub fn push_converted(
    registry: &Registry,
    repository: &str,
    tag: &str,
    image: &Converted,
) -> Digest {
    registry
        .push_blob(repository, &image.layer, &mut NoProgress)
        .unwrap();
    registry
        .push_blob(repository, &image.image.config, &mut NoProgress)
        .unwrap();
    registry
        .push_manifest(
            repository,
            tag,
            MANIFEST_MEDIA_TYPE,
            image.image.manifest.bytes(),
        )
        .unwrap()
}
