//! Fetching a containerDisk's disk into a cache, against the real registry
//! (Debian's `docker-registry`, with and without htpasswd) and OCI layouts
//! written by our own code; images pushed by our own push code, and
//! hostile ones built by hand: path traversal, links, devices, no disk,
//! wrong digests. Nothing may ever be written outside the cache.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Recorder, converted, push_converted, random_bytes, require};
use containerdisk::auth::Credentials;
use containerdisk::image::MANIFEST_MEDIA_TYPE;
use containerdisk::pull::{
    CachedDisk, DiskSource, FetchOptions, ImageRef, PullError, fetch_disk, fetch_disk_with,
};
use containerdisk::registry::{NoProgress, Registry, RegistryError, RegistryOptions};
use containerdisk::{BlobSource, Digest, MemoryBlob, layout};
use serde_json::json;
use testkit::registry::TestRegistry;

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const USER: (&str, &str) = ("olive", "s3cret-pull-password");

fn start_registry(auth: Option<(&str, &str)>) -> TestRegistry {
    require("docker-registry", "docker-registry");
    if auth.is_some() {
        require("htpasswd", "apache2-utils");
    }
    TestRegistry::start(auth)
}

fn registry_options(credentials: Option<(&str, &str)>) -> RegistryOptions {
    RegistryOptions {
        credentials: credentials.map(|(user, password)| Credentials::new(user, password)),
        max_retries: 1,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        ..RegistryOptions::default()
    }
}

fn fetch_options() -> FetchOptions {
    FetchOptions {
        registry: registry_options(None),
        ..FetchOptions::default()
    }
}

fn source(
    server: &TestRegistry,
    repository: &str,
    reference: ImageRef,
    credentials: Option<(&str, &str)>,
) -> DiskSource {
    DiskSource::Registry {
        registry: server.host.clone(),
        repository: repository.into(),
        reference,
        credentials: credentials.map(|(user, password)| Credentials::new(user, password)),
        insecure: false,
    }
}

/// Pushes an image of `layers` (media type, bytes) by hand; returns the
/// manifest's digest and bytes.
fn push_layers(
    registry: &Registry,
    repository: &str,
    tag: &str,
    manifest_type: &str,
    layers: &[(&str, Vec<u8>)],
    architecture: &str,
) -> (Digest, Vec<u8>) {
    let config = MemoryBlob::new(
        serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .unwrap(),
    );
    registry
        .push_blob(repository, &config, &mut NoProgress)
        .unwrap();
    let config_type = if manifest_type == DOCKER_MANIFEST {
        "application/vnd.docker.container.image.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    let mut descriptors = Vec::new();
    for (media_type, bytes) in layers {
        let blob = MemoryBlob::new(bytes.clone());
        registry
            .push_blob(repository, &blob, &mut NoProgress)
            .unwrap();
        descriptors.push(json!({
            "mediaType": media_type,
            "digest": blob.digest(),
            "size": blob.size(),
        }));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config.digest(), "size": config.size()},
        "layers": descriptors,
    }))
    .unwrap();
    let digest = registry
        .push_manifest(repository, tag, manifest_type, &manifest)
        .unwrap();
    (digest, manifest)
}

