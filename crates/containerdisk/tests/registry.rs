//! The registry client against a real CNCF registry (Debian's
//! `docker-registry`), checked with an independent client (`skopeo`), plus
//! faults: cut connections, 500s, wrong digests, bad credentials; and the
//! reference and auth-file parsers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cut, CutProxy, FakeConfig, FakeRegistry, Recorder, require, skopeo};
use containerdisk::auth::{self, AuthEnv, Credentials};
use containerdisk::credentials::{self, CredentialOrigin, HelperError};
use containerdisk::reference::{self, ImageReference};
use containerdisk::registry::{NoProgress, Registry, RegistryError, RegistryOptions};
use containerdisk::{BlobSource, Digest, MemoryBlob};
use testkit::XorShift;
use testkit::credential_helper::{PASS_HELPER, PassStore};
use testkit::registry::TestRegistry;
use testkit::tls::TestCa;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    XorShift::new(seed).bytes(len)
}

/// The real registry, after checking the tools the tests need.
fn start_registry(auth: Option<(&str, &str)>) -> TestRegistry {
    require("docker-registry", "docker-registry");
    require("skopeo", "skopeo");
    if auth.is_some() {
        require("htpasswd", "apache2-utils");
    }
    TestRegistry::start(auth)
}

/// Options for tests: small chunks, short pauses.
fn options(chunk_size: u64) -> RegistryOptions {
    RegistryOptions {
        chunk_size,
        max_retries: 3,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(10),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..RegistryOptions::default()
    }
}

fn with_credentials(mut options: RegistryOptions, user: &str, password: &str) -> RegistryOptions {
    options.credentials = Some(Credentials::new(user, password));
    options
}

/// A config and an OCI manifest for one layer.
fn image_for(layer: &MemoryBlob) -> (MemoryBlob, Vec<u8>) {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"test": "containerdisk"}},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest()]},
    });
    let config = MemoryBlob::new(serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.digest(),
            "size": config.size(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer.digest(),
            "size": layer.size(),
        }],
    });
    (config, serde_json::to_vec(&manifest).unwrap())
}

fn pull(registry: &Registry, repository: &str, digest: &Digest) -> Vec<u8> {
    let mut out = Vec::new();
    let mut progress = Recorder::default();
    let n = registry
        .pull_blob(repository, digest, &mut out, &mut progress)
        .unwrap();
    assert_eq!(n, out.len() as u64);
    assert_eq!(progress.advanced, n);
    out
}

#[test]
fn push_and_pull_with_a_real_registry_and_skopeo_agrees() {
    let server = start_registry(None);
    let registry = Registry::new(&server.host, options(512 << 10)).unwrap();
    assert!(
        registry.is_plain_http(),
        "loopback registries get plain HTTP"
    );
    let repo = "olive/push-test";
    let layer = MemoryBlob::new(random_bytes((3 << 20) + 12345, 1));
    let (config, manifest) = image_for(&layer);

    assert!(!registry.blob_exists(repo, layer.digest()).unwrap());
    let mut progress = Recorder::default();
    assert!(
        registry.push_blob(repo, &layer, &mut progress).unwrap(),
        "uploaded"
    );
    assert_eq!(progress.starts, vec![layer.size()]);
    assert_eq!(progress.advanced, layer.size());
    assert!(progress.retries.is_empty(), "{:?}", progress.retries);
    assert!(registry.push_blob(repo, &config, &mut NoProgress).unwrap());
    assert!(registry.blob_exists(repo, layer.digest()).unwrap());

    let digest = registry
        .push_manifest(repo, "v1", MANIFEST, &manifest)
        .unwrap();
    assert_eq!(digest, Digest::of(&manifest));

    // An independent client sees exactly our manifest, and reads the config.
    let reference = format!("docker://{}/{repo}:v1", server.host);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert_eq!(
        String::from_utf8_lossy(&raw).trim_end(),
        String::from_utf8_lossy(&manifest)
    );
    let inspected: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &reference])).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Labels"]["test"], "containerdisk");
    assert_eq!(inspected["Layers"], serde_json::json!([layer.digest()]));

    // Our own pulls give back the same bytes.
    let (media_type, bytes, pulled_digest) =
        registry.pull_manifest(repo, "v1", &[MANIFEST]).unwrap();
    assert_eq!(
        (media_type.as_str(), &bytes, &pulled_digest),
        (MANIFEST, &manifest, &digest)
    );
    let (_, by_digest, _) = registry.pull_manifest(repo, digest.as_str(), &[]).unwrap();
    assert_eq!(by_digest, manifest);
    assert_eq!(pull(&registry, repo, layer.digest()), layer.bytes());
    assert_eq!(pull(&registry, repo, config.digest()), config.bytes());

    // A second push skips the blob.
    let mut progress = Recorder::default();
    assert!(!registry.push_blob(repo, &layer, &mut progress).unwrap());
    assert_eq!(progress.skipped, 1);
    assert!(progress.starts.is_empty());

    // Unknown things are clear errors.
    let missing = Digest::of(b"missing");
    let error = registry
        .pull_blob(repo, &missing, &mut Vec::new(), &mut NoProgress)
        .unwrap_err();
    assert!(error.to_string().contains("answered 404"), "{error}");
    let error = registry.pull_manifest(repo, "nope", &[]).unwrap_err();
    assert!(error.to_string().contains("MANIFEST_UNKNOWN"), "{error}");
    assert!(matches!(
        registry.push_manifest("Bad/Repo", "v1", MANIFEST, &manifest),
        Err(RegistryError::InvalidRepository(_))
    ));
    assert!(matches!(
        registry.push_manifest(repo, "-bad", MANIFEST, &manifest),
        Err(RegistryError::InvalidTag(_))
    ));
}