/// One tar entry with a raw path (the tar crate refuses to write `..`).
fn tar_entry(path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    {
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn dir_entry(path: &str) -> Vec<u8> {
    tar_entry(path, tar::EntryType::Directory, &[], None)
}

fn file_entry(path: &str, data: &[u8]) -> Vec<u8> {
    tar_entry(path, tar::EntryType::Regular, data, None)
}

/// Every path under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            found.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

fn check_cached(disk: &CachedDisk, cache: &Path, content: &[u8]) {
    assert_eq!(disk.path, cache.join(disk.digest.hex()).join("disk.qcow2"));
    assert_eq!(std::fs::read(&disk.path).unwrap(), content);
    assert_eq!(disk.size, content.len() as u64);
    let mode = std::fs::metadata(&disk.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "the cached disk is writable: {mode:o}");
}

#[test]
fn fetches_by_tag_and_digest_and_a_cached_digest_needs_no_registry() {
    let mut server = start_registry(None);
    let registry = Registry::new(&server.host, registry_options(None)).unwrap();
    let repo = "olive2022/pull-test";
    let image = converted((3 << 20) + 1234, 7);
    let digest = push_converted(&registry, repo, "vmnetx", &image);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");

    let mut progress = Recorder::default();
    let tag = ImageRef::Tag("vmnetx".into());
    let first = fetch_disk_with(
        &source(&server, repo, tag.clone(), None),
        &cache,
        &fetch_options(),
        &mut progress,
    )
    .unwrap();
    assert!(!first.cache_hit);
    assert_eq!(first.digest, digest);
    assert_eq!(first.manifest, digest);
    assert_eq!(first.layer, *image.layer.digest());
    assert_eq!(first.entry, "disk/disk.qcow2");
    check_cached(&first, &cache, &image.content);
    assert_eq!(progress.advanced, image.layer.size());
    assert_eq!(progress.starts, [image.layer.size()]);
    assert_eq!(
        tree(&cache),
        [
            digest.hex().to_owned(),
            format!("{}/disk.qcow2", digest.hex()),
            format!("{}/image.json", digest.hex()),
        ]
    );

    // Again by tag: the manifest is asked for, the blob is not.
    let mut progress = Recorder::default();
    let again = fetch_disk(
        &source(&server, repo, tag.clone(), None),
        &cache,
        &mut progress,
    )
    .unwrap();
    assert!(again.cache_hit);
    assert_eq!(again.path, first.path);
    assert_eq!(progress.advanced, 0);

    // By digest, with the registry stopped: from the cache alone.
    server.stop();
    let by_digest = ImageRef::Digest(digest.clone());
    let hit = fetch_disk(
        &source(&server, repo, by_digest.clone(), None),
        &cache,
        &mut NoProgress,
    )
    .unwrap();
    assert!(hit.cache_hit);
    assert_eq!(
        (&hit.path, &hit.digest, &hit.layer, &hit.entry, hit.size),
        (
            &first.path,
            &first.digest,
            &first.layer,
            &first.entry,
            first.size
        )
    );
    // A tag cannot be resolved without the registry: a clear error.
    let error = fetch_disk_with(
        &source(&server, repo, tag, None),
        &cache,
        &fetch_options(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(error, PullError::Registry(_)) && error.to_string().contains(&server.host),
        "{error}"
    );
    // An unknown digest with the registry down: an error, nothing cached.
    let other = ImageRef::Digest(Digest::of(b"another manifest"));
    let fresh = root.path().join("fresh");
    assert!(
        fetch_disk_with(
            &source(&server, repo, other, None),
            &fresh,
            &fetch_options(),
            &mut NoProgress
        )
        .is_err()
    );
    assert!(!fresh.exists() || tree(&fresh).is_empty());

    // By digest into an empty cache, the registry back.
    server.restart();
    let cold = root.path().join("cold");
    let pulled = fetch_disk(
        &source(&server, repo, by_digest, None),
        &cold,
        &mut NoProgress,
    )
    .unwrap();
    assert!(!pulled.cache_hit);
    check_cached(&pulled, &cold, &image.content);
}

#[test]
fn fetches_from_an_oci_layout_and_checks_its_blobs() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("layout");
    let image = converted(700_000, 11);
    let uuid = "4fd5a6a4-8a2b-5c8e-9f3d-000000000001";
    let digest = layout::write(&dir, &image.image, &image.layer, uuid, &mut |_| {}).unwrap();
    let cache = root.path().join("cache");

    let by_name = DiskSource::parse(&format!("oci:{}:{uuid}", dir.display())).unwrap();
    let mut progress = Recorder::default();
    let disk = fetch_disk(&by_name, &cache, &mut progress).unwrap();
    assert!(!disk.cache_hit);
    assert_eq!(disk.digest, digest);
    assert_eq!(progress.advanced, image.layer.size());
    check_cached(&disk, &cache, &image.content);
    let by_digest = DiskSource::Layout {
        dir: dir.clone(),
        reference: ImageRef::Digest(digest.clone()),
    };
    assert!(
        fetch_disk(&by_digest, &cache, &mut NoProgress)
            .unwrap()
            .cache_hit
    );
    // As a recipe names it.
    let values = DiskSource::from_chart_values(
        &format!("oci:{}", dir.display()),
        uuid,
        None,
        Some(digest.as_str()),
        None,
    )
    .unwrap();
    assert!(
        fetch_disk(&values, &cache, &mut NoProgress)
            .unwrap()
            .cache_hit
    );

    // Unknown names and missing layouts: clear errors.
    let unknown = DiskSource::parse(&format!("oci:{}:no-such-name", dir.display())).unwrap();
    let error = fetch_disk(&unknown, &cache, &mut NoProgress).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no image named \"no-such-name\""),
        "{error}"
    );
    let missing = DiskSource::parse(&format!("oci:{}/absent:{uuid}", dir.display())).unwrap();
    let error = fetch_disk(&missing, &cache, &mut NoProgress).unwrap_err();
    assert!(error.to_string().contains("index.json"), "{error}");

    // A layer blob whose bytes changed: refused, nothing cached.
    let blob = layout::blob_path(&dir, image.layer.digest());
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let fresh = root.path().join("fresh");
    let error = fetch_disk(&by_name, &fresh, &mut NoProgress).unwrap_err();
    assert!(
        matches!(error, PullError::Layout { .. })
            && error.to_string().contains("holds content of digest"),
        "{error}"
    );
    assert!(tree(&fresh).is_empty(), "{:?}", tree(&fresh));
}