#[test]
fn empty_and_exact_chunk_blobs() {
    let server = start_registry(None);
    let registry = Registry::new(&server.host, options(1024)).unwrap();
    for (i, len) in [0usize, 1, 1024, 2048, 1025].into_iter().enumerate() {
        let blob = MemoryBlob::new(random_bytes(len, 10 + i as u64));
        assert!(
            registry.push_blob("sizes", &blob, &mut NoProgress).unwrap(),
            "{len}"
        );
        assert_eq!(
            pull(&registry, "sizes", blob.digest()),
            blob.bytes(),
            "{len}"
        );
    }
}

#[test]
fn htpasswd_registry_accepts_credentials_and_rejects_others_clearly() {
    let server = start_registry(Some(("pusher", "s3cret-pass")));
    let repo = "private/olive";
    let layer = MemoryBlob::new(random_bytes(300_000, 2));
    let (config, manifest) = image_for(&layer);

    let good = Registry::new(
        &server.host,
        with_credentials(options(100_000), "pusher", "s3cret-pass"),
    )
    .unwrap();
    assert!(good.push_blob(repo, &layer, &mut NoProgress).unwrap());
    assert!(good.push_blob(repo, &config, &mut NoProgress).unwrap());
    let digest = good
        .push_manifest(repo, "latest", MANIFEST, &manifest)
        .unwrap();
    assert_eq!(
        good.pull_manifest(repo, "latest", &[MANIFEST]).unwrap().2,
        digest
    );
    assert_eq!(pull(&good, repo, layer.digest()), layer.bytes());
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "pusher:s3cret-pass",
        &format!("docker://{}/{repo}:latest", server.host),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&raw).trim_end(),
        String::from_utf8_lossy(&manifest)
    );

    let wrong = Registry::new(
        &server.host,
        with_credentials(options(100_000), "pusher", "wrong-pass"),
    )
    .unwrap();
    let start = Instant::now();
    let error = wrong.push_blob(repo, &layer, &mut NoProgress).unwrap_err();
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        matches!(error, RegistryError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(
        message.contains(&format!("authentication failed for {} (401)", server.host)),
        "{message}"
    );
    assert!(
        !message.contains("wrong-pass") && !format!("{error:?}").contains("wrong-pass"),
        "{message}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "no retries on 401"
    );

    let anonymous = Registry::new(&server.host, options(100_000)).unwrap();
    let error = anonymous.pull_manifest(repo, "latest", &[]).unwrap_err();
    assert!(
        matches!(error, RegistryError::NoCredentials { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains(&format!("no credentials for {}", server.host)),
        "{message}"
    );
    assert!(message.contains("REGISTRY_AUTH_FILE"), "{message}");
}

#[test]
fn a_cut_upload_is_retried_and_completes() {
    let server = start_registry(None);
    let proxy = CutProxy::start(&server.host, Cut::OnceAfter(1 << 20));
    let registry = Registry::new(&proxy.host, options(256 << 10)).unwrap();
    let layer = MemoryBlob::new(random_bytes(3 << 20, 3));
    let mut progress = Recorder::default();
    assert!(
        registry
            .push_blob("cut/once", &layer, &mut progress)
            .unwrap()
    );
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(progress.retries.len(), 1, "{:?}", progress.retries);
    assert_eq!(progress.retries[0].0, 1);
    assert_eq!(
        progress.advanced,
        layer.size(),
        "progress counts each byte once"
    );
    // The CNCF registry drops an upload that received part of a chunk, so
    // the push starts again from 0 here; the fake registry test below
    // checks the resumption in the middle of a chunk.
    let uploaded = proxy.uploaded.load(std::sync::atomic::Ordering::SeqCst);
    assert!(uploaded > layer.size(), "{uploaded}");
    let direct = Registry::new(&server.host, options(1 << 20)).unwrap();
    assert_eq!(pull(&direct, "cut/once", layer.digest()), layer.bytes());
}

/// Restarts the registry once, from the progress callback, when `at` bytes
/// are stored; `forget` also deletes the open uploads.
struct RestartOnce<'a> {
    server: &'a mut TestRegistry,
    at: u64,
    forget: bool,
    stored: u64,
    restarted: bool,
    retries: Vec<String>,
}

impl containerdisk::registry::PushProgress for RestartOnce<'_> {
    fn start(&mut self, _total: Option<u64>) {}

    fn advance(&mut self, bytes: u64) {
        self.stored += bytes;
        if self.stored >= self.at && !self.restarted {
            self.restarted = true;
            self.server.stop();
            if self.forget {
                let repositories = self
                    .server
                    .storage()
                    .join("docker/registry/v2/repositories");
                std::fs::remove_dir_all(repositories.join("restart/me/_uploads")).unwrap();
            }
            self.server.restart();
        }
    }

    fn retry(&mut self, _attempt: u32, error: &dyn std::error::Error) {
        self.retries.push(error.to_string());
    }
}