#[test]
fn credentials_are_used_and_bad_ones_are_clear_errors() {
    let server = start_registry(Some(USER));
    let registry = Registry::new(&server.host, registry_options(Some(USER))).unwrap();
    let repo = "private/disk";
    let image = converted(200_000, 5);
    let digest = push_converted(&registry, repo, "v1", &image);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let reference = ImageRef::Digest(digest.clone());

    let error = fetch_disk_with(
        &source(&server, repo, reference.clone(), None),
        &cache,
        &fetch_options(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            PullError::Registry(RegistryError::NoCredentials { .. })
        ),
        "{error}"
    );
    let wrong = ("olive", "not-the-password");
    let error = fetch_disk_with(
        &source(&server, repo, reference.clone(), Some(wrong)),
        &cache,
        &fetch_options(),
        &mut NoProgress,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, PullError::Registry(RegistryError::Auth { .. })),
        "{message}"
    );
    assert!(!message.contains(wrong.1), "the password leaked: {message}");
    assert!(!cache.exists() || tree(&cache).is_empty());

    let source = source(&server, repo, reference, Some(USER));
    assert!(!format!("{source:?}").contains(USER.1));
    let disk = fetch_disk(&source, &cache, &mut NoProgress).unwrap();
    check_cached(&disk, &cache, &image.content);
}