#[test]
fn a_registry_restart_mid_upload_resumes_or_starts_again() {
    for forget in [false, true] {
        let mut server = start_registry(None);
        let proxy = CutProxy::start(&server.host, Cut::OnceAfter(u64::MAX));
        let registry = Registry::new(&proxy.host, options(256 << 10)).unwrap();
        let layer = MemoryBlob::new(random_bytes(2 << 20, 9));
        let mut progress = RestartOnce {
            server: &mut server,
            at: 1 << 20,
            forget,
            stored: 0,
            restarted: false,
            retries: Vec::new(),
        };
        assert!(
            registry
                .push_blob("restart/me", &layer, &mut progress)
                .unwrap()
        );
        assert!(progress.restarted);
        assert_eq!(progress.stored, layer.size());
        let uploaded = proxy.uploaded.load(std::sync::atomic::Ordering::SeqCst);
        if forget {
            // The upload is gone: a new one from 0.
            assert!(uploaded > layer.size() + (1 << 20), "{uploaded}");
            assert!(
                progress.retries.iter().any(|r| r.contains("404")),
                "{:?}",
                progress.retries
            );
        } else {
            // The same upload continues: every byte is sent once.
            assert!(uploaded < layer.size() + (64 << 10), "{uploaded}");
        }
        let direct = Registry::new(&server.host, options(1 << 20)).unwrap();
        assert_eq!(pull(&direct, "restart/me", layer.digest()), layer.bytes());
    }
}

#[test]
fn a_cut_upload_resumes_where_the_registry_stopped() {
    let fake = FakeRegistry::start(FakeConfig {
        cut_once_at: Some((1 << 20) + 777),
        ..FakeConfig::default()
    });
    let registry = Registry::new(&fake.host, options(256 << 10)).unwrap();
    let layer = MemoryBlob::new(random_bytes((2 << 20) + 99, 4));
    let mut progress = Recorder::default();
    assert!(
        registry
            .push_blob("resume/me", &layer, &mut progress)
            .unwrap()
    );
    assert_eq!(progress.retries.len(), 1, "{:?}", progress.retries);
    assert_eq!(progress.advanced, layer.size());
    let state = fake.state.lock().unwrap();
    assert_eq!(state.blobs[layer.digest().as_str()], layer.bytes());
    // Every byte reached the registry once: nothing was sent again.
    assert_eq!(state.patch_bytes, layer.size(), "{:?}", state.requests);
    assert!(
        state
            .requests
            .iter()
            .any(|r| r.starts_with("GET /v2/resume/me/blobs/uploads/")),
        "asked where the upload stood: {:?}",
        state.requests
    );
}

#[test]
fn a_broken_download_resumes_with_a_range_request() {
    let fake = FakeRegistry::start(FakeConfig {
        cut_download_once_at: Some(300_001),
        ..FakeConfig::default()
    });
    let registry = Registry::new(&fake.host, options(1 << 20)).unwrap();
    let blob = MemoryBlob::new(random_bytes(1_000_000, 8));
    assert!(
        registry
            .push_blob("down/load", &blob, &mut NoProgress)
            .unwrap()
    );
    let mut out = Vec::new();
    let mut progress = Recorder::default();
    let n = registry
        .pull_blob("down/load", blob.digest(), &mut out, &mut progress)
        .unwrap();
    assert_eq!((n, out.as_slice()), (blob.size(), blob.bytes()));
    assert_eq!(progress.retries.len(), 1, "{:?}", progress.retries);
    assert_eq!(progress.advanced, blob.size(), "each byte once");
    assert_eq!(fake.state.lock().unwrap().range_requests, 1);
}

#[test]
fn registries_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Registry>();
}

#[test]
fn a_connection_that_always_breaks_gives_a_clear_error_after_the_retries() {
    let server = start_registry(None);
    let proxy = CutProxy::start(&server.host, Cut::EveryConnectionAfter(64 << 10));
    let registry = Registry::new(&proxy.host, options(256 << 10)).unwrap();
    let layer = MemoryBlob::new(random_bytes(1 << 20, 5));
    let mut progress = Recorder::default();
    let start = Instant::now();
    let error = registry
        .push_blob("cut/always", &layer, &mut progress)
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(error, RegistryError::GaveUp { attempts: 4, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains(&proxy.host) && message.contains("gave up after 4 attempts"),
        "{message}"
    );
    assert_eq!(
        progress.retries.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn server_errors_are_retried_then_reported() {
    let fake = FakeRegistry::start(FakeConfig {
        always_500: true,
        ..FakeConfig::default()
    });
    let registry = Registry::new(&fake.host, options(1 << 20)).unwrap();
    let blob = MemoryBlob::new(b"some bytes".to_vec());
    let mut progress = Recorder::default();
    let error = registry
        .push_blob("five/hundred", &blob, &mut progress)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "registry {} answered 500 Internal Server Error to HEAD /v2/five/hundred/blobs/",
            fake.host
        )),
        "{message}"
    );
    assert_eq!(progress.retries.len(), 3);
    assert_eq!(fake.state.lock().unwrap().requests.len(), 4);

    let once = RegistryOptions {
        max_retries: 0,
        ..options(1 << 20)
    };
    let registry = Registry::new(&fake.host, once).unwrap();
    let error = registry
        .push_manifest("five/hundred", "t", MANIFEST, b"{}")
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Status { code: 500, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        message.contains("answered 500 Internal Server Error to PUT /v2/five/hundred/manifests/t"),
        "{message}"
    );
    assert!(
        message.contains("UNKNOWN: unknown error"),
        "the registry's explanation: {message}"
    );
}

#[test]
fn a_wrong_digest_from_the_registry_is_an_error() {
    let fake = FakeRegistry::start(FakeConfig {
        wrong_digest: true,
        ..FakeConfig::default()
    });
    let registry = Registry::new(&fake.host, options(1000)).unwrap();
    let blob = MemoryBlob::new(random_bytes(2500, 6));
    let error = registry
        .push_blob("wrong/digest", &blob, &mut NoProgress)
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::WrongDigest { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    eprintln!("{message}");
    assert!(message.contains(blob.digest().as_str()), "{message}");
    assert!(
        message.contains(&format!("sha256:{}", "0".repeat(64))),
        "{message}"
    );
}

#[test]
fn bearer_tokens_are_fetched_with_the_credentials_and_cached() {
    let fake = FakeRegistry::start(FakeConfig {
        bearer: Some(("robot".into(), "t0ken-secret".into())),
        ..FakeConfig::default()
    });
    let registry = Registry::new(
        &fake.host,
        with_credentials(options(4096), "robot", "t0ken-secret"),
    )
    .unwrap();
    let layer = MemoryBlob::new(random_bytes(20_000, 7));
    let (config, manifest) = image_for(&layer);
    assert!(
        registry
            .push_blob("team/app", &layer, &mut NoProgress)
            .unwrap()
    );
    assert!(
        registry
            .push_blob("team/app", &config, &mut NoProgress)
            .unwrap()
    );
    registry
        .push_manifest("team/app", "latest", MANIFEST, &manifest)
        .unwrap();
    assert_eq!(
        fake.state.lock().unwrap().token_requests,
        1,
        "one token for the push scope"
    );
    assert_eq!(pull(&registry, "team/app", layer.digest()), layer.bytes());
    let (media_type, bytes, _) = registry.pull_manifest("team/app", "latest", &[]).unwrap();
    assert_eq!((media_type.as_str(), bytes), (MANIFEST, manifest));
    assert_eq!(
        fake.state.lock().unwrap().token_requests,
        2,
        "one more for the pull scope"
    );

    let wrong = Registry::new(
        &fake.host,
        with_credentials(options(4096), "robot", "bad-secret"),
    )
    .unwrap();
    let error = wrong
        .push_blob("team/app", &layer, &mut NoProgress)
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("bad-secret"), "{error}");
    assert!(!format!("{error:?}").contains("fake-token"), "{error:?}");

    let anonymous = Registry::new(&fake.host, options(4096)).unwrap();
    let error = anonymous
        .blob_exists("team/app", layer.digest())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("no credentials for {}", fake.host)),
        "{error}"
    );
}

#[test]
fn connection_refused_is_clear_and_quick() {
    let mut server = start_registry(None);
    let host = server.host.clone();
    server.stop();
    let registry = Registry::new(&host, options(1 << 20)).unwrap();
    let start = Instant::now();
    let error = registry.blob_exists("gone", &Digest::of(b"")).unwrap_err();
    eprintln!("{error}");
    assert!(matches!(error, RegistryError::Connect { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot connect to registry {host}:")),
        "{error}"
    );
    assert!(error.is_retryable());
    let error = registry
        .push_blob("gone", &MemoryBlob::new(vec![1]), &mut NoProgress)
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::GaveUp { attempts: 4, .. }),
        "{error:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn plain_http_only_for_loopback_or_when_allowed() {
    for (host, plain) in [
        ("localhost:5000", true),
        ("127.0.0.1:5000", true),
        ("[::1]:5000", true),
        ("registry.example.org", false),
        ("10.0.0.1:5000", false),
    ] {
        assert_eq!(
            Registry::new(host, RegistryOptions::default())
                .unwrap()
                .is_plain_http(),
            plain,
            "{host}"
        );
    }
    let insecure = RegistryOptions {
        insecure: true,
        ..RegistryOptions::default()
    };
    assert!(
        Registry::new("registry.example.org:5000", insecure)
            .unwrap()
            .is_plain_http()
    );
    for bad in [
        "",
        "exa mple.org",
        "host:port",
        "host/path",
        "[::1",
        "-bad.org",
    ] {
        assert!(
            matches!(
                Registry::new(bad, RegistryOptions::default()),
                Err(RegistryError::InvalidRegistry { .. })
            ),
            "{bad:?}"
        );
    }
    let defaults = RegistryOptions::default();
    assert_eq!((defaults.chunk_size, defaults.max_retries), (16 << 20, 5));
}

// ---- references ----

#[test]
fn references_parse_like_docker_with_an_explicit_registry() {
    let digest = Digest::of(b"x");
    let valid: &[(&str, &str, &str, Option<&str>, bool)] = &[
        (
            "localhost:5000/olive",
            "localhost:5000",
            "olive",
            None,
            false,
        ),
        (
            "localhost/olive:latest",
            "localhost",
            "olive",
            Some("latest"),
            false,
        ),
        (
            "quay.io/cmusatyalab/olive2022:v1.2_3-rc",
            "quay.io",
            "cmusatyalab/olive2022",
            Some("v1.2_3-rc"),
            false,
        ),
        (
            "registry.example.org:443/a/b/c",
            "registry.example.org:443",
            "a/b/c",
            None,
            false,
        ),
        (
            "127.0.0.1:5000/x.y/z__w/a-b--c:T",
            "127.0.0.1:5000",
            "x.y/z__w/a-b--c",
            Some("T"),
            false,
        ),
        (
            "[::1]:5000/olive:latest",
            "[::1]:5000",
            "olive",
            Some("latest"),
            false,
        ),
        ("[fe80::1]/olive", "[fe80::1]", "olive", None, false),
        (
            "gitlab.example:5050/group/project/disk",
            "gitlab.example:5050",
            "group/project/disk",
            None,
            false,
        ),
        (
            "localhost:5000/olive@DIGEST",
            "localhost:5000",
            "olive",
            None,
            true,
        ),
        (
            "localhost:5000/olive:tag@DIGEST",
            "localhost:5000",
            "olive",
            Some("tag"),
            true,
        ),
        (
            "Registry.Example.ORG/olive",
            "Registry.Example.ORG",
            "olive",
            None,
            false,
        ),
    ];
    for &(text, registry, repository, tag, with_digest) in valid {
        let text = text.replace("DIGEST", digest.as_str());
        let parsed = ImageReference::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.registry, registry, "{text}");
        assert_eq!(parsed.repository, repository, "{text}");
        assert_eq!(parsed.tag.as_deref(), tag, "{text}");
        assert_eq!(
            parsed.digest.as_ref(),
            with_digest.then_some(&digest),
            "{text}"
        );
        assert_eq!(parsed.to_string(), text, "round trip");
        assert_eq!(text.parse::<ImageReference>().unwrap(), parsed);
    }
    let long_tag = "t".repeat(129);
    let long_name = format!("localhost/{}", "a".repeat(250));
    let invalid: &[&str] = &[
        "",
        "olive",
        "olive:latest",
        "library/ubuntu",
        "docker/olive:1",
        "localhost:5000",
        "localhost:5000/",
        "localhost:5000/Olive",
        "localhost:5000/olive/",
        "localhost:5000//olive",
        "localhost:5000/-olive",
        "localhost:5000/olive-",
        "localhost:5000/a..b",
        "localhost:5000/a___b",
        "localhost:5000/a_-b",
        "localhost:5000/olive:",
        "localhost:5000/olive:.tag",
        "localhost:5000/olive:-tag",
        "localhost:5000/olive:t@g",
        "localhost:5000/olive@sha256:abc",
        "localhost:5000/olive@md5:00",
        "localhost:99999/olive",
        "localhost:/olive",
        "local_host.org/olive",
        "[::1/olive",
        "[not-v6]:5000/olive",
        "exa mple.org/olive",
        "-bad.org/olive",
    ];
    for text in invalid.iter().copied().chain([
        format!("localhost/olive:{long_tag}").as_str(),
        long_name.as_str(),
    ]) {
        let error = ImageReference::parse(text).expect_err(text);
        assert!(!error.to_string().is_empty());
    }
    assert!(
        ImageReference::parse("olive")
            .unwrap_err()
            .to_string()
            .contains("names no registry"),
        "clear message"
    );
    assert!(reference::is_valid_tag(&"t".repeat(128)));
    assert!(reference::is_valid_repository("a/b-c/d.e"));
}