#[test]
fn docker_manifests_gzip_layers_indexes_and_several_layers() {
    let server = start_registry(None);
    let registry = Registry::new(&server.host, registry_options(None)).unwrap();
    let repo = "kubevirt/like";
    let amd64_disk = random_bytes(300_000, 21);
    let arm64_disk = random_bytes(1000, 22);
    let layer_of = |disk: &[u8]| {
        gzip(&tar_of(&[
            dir_entry("./"),
            dir_entry("./disk/"),
            file_entry("./disk/disk.img", disk),
        ]))
    };
    // Docker schema 2, one gzip layer, KubeVirt's file name.
    let (amd64, amd64_manifest) = push_layers(
        &registry,
        repo,
        "amd64",
        DOCKER_MANIFEST,
        &[(DOCKER_GZIP_LAYER, layer_of(&amd64_disk))],
        "amd64",
    );
    let (arm64, arm64_manifest) = push_layers(
        &registry,
        repo,
        "arm64",
        DOCKER_MANIFEST,
        &[(DOCKER_GZIP_LAYER, layer_of(&arm64_disk))],
        "arm64",
    );
    let entry = |digest: &Digest, bytes: &[u8], arch: &str| {
        json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": digest,
            "size": bytes.len(),
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [entry(&arm64, &arm64_manifest, "arm64"), entry(&amd64, &amd64_manifest, "amd64")],
    }))
    .unwrap();
    let list_digest = registry
        .push_manifest(repo, "multi", DOCKER_LIST, &list)
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let disk = fetch_disk(
        &source(&server, repo, ImageRef::Tag("multi".into()), None),
        &cache,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(disk.digest, list_digest);
    assert_eq!(disk.manifest, amd64);
    assert_eq!(disk.entry, "disk/disk.img");
    check_cached(&disk, &cache, &amd64_disk);

    // An index without linux/amd64.
    let arm_only = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entry(&arm64, &arm64_manifest, "arm64")],
    }))
    .unwrap();
    registry
        .push_manifest(repo, "arm-only", OCI_INDEX, &arm_only)
        .unwrap();
    let error = fetch_disk(
        &source(&server, repo, ImageRef::Tag("arm-only".into()), None),
        &cache,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("no linux/amd64 image")
            && error.to_string().contains("linux/arm64"),
        "{error}"
    );

    // Several layers: a base layer with other files (links among them,
    // never written), then the disk in an uncompressed layer.
    let base = tar_of(&[
        dir_entry("etc/"),
        file_entry("etc/hostname", b"base\n"),
        tar_entry(
            "etc/localtime",
            tar::EntryType::Symlink,
            &[],
            Some("/usr/share/zoneinfo/UTC"),
        ),
    ]);
    let disk_layer = tar_of(&[
        dir_entry("disk/"),
        file_entry("disk/disk.qcow2", &amd64_disk),
    ]);
    let (layered, _) = push_layers(
        &registry,
        repo,
        "layered",
        MANIFEST_MEDIA_TYPE,
        &[
            (OCI_LAYER, base),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&disk_layer),
            ),
        ],
        "amd64",
    );
    let disk = fetch_disk(
        &source(&server, repo, ImageRef::Tag("layered".into()), None),
        &cache,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(disk.digest, layered);
    check_cached(&disk, &cache, &amd64_disk);
    let mut expected = vec![];
    for digest in [&list_digest, &layered] {
        for name in ["", "/disk.qcow2", "/image.json"] {
            expected.push(format!("{}{name}", digest.hex()));
        }
    }
    expected.sort();
    assert_eq!(tree(&cache), expected, "only the disks are in the cache");
}

#[test]
fn hostile_images_are_refused_and_nothing_is_written_outside_the_cache() {
    let server = start_registry(None);
    let registry = Registry::new(&server.host, registry_options(None)).unwrap();
    let repo = "hostile/images";
    let payload = b"attacker controlled bytes".to_vec();
    let disk = random_bytes(5000, 3);
    type Layers<'a> = Vec<(&'a str, Vec<u8>)>;
    let cases: Vec<(&str, Layers, &str)> = vec![
        (
            "traversal",
            vec![(
                OCI_LAYER,
                tar_of(&[
                    file_entry("../../etc/passwd", &payload),
                    dir_entry("disk/"),
                    file_entry("disk/disk.qcow2", &disk),
                ]),
            )],
            "a `..` path in the layer",
        ),
        (
            "traversal-inside-disk",
            vec![(
                OCI_LAYER,
                tar_of(&[file_entry("disk/../../../pwned", &payload)]),
            )],
            "a `..` path in the layer",
        ),
        (
            "absolute",
            vec![(
                OCI_LAYER,
                tar_of(&[file_entry("/disk/disk.qcow2", &payload)]),
            )],
            "an absolute path in the layer",
        ),
        (
            "symlink",
            vec![(
                OCI_LAYER,
                tar_of(&[
                    dir_entry("disk/"),
                    tar_entry(
                        "disk/disk.qcow2",
                        tar::EntryType::Symlink,
                        &[],
                        Some("/etc/shadow"),
                    ),
                ]),
            )],
            "\"disk/disk.qcow2\" is a link (to \"/etc/shadow\")",
        ),
        (
            "hardlink",
            vec![(
                OCI_LAYER,
                tar_of(&[tar_entry(
                    "disk/disk.qcow2",
                    tar::EntryType::Link,
                    &[],
                    Some("/etc/shadow"),
                )]),
            )],
            "is a link",
        ),
        (
            "device",
            vec![(
                OCI_LAYER,
                tar_of(&[tar_entry("disk/console", tar::EntryType::Char, &[], None)]),
            )],
            "character device",
        ),
        (
            "no-disk",
            vec![(
                OCI_LAYER,
                tar_of(&[
                    dir_entry("disk/"),
                    file_entry("disk/sub/nested.qcow2", &disk),
                    file_entry("README", b"no disk here"),
                ]),
            )],
            "holds no disk",
        ),
        (
            "not-a-tar",
            vec![(OCI_LAYER, random_bytes(4096, 99))],
            "tar archive",
        ),
        (
            "zstd",
            vec![(
                "application/vnd.oci.image.layer.v1.tar+zstd",
                random_bytes(100, 1),
            )],
            "unsupported layer type",
        ),
        ("no-layers", vec![], "no layers"),
    ];
    for (tag, layers, expected) in cases {
        let (digest, _) = push_layers(&registry, repo, tag, MANIFEST_MEDIA_TYPE, &layers, "amd64");
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("a").join("b").join("cache");
        for reference in [ImageRef::Tag(tag.into()), ImageRef::Digest(digest.clone())] {
            let error = fetch_disk(
                &source(&server, repo, reference, None),
                &cache,
                &mut NoProgress,
            )
            .unwrap_err();
            assert!(error.to_string().contains(expected), "{tag}: {error}");
        }
        let left = tree(root.path());
        let allowed = ["a", "a/b", "a/b/cache"];
        assert!(
            left.iter().all(|p| allowed.contains(&p.as_str())),
            "{tag}: left behind {left:?}"
        );
    }

    // A disk over the bound.
    let big = tar_of(&[file_entry("disk/disk.qcow2", &random_bytes(3 << 20, 4))]);
    push_layers(
        &registry,
        repo,
        "big",
        MANIFEST_MEDIA_TYPE,
        &[(OCI_LAYER, big)],
        "amd64",
    );
    let root = tempfile::tempdir().unwrap();
    let small = FetchOptions {
        max_disk_size: 1 << 20,
        ..fetch_options()
    };
    let error = fetch_disk_with(
        &source(&server, repo, ImageRef::Tag("big".into()), None),
        root.path(),
        &small,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(error.to_string().contains("more than"), "{error}");
    assert!(tree(root.path()).is_empty(), "{:?}", tree(root.path()));
}