#[test]
fn registry_of_and_loopback_hosts() {
    assert_eq!(
        reference::registry_of("localhost:5000/olive"),
        "localhost:5000"
    );
    assert_eq!(reference::registry_of("quay.io/a/b"), "quay.io");
    assert_eq!(reference::registry_of("quay.io"), "quay.io");
    assert_eq!(reference::registry_of("[::1]:5000/x"), "[::1]:5000");
    for host in [
        "localhost",
        "localhost:5000",
        "LOCALHOST",
        "127.0.0.1",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:5000",
        "::1",
    ] {
        assert!(reference::is_loopback(host), "{host}");
    }
    for host in [
        "example.org",
        "10.0.0.1:5000",
        "128.0.0.1",
        "[::2]:5000",
        "localhost.example.org",
        "[::1",
    ] {
        assert!(!reference::is_loopback(host), "{host}");
    }
}

// ---- auth files ----

fn auth_json(entries: &[(&str, &str, &str)]) -> String {
    use base64::Engine as _;
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, user, password)| {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            (key.to_string(), serde_json::json!({ "auth": auth }))
        })
        .collect();
    serde_json::json!({ "auths": auths }).to_string()
}

fn user_of(credentials: Option<Credentials>) -> Option<String> {
    credentials.map(|c| format!("{}:{}", c.username, c.password))
}

#[test]
fn auth_file_keys_in_all_their_forms() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    std::fs::write(
        &file,
        auth_json(&[
            ("plain.example", "plain", "p1"),
            ("ported.example:5000", "ported", "p2"),
            ("https://scheme.example", "scheme", "p3"),
            ("http://v2.example/v2/", "v2", "p4:with:colons"),
            ("scoped.example", "whole", "p5"),
            ("scoped.example/team", "team", "p6"),
            ("scoped.example/team/sub", "sub", "p7"),
            ("https://index.docker.io/v1/", "hub", "p8"),
            ("UPPER.example", "upper", "p9"),
        ]),
    )
    .unwrap();
    let env = AuthEnv {
        registry_auth_file: Some(file.clone()),
        ..AuthEnv::default()
    };
    let find = |registry: &str, repository: &str| {
        user_of(auth::from_auth_files_in(&env, registry, repository))
    };
    assert_eq!(find("plain.example", "x").as_deref(), Some("plain:p1"));
    assert_eq!(
        find("plain.example:5000", "x"),
        None,
        "the port is part of the key"
    );
    assert_eq!(
        find("ported.example:5000", "x").as_deref(),
        Some("ported:p2")
    );
    assert_eq!(find("ported.example", "x"), None);
    assert_eq!(find("scheme.example", "").as_deref(), Some("scheme:p3"));
    assert_eq!(
        find("v2.example", "a/b").as_deref(),
        Some("v2:p4:with:colons")
    );
    assert_eq!(find("scoped.example", "other").as_deref(), Some("whole:p5"));
    assert_eq!(find("scoped.example", "team").as_deref(), Some("team:p6"));
    assert_eq!(
        find("scoped.example", "team/app").as_deref(),
        Some("team:p6")
    );
    assert_eq!(
        find("scoped.example", "teamster/app").as_deref(),
        Some("whole:p5"),
        "component boundary"
    );
    assert_eq!(
        find("scoped.example", "team/sub/app").as_deref(),
        Some("sub:p7"),
        "longest prefix"
    );
    assert_eq!(find("scoped.example", "").as_deref(), Some("whole:p5"));
    assert_eq!(find("docker.io", "library/x").as_deref(), Some("hub:p8"));
    assert_eq!(
        find("upper.example", "x").as_deref(),
        Some("upper:p9"),
        "hosts ignore case"
    );
    assert_eq!(find("unknown.example", "x"), None);
    assert_eq!(
        user_of(auth::from_auth_file(&file, "plain.example", "")).as_deref(),
        Some("plain:p1")
    );
}

#[test]
fn auth_files_are_searched_in_order_and_bad_ones_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    };
    let env = AuthEnv {
        registry_auth_file: Some(path("explicit.json")),
        xdg_runtime_dir: Some(path("run/x").parent().unwrap().to_path_buf()),
        xdg_config_home: None,
        docker_config: None,
        home: Some(path("home/x").parent().unwrap().to_path_buf()),
        helper_env: Vec::new(),
    };
    assert_eq!(
        env.auth_files(),
        vec![
            path("explicit.json"),
            path("run/containers/auth.json"),
            path("home/.config/containers/auth.json"),
            path("home/.docker/config.json"),
        ]
    );
    let find = |registry: &str| user_of(auth::from_auth_files_in(&env, registry, "repo"));
    assert_eq!(find("a.example"), None, "no files at all");

    std::fs::write(
        path("home/.docker/config.json"),
        auth_json(&[("a.example", "docker", "d"), ("b.example", "docker", "d")]),
    )
    .unwrap();
    assert_eq!(find("a.example").as_deref(), Some("docker:d"));
    std::fs::write(
        path("home/.config/containers/auth.json"),
        auth_json(&[("a.example", "config", "c")]),
    )
    .unwrap();
    assert_eq!(find("a.example").as_deref(), Some("config:c"));
    std::fs::write(
        path("run/containers/auth.json"),
        auth_json(&[("a.example", "runtime", "r")]),
    )
    .unwrap();
    assert_eq!(find("a.example").as_deref(), Some("runtime:r"));
    std::fs::write(
        path("explicit.json"),
        auth_json(&[("a.example", "explicit", "e")]),
    )
    .unwrap();
    assert_eq!(find("a.example").as_deref(), Some("explicit:e"));
    assert_eq!(
        find("b.example").as_deref(),
        Some("docker:d"),
        "later files fill in other registries"
    );

    // Malformed or unreadable files are skipped.
    std::fs::write(path("explicit.json"), "{not json").unwrap();
    assert_eq!(find("a.example").as_deref(), Some("runtime:r"));
    std::fs::remove_file(path("run/containers/auth.json")).unwrap();
    std::fs::create_dir(path("run/containers/auth.json")).unwrap();
    assert_eq!(find("a.example").as_deref(), Some("config:c"));
    // Entries without `auth` (identity tokens only) and bad base64 are
    // ignored (credential helpers: `credential_helpers_*` below).
    std::fs::write(
        path("home/.config/containers/auth.json"),
        r#"{"auths": {"a.example": {}, "b.example": {"identitytoken": "x"}, "c.example": {"auth": "!!!"}}}"#,
    )
    .unwrap();
    assert_eq!(find("a.example").as_deref(), Some("docker:d"));
    assert_eq!(find("c.example"), None);

    // XDG_CONFIG_HOME and DOCKER_CONFIG replace the home defaults.
    let env = AuthEnv {
        xdg_config_home: Some(path("xdg/x").parent().unwrap().to_path_buf()),
        docker_config: Some(path("dockercfg/x").parent().unwrap().to_path_buf()),
        ..env
    };
    assert_eq!(
        env.auth_files()[2..],
        [
            path("xdg/containers/auth.json"),
            path("dockercfg/config.json")
        ]
    );
    std::fs::write(
        path("dockercfg/config.json"),
        auth_json(&[("d.example", "dc", "x")]),
    )
    .unwrap();
    assert_eq!(
        user_of(auth::from_auth_files_in(&env, "d.example", "")).as_deref(),
        Some("dc:x")
    );
}

#[test]
fn credentials_never_show_their_password() {
    let credentials = Credentials::new("user", "hunter2-secret");
    let debug = format!("{credentials:?}");
    assert!(
        debug.contains("user") && !debug.contains("hunter2"),
        "{debug}"
    );
    let options = RegistryOptions {
        credentials: Some(credentials),
        ..RegistryOptions::default()
    };
    assert!(!format!("{options:?}").contains("hunter2"));
    let registry = Registry::new("localhost:1", options).unwrap();
    assert!(!format!("{registry:?}").contains("hunter2"));
}