#[test]
fn a_blob_with_the_wrong_content_is_refused() {
    let server = start_registry(None);
    let registry = Registry::new(&server.host, registry_options(None)).unwrap();
    let repo = "tampered/disk";
    let image = converted(100_000, 8);
    let digest = push_converted(&registry, repo, "v1", &image);
    // Change the layer's bytes in the registry's own storage.
    let hex = image.layer.digest().hex();
    let data: PathBuf = server
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 2000;
    bytes[last] ^= 1;
    File::create(&data).unwrap().write_all(&bytes).unwrap();
    let root = tempfile::tempdir().unwrap();
    let error = fetch_disk_with(
        &source(&server, repo, ImageRef::Digest(digest), None),
        root.path(),
        &fetch_options(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            PullError::Registry(RegistryError::ContentMismatch { .. })
        ),
        "{error}"
    );
    assert!(tree(root.path()).is_empty(), "{:?}", tree(root.path()));
}

#[test]
fn pulls_over_https_with_the_registry_ca_as_the_cloudlet_does() {
    require("openssl", "openssl");
    let ca = testkit::tls::TestCa::new("olive2022 test CA");
    let server = TestRegistry::start_with(None, Some(&ca));
    let trusted = RegistryOptions {
        ca_file: Some(ca.ca_pem.clone()),
        ..registry_options(None)
    };
    let registry = Registry::new(&server.host, trusted.clone()).unwrap();
    let image = converted(100_000, 13);
    let digest = push_converted(&registry, "tls/pull", "v1", &image);
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let tag = ImageRef::Tag("v1".into());

    let untrusted = fetch_disk_with(
        &source(&server, "tls/pull", tag.clone(), None),
        &cache,
        &fetch_options(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        untrusted.to_string().contains(&server.host)
            && untrusted.to_string().contains("--registry-ca"),
        "without the CA a loopback registry is plain HTTP, which a TLS one refuses: {untrusted}"
    );
    let options = FetchOptions {
        registry: trusted,
        ..FetchOptions::default()
    };
    let disk = fetch_disk_with(
        &source(&server, "tls/pull", tag, None),
        &cache,
        &options,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(disk.digest, digest);
    check_cached(&disk, &cache, &image.content);
}