#[test]
fn user_token_strings() {
    let parsed = auth::parse_user_token("deploy:tok:en").unwrap();
    assert_eq!(
        (parsed.username.as_str(), parsed.password.as_str()),
        ("deploy", "tok:en")
    );
    for bad in ["", "user", "user:", ":token", ":"] {
        let error = auth::parse_user_token(bad).unwrap_err();
        assert!(error.to_string().contains("USER:TOKEN"));
    }
    assert!(
        !auth::parse_user_token("secret-only")
            .unwrap_err()
            .to_string()
            .contains("secret-only")
    );
}

/// A Docker config directory holding `config.json` with `json`.
fn docker_config(json: &serde_json::Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    dir
}

/// The auth environment of a test: only `DOCKER_CONFIG`, and the helpers
/// see `helper_env`.
fn docker_env(
    config: &tempfile::TempDir,
    helper_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
) -> AuthEnv {
    AuthEnv {
        docker_config: Some(config.path().to_owned()),
        helper_env,
        ..AuthEnv::default()
    }
}

fn push_with(host: &str, found: credentials::Found) -> Result<bool, RegistryError> {
    let options = RegistryOptions {
        credentials: found.credentials,
        credentials_origin: Some(found.origin),
        ..options(1 << 20)
    };
    let registry = Registry::new(host, options).unwrap();
    registry.push_blob(
        "helped/app",
        &MemoryBlob::new(random_bytes(3000, 11)),
        &mut NoProgress,
    )
}

#[test]
fn credential_helpers_give_a_push_its_credentials_with_dockers_precedence() {
    require("docker-credential-pass", "golang-docker-credential-helpers");
    let server = start_registry(Some(("pusher", "s3cret")));
    let store = PassStore::new();
    store.store(&server.host, "pusher", "s3cret");
    let host = server.host.as_str();

    // credHelpers[HOST] wins over a wrong `auths` entry.
    let config = docker_config(&serde_json::json!({
        "auths": {host: {"auth": base64_of("pusher:wrong")}},
        "credHelpers": {host: PASS_HELPER},
    }));
    let found = credentials::lookup(&docker_env(&config, store.env()), host, "helped/app").unwrap();
    let config_file = config.path().join("config.json");
    assert_eq!(
        found.origin,
        CredentialOrigin::Helper {
            program: "docker-credential-pass".into(),
            config: config_file.clone()
        }
    );
    assert!(push_with(host, found).unwrap(), "the blob was uploaded");

    // credsStore serves every registry; a per-host helper beats it.
    let config = docker_config(&serde_json::json!({"credsStore": PASS_HELPER}));
    let found = credentials::lookup(&docker_env(&config, store.env()), host, "helped/app").unwrap();
    assert!(matches!(found.origin, CredentialOrigin::Helper { .. }));
    assert!(
        !push_with(host, found).unwrap(),
        "the registry has it already"
    );
    let config = docker_config(&serde_json::json!({
        "credsStore": PASS_HELPER,
        "credHelpers": {host: "olive2022-absent"},
    }));
    let error = credentials::lookup(&docker_env(&config, store.env()), host, "x").unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, HelperError::Missing { .. })
            && text.contains("docker-credential-olive2022-absent")
            && text.contains(&config.path().join("config.json").display().to_string()),
        "{text}"
    );

    // A helper that holds nothing for the registry lets `auths` answer.
    let config = docker_config(&serde_json::json!({
        "auths": {"other.example": {"auth": base64_of("pusher:s3cret")}},
        "credsStore": PASS_HELPER,
    }));
    let env = docker_env(&config, store.env());
    let found = credentials::lookup(&env, "third.example", "x").unwrap();
    assert!(found.credentials.is_none());
    let origin = found.origin.to_string();
    assert!(origin.contains("asked docker-credential-pass"), "{origin}");
    let found = credentials::lookup(&env, "other.example", "x").unwrap();
    assert_eq!(
        found.origin,
        CredentialOrigin::AuthFile(config.path().join("config.json"))
    );
}

#[test]
fn without_credentials_a_401_names_where_they_were_looked_for() {
    let server = start_registry(Some(("pusher", "s3cret")));
    let config = docker_config(&serde_json::json!({"auths": {}}));
    let env = docker_env(&config, Vec::new());
    let found = credentials::lookup(&env, &server.host, "helped/app").unwrap();
    assert!(found.credentials.is_none());
    let error = push_with(&server.host, found).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, RegistryError::NoCredentials { .. }),
        "{error:?}"
    );
    assert!(
        text.contains(&format!("no credentials configured for {}", server.host))
            && text.contains(&config.path().join("config.json").display().to_string()),
        "{text}"
    );
    // Rejected credentials name where they came from.
    let config = docker_config(&serde_json::json!({
        "auths": {&server.host: {"auth": base64_of("pusher:wrong")}},
    }));
    let found = credentials::lookup(&docker_env(&config, Vec::new()), &server.host, "x").unwrap();
    let text = push_with(&server.host, found).unwrap_err().to_string();
    assert!(
        text.contains(&format!(
            "credentials from {}",
            config.path().join("config.json").display()
        )),
        "{text}"
    );
}

/// A helper script `docker-credential-NAME` in `dir`, and the environment
/// that finds it.
fn script_helper(
    dir: &tempfile::TempDir,
    name: &str,
    body: &str,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let system = std::env::var_os("PATH").unwrap_or_default();
    let mut search = std::ffi::OsString::from(dir.path());
    search.push(":");
    search.push(system);
    vec![("PATH".into(), search)]
}

#[test]
fn broken_helpers_are_clear_errors_that_never_show_a_secret() {
    let bin = tempfile::tempdir().unwrap();
    let lookup = |name: &str, body: &str| {
        let env = script_helper(&bin, name, body);
        let config = docker_config(&serde_json::json!({"credsStore": name}));
        credentials::lookup(&docker_env(&config, env), "r.example", "x")
    };
    let error = lookup("fails", "echo 'keyring locked' >&2; exit 3").unwrap_err();
    assert!(
        matches!(error, HelperError::Failed { .. })
            && error.to_string().contains("keyring locked")
            && error.to_string().contains("r.example"),
        "{error}"
    );
    let error = lookup("garbage", "echo 'Secret: hunter2-secret'").unwrap_err();
    assert!(matches!(error, HelperError::BadAnswer { .. }), "{error}");
    assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
    let error = lookup("flood", "head -c 200000 /dev/zero | tr '\\0' x").unwrap_err();
    assert!(error.to_string().contains("more output"), "{error}");
    let found = lookup(
        "reads",
        r#"read url; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"s"}' "$url" "$url""#,
    )
    .unwrap();
    assert_eq!(
        found.credentials.unwrap().username,
        "u-r.example",
        "the server URL went in on standard input"
    );
    let config = docker_config(&serde_json::json!({"credsStore": "../../bin/sh"}));
    let error = credentials::lookup(&docker_env(&config, Vec::new()), "r.example", "x");
    assert!(
        matches!(error, Err(HelperError::InvalidName { .. })),
        "{error:?}"
    );
}

/// A helper that never answers (a locked keyring waiting for a password
/// nobody types) is killed at the timeout: a clear error, no process left.
#[test]
fn a_helper_that_never_answers_is_killed_at_the_timeout() {
    let bin = tempfile::tempdir().unwrap();
    let pid_file = bin.path().join("helper.pid");
    let body = format!("echo $$ > '{}'; exec sleep 300", pid_file.display());
    let env = script_helper(&bin, "hangs", &body);
    let config = docker_config(&serde_json::json!({"credsStore": "hangs"}));
    let started = std::time::Instant::now();
    let error = credentials::lookup(&docker_env(&config, env), "r.example", "x").unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(error, HelperError::Timeout { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("docker-credential-hangs"), "{text}");
    assert!(text.contains("r.example"), "{text}");
    assert!(text.contains("within 30 s"), "{text}");
    assert!(waited >= credentials::helper::HELPER_TIMEOUT, "{waited:?}");
    assert!(
        waited < credentials::helper::HELPER_TIMEOUT + Duration::from_secs(10),
        "{waited:?}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_entry = format!("/proc/{}", pid.trim());
    assert!(
        !std::path::Path::new(&proc_entry).exists(),
        "the helper {pid} still runs"
    );
}

#[test]
fn identity_tokens_are_exchanged_at_the_token_server() {
    let fake = FakeRegistry::start(FakeConfig {
        bearer: Some((auth::IDENTITY_TOKEN_USER.into(), "refresh-secret".into())),
        ..FakeConfig::default()
    });
    let credentials = Credentials::new(auth::IDENTITY_TOKEN_USER, "refresh-secret");
    assert_eq!(credentials.identity_token(), Some("refresh-secret"));
    let with_token = RegistryOptions {
        credentials: Some(credentials),
        ..options(4096)
    };
    let registry = Registry::new(&fake.host, with_token).unwrap();
    let layer = MemoryBlob::new(random_bytes(5000, 3));
    assert!(
        registry
            .push_blob("team/app", &layer, &mut NoProgress)
            .unwrap()
    );
    assert_eq!(fake.state.lock().unwrap().token_requests, 1);
    let wrong = Registry::new(
        &fake.host,
        with_credentials(options(4096), auth::IDENTITY_TOKEN_USER, "stale"),
    )
    .unwrap();
    let error = wrong.blob_exists("team/app", layer.digest()).unwrap_err();
    assert!(
        matches!(error, RegistryError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("stale"), "{error}");
}

#[test]
fn https_registry_with_its_ca_and_a_clear_tls_error_without() {
    require("openssl", "openssl");
    let ca = TestCa::new("olive2022 test CA");
    let server = TestRegistry::start_with(None, Some(&ca));
    let trusting = |ca_file: Option<&std::path::Path>| {
        let options = RegistryOptions {
            ca_file: ca_file.map(ToOwned::to_owned),
            ..options(1 << 20)
        };
        Registry::new(&server.host, options)
    };
    let registry = trusting(Some(&ca.ca_pem)).unwrap();
    assert!(
        !registry.is_plain_http(),
        "a CA means HTTPS, even on loopback"
    );
    let layer = MemoryBlob::new(random_bytes(10_000, 5));
    assert!(
        registry
            .push_blob("tls/app", &layer, &mut NoProgress)
            .unwrap()
    );
    assert_eq!(pull(&registry, "tls/app", layer.digest()), layer.bytes());

    let other = TestCa::new("another CA");
    let started = Instant::now();
    let error = trusting(Some(&other.ca_pem))
        .unwrap()
        .push_blob("tls/app", &layer, &mut NoProgress)
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, RegistryError::Tls { .. }), "{error:?}");
    assert!(
        text.contains(&server.host)
            && text.contains("--registry-ca")
            && text.contains("certificate"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a TLS failure is not retried"
    );

    let not_pem = server.dir.path().join("config.yml");
    let error = trusting(Some(&not_pem)).unwrap_err();
    assert!(
        matches!(error, RegistryError::CaFile { .. }) && error.to_string().contains("config.yml"),
        "{error}"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
