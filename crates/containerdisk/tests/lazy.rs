//! Lazy pulls against a real registry (Debian's `docker-registry`) behind a
//! proxy that makes it slow and far away (`testkit::throttle`), and against
//! the fake registry for the Bearer-token flow: reads are answered before
//! the layer is complete, the complete layer is checked and becomes a
//! cache entry, outages and corrupt bytes end the way the module promises.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{FakeConfig, FakeRegistry, converted, push_converted, require};
use containerdisk::auth::Credentials;
use containerdisk::lazy::{LazyDisk, LazyMode, LazyOptions, LazyPool, LazyState, Started};
use containerdisk::pull::{DiskSource, FetchOptions, ImageRef, PullError};
use containerdisk::registry::{Registry, RegistryOptions};
use testkit::registry::TestRegistry;
use testkit::throttle::{Shape, ThrottleProxy};

const MIB: usize = 1 << 20;

fn registry_options() -> RegistryOptions {
    RegistryOptions {
        max_retries: 1,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        ..RegistryOptions::default()
    }
}

fn lazy_options() -> LazyOptions {
    LazyOptions {
        threshold: 0,
        chunk: 4 << 20,
        read_timeout: Duration::from_secs(2),
        start_timeout: Duration::from_secs(5),
        ..LazyOptions::default()
    }
}

fn pool(cache: &Path, mode: LazyMode) -> LazyPool {
    let fetch = FetchOptions {
        registry: registry_options(),
        ..FetchOptions::default()
    };
    LazyPool::new(cache, fetch, lazy_options(), mode)
}

fn source(host: &str, repository: &str, tag: &str) -> DiskSource {
    source_with(host, repository, ImageRef::Tag(tag.to_owned()), None)
}

fn source_with(
    host: &str,
    repository: &str,
    reference: ImageRef,
    credentials: Option<Credentials>,
) -> DiskSource {
    DiskSource::Registry {
        registry: host.to_owned(),
        repository: repository.to_owned(),
        reference,
        credentials,
        insecure: false,
    }
}

/// A registry with a `len`-byte disk image pushed as `olive/lazy:v1`,
/// behind a proxy shaped as `shape`; returns the disk's bytes too.
fn slow_registry(len: usize, seed: u64, shape: Shape) -> (TestRegistry, ThrottleProxy, Vec<u8>) {
    require("docker-registry", "docker-registry");
    let server = TestRegistry::start(None);
    let image = converted(len, seed);
    let client = Registry::new(&server.host, registry_options()).unwrap();
    push_converted(&client, "olive/lazy", "v1", &image);
    let proxy = ThrottleProxy::start(&server.host, shape);
    (server, proxy, image.content)
}

fn lazy(started: Started) -> Arc<LazyDisk> {
    match started {
        Started::Lazy(disk) => disk,
        Started::Cached(disk) => panic!("expected a lazy pull, got the cached {disk:?}"),
    }
}

fn read(disk: &LazyDisk, offset: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    disk.read_at(offset as u64, &mut buf)?;
    Ok(buf)
}

/// The completed pulls' times, waiting a little for the download thread
/// to report the one that just completed.
fn completed_pulls(pool: &LazyPool) -> Vec<Duration> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let completed = pool.take_completed();
        if !completed.is_empty() || std::time::Instant::now() > deadline {
            return completed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn partials(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}

#[test]
fn reads_are_answered_before_the_layer_is_complete_which_then_becomes_a_cache_entry() {
    // 48 MiB at 6 MiB/s: 8 s for the whole layer.
    let shape = Shape {
        rate: 6 << 20,
        latency: Duration::from_millis(10),
    };
    let (server, proxy, content) = slow_registry(48 * MIB, 1, shape);
    let cache = tempfile::tempdir().unwrap();
    let pool = pool(cache.path(), LazyMode::Always);
    let disk = lazy(
        pool.start(&source(&proxy.host, "olive/lazy", "v1"))
            .unwrap(),
    );
    assert_eq!(disk.size(), content.len() as u64);

    // The first bytes, then a read far ahead of the background download.
    assert_eq!(read(&disk, 0, 4096).unwrap(), content[..4096]);
    let far = 40 * MIB + 12345;
    assert_eq!(
        read(&disk, far, 100_000).unwrap(),
        content[far..far + 100_000]
    );
    let progress = disk.progress();
    assert_eq!(progress.state, LazyState::Downloading);
    assert!(
        progress.present < progress.total / 2,
        "the reads were answered after half the layer: {progress:?}"
    );

    let LazyState::Complete(cached) = disk.wait(Duration::from_secs(60)) else {
        panic!("not complete: {:?}", disk.progress());
    };
    assert_eq!(std::fs::read(&cached.path).unwrap(), content);
    assert!(
        partials(cache.path()).is_empty(),
        "{:?}",
        partials(cache.path())
    );

    // The pull's time is told once (about 8 s at this rate), and no start
    // lock stays behind.
    let completed = completed_pulls(&pool);
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert!(completed[0] > Duration::from_secs(2), "{completed:?}");
    assert!(pool.take_completed().is_empty());
    assert_eq!(pool.starts_in_progress(), 0);

    // Little more than the layer came over the link.
    let layer_size = content.len() as u64 + 4096;
    let down = proxy.counters().bytes_down.load(Ordering::Relaxed);
    assert!(
        down < layer_size + layer_size / 20 + (1 << 20),
        "{down} bytes fetched for a layer of about {layer_size}"
    );

    // With the registry gone, reads come from the cache entry, and the
    // next start is that entry.
    let digest = cached.digest.clone();
    drop(proxy);
    drop(server);
    assert_eq!(read(&disk, far + 7, 9).unwrap(), content[far + 7..far + 16]);
    assert_eq!(read(&disk, MIB, 4096).unwrap(), content[MIB..MIB + 4096]);
    let by_digest = source_with("127.0.0.1:1", "olive/lazy", ImageRef::Digest(digest), None);
    assert!(matches!(
        pool.start(&by_digest).unwrap(),
        Started::Cached(_)
    ));
}

#[test]
fn two_vms_of_one_image_share_one_download() {
    let shape = Shape {
        rate: 8 << 20,
        latency: Duration::from_millis(5),
    };
    let (_server, proxy, content) = slow_registry(32 * MIB, 2, shape);
    let cache = tempfile::tempdir().unwrap();
    let pool = pool(cache.path(), LazyMode::Always);
    let image = source(&proxy.host, "olive/lazy", "v1");
    let first = lazy(pool.start(&image).unwrap());
    let second = lazy(pool.start(&image).unwrap());
    assert!(Arc::ptr_eq(&first, &second), "two pulls of one image");
    let at = 20 * MIB;
    assert_eq!(read(&second, at, 512).unwrap(), content[at..at + 512]);
    assert!(matches!(
        first.wait(Duration::from_secs(60)),
        LazyState::Complete(_)
    ));
    let gets = proxy.counters().blob_gets.load(Ordering::Relaxed);
    // 8 background chunks of 4 MiB and a few demand reads; a second
    // download would double it.
    assert!(gets <= 14, "{gets} blob GETs for one 32 MiB layer");
    let down = proxy.counters().bytes_down.load(Ordering::Relaxed);
    assert!(
        down < (content.len() as u64) * 11 / 10,
        "{down} bytes fetched"
    );
}

#[test]
fn an_outage_fails_reads_in_bounded_time_and_reads_work_again_when_it_ends() {
    let shape = Shape {
        rate: 4 << 20,
        latency: Duration::from_millis(5),
    };
    let (_server, proxy, content) = slow_registry(32 * MIB, 3, shape);
    let cache = tempfile::tempdir().unwrap();
    let pool = pool(cache.path(), LazyMode::Always);
    let disk = lazy(
        pool.start(&source(&proxy.host, "olive/lazy", "v1"))
            .unwrap(),
    );
    assert_eq!(read(&disk, 0, 512).unwrap(), content[..512]);

    proxy.outage(true);
    let far = 30 * MIB;
    let started = std::time::Instant::now();
    let error = read(&disk, far, 4096).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!disk.flowing(), "{:?}", disk.progress());
    assert!(disk.progress().registry_failure.is_some());

    proxy.outage(false);
    let mut answered = None;
    for _ in 0..10 {
        if let Ok(bytes) = read(&disk, far, 4096) {
            answered = Some(bytes);
            break;
        }
    }
    assert_eq!(answered.unwrap(), content[far..far + 4096]);
    assert!(matches!(
        disk.wait(Duration::from_secs(60)),
        LazyState::Complete(_)
    ));
    assert!(disk.flowing());
}

#[test]
fn corrupt_bytes_discard_the_copy_and_the_next_start_says_why() {
    let shape = Shape {
        rate: 0,
        latency: Duration::ZERO,
    };
    let (server, proxy, _content) = slow_registry(8 * MIB, 4, shape);
    // Flip bytes in the middle of the layer's stored data: the registry
    // serves them as they are.
    let layer = server.largest_blob();
    let mut bytes = std::fs::read(&layer).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let pool = pool(cache.path(), LazyMode::Always);
    let image = source(&proxy.host, "olive/lazy", "v1");
    let disk = lazy(pool.start(&image).unwrap());
    let LazyState::Failed(reason) = disk.wait(Duration::from_secs(60)) else {
        panic!("a corrupt layer passed: {:?}", disk.progress());
    };
    assert!(reason.contains("digest"), "{reason}");
    assert!(
        read(&disk, 0, 512).is_err(),
        "reads go on after a failed check"
    );
    // Nothing is left that looks like a cache entry, nor the copy.
    let left: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    drop(disk);
    match pool.start(&image) {
        Err(PullError::Discarded { reason, .. }) => assert!(reason.contains("digest"), "{reason}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("the next start did not say why"),
    }
    // The one after tries again.
    let again = lazy(pool.start(&image).unwrap());
    assert!(matches!(
        again.wait(Duration::from_secs(60)),
        LazyState::Failed(_)
    ));
}

#[test]
fn bearer_tokens_and_their_refresh_are_the_registry_clients() {
    let fake = FakeRegistry::start(FakeConfig {
        bearer: Some(("robot".into(), "t0ken-secret".into())),
        ..FakeConfig::default()
    });
    let options = RegistryOptions {
        credentials: Some(Credentials::new("robot", "t0ken-secret")),
        ..registry_options()
    };
    let image = converted(6 * MIB, 5);
    push_converted(
        &Registry::new(&fake.host, options).unwrap(),
        "olive/tok",
        "v1",
        &image,
    );
    let tokens_after_push = fake.state.lock().unwrap().token_requests;

    let cache = tempfile::tempdir().unwrap();
    let fetch = FetchOptions {
        registry: registry_options(),
        ..FetchOptions::default()
    };
    let pool = LazyPool::new(cache.path(), fetch, lazy_options(), LazyMode::Always);
    let with_credentials = source_with(
        &fake.host,
        "olive/tok",
        ImageRef::Tag("v1".into()),
        Some(Credentials::new("robot", "t0ken-secret")),
    );
    let disk = lazy(pool.start(&with_credentials).unwrap());
    let at = 5 * MIB;
    assert_eq!(read(&disk, at, 1000).unwrap(), image.content[at..at + 1000]);
    assert!(matches!(
        disk.wait(Duration::from_secs(60)),
        LazyState::Complete(_)
    ));
    let state = fake.state.lock().unwrap();
    assert!(
        state.token_requests > tokens_after_push,
        "no token fetched for the pull"
    );
    assert!(
        state.range_requests >= 2,
        "{} range requests",
        state.range_requests
    );
}

#[test]
fn small_images_in_auto_and_layouts_take_the_full_pull_and_an_outage_is_a_clear_error() {
    let shape = Shape {
        rate: 0,
        latency: Duration::ZERO,
    };
    let (_server, proxy, content) = slow_registry(2 * MIB, 6, shape);
    let cache = tempfile::tempdir().unwrap();
    let fetch = FetchOptions {
        registry: registry_options(),
        ..FetchOptions::default()
    };
    let auto = LazyPool::new(
        cache.path(),
        fetch,
        LazyOptions {
            threshold: 64 << 20,
            ..lazy_options()
        },
        LazyMode::Auto,
    );
    let image = source(&proxy.host, "olive/lazy", "v1");
    let Started::Cached(cached) = auto.start(&image).unwrap() else {
        panic!("a 2 MiB image was pulled lazily in auto mode");
    };
    assert_eq!(std::fs::read(&cached.path).unwrap(), content);

    proxy.outage(true);
    let other = tempfile::tempdir().unwrap();
    let always = pool(other.path(), LazyMode::Always);
    let started = std::time::Instant::now();
    let Err(error) = always.start(&image) else {
        panic!("a start through an outage succeeded");
    };
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(!error.to_string().is_empty());
    assert!(
        partials(other.path()).is_empty(),
        "{:?}",
        partials(other.path())
    );
}

#[test]
fn two_images_download_side_by_side_with_a_fair_share() {
    require("docker-registry", "docker-registry");
    let server = TestRegistry::start(None);
    let client = Registry::new(&server.host, registry_options()).unwrap();
    let (first, second) = (converted(24 * MIB, 7), converted(24 * MIB, 8));
    push_converted(&client, "olive/first", "v1", &first);
    push_converted(&client, "olive/second", "v1", &second);
    // One 8 MiB/s link for both.
    let proxy = ThrottleProxy::start(
        &server.host,
        Shape {
            rate: 8 << 20,
            latency: Duration::from_millis(5),
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let pool = pool(cache.path(), LazyMode::Always);
    let one = lazy(
        pool.start(&source(&proxy.host, "olive/first", "v1"))
            .unwrap(),
    );
    let two = lazy(
        pool.start(&source(&proxy.host, "olive/second", "v1"))
            .unwrap(),
    );
    // When the first is done, the second has had about as much of the
    // link: most of its layer is there too (one after the other would
    // leave it nearly empty).
    let (done, other) = loop {
        if matches!(one.progress().state, LazyState::Complete(_)) {
            break (&one, &two);
        }
        if matches!(two.progress().state, LazyState::Complete(_)) {
            break (&two, &one);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let progress = other.progress();
    assert!(
        progress.present > progress.total / 2,
        "one image had the link to itself: {progress:?} when {:?} completed",
        done.image()
    );
    assert!(matches!(
        other.wait(Duration::from_secs(60)),
        LazyState::Complete(_)
    ));
}

#[test]
fn a_sparse_tar_entry_gets_the_full_pull_and_its_entry() {
    require("docker-registry", "docker-registry");
    require("tar", "tar");
    // A 16 MiB disk with data at both ends and a hole between, archived
    // by GNU tar as a sparse entry: its bytes are not in the layer in
    // place, so it cannot be served lazily.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("disk")).unwrap();
    let head = common::random_bytes(MIB, 11);
    let tail = common::random_bytes(MIB, 12);
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(work.path().join("disk/disk.img")).unwrap();
        file.write_all_at(&head, 0).unwrap();
        file.write_all_at(&tail, 15 * MIB as u64).unwrap();
    }
    let layer_path = work.path().join("layer.tar");
    let tar = std::process::Command::new("tar")
        .args(["--format=gnu", "--sparse", "-cf"])
        .arg(&layer_path)
        .arg("-C")
        .arg(work.path())
        .arg("disk/disk.img")
        .output()
        .unwrap();
    assert!(tar.status.success(), "{tar:?}");
    let layer = containerdisk::MemoryBlob::new(std::fs::read(&layer_path).unwrap());
    assert!(
        layer.bytes().len() < 4 * MIB,
        "not sparse: {}",
        layer.bytes().len()
    );
    let labels = std::collections::BTreeMap::new();
    let image = containerdisk::image::Image::new(&layer, &labels);
    let server = TestRegistry::start(None);
    let client = Registry::new(&server.host, registry_options()).unwrap();
    let mut progress = containerdisk::registry::NoProgress;
    client
        .push_blob("olive/sparse", &layer, &mut progress)
        .unwrap();
    client
        .push_blob("olive/sparse", &image.config, &mut progress)
        .unwrap();
    client
        .push_manifest(
            "olive/sparse",
            "v1",
            containerdisk::image::MANIFEST_MEDIA_TYPE,
            image.manifest.bytes(),
        )
        .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let pool = pool(cache.path(), LazyMode::Always);
    let Started::Cached(cached) = pool
        .start(&source(&server.host, "olive/sparse", "v1"))
        .unwrap()
    else {
        panic!("a sparse entry was served lazily");
    };
    let disk = std::fs::read(&cached.path).unwrap();
    assert_eq!(disk.len(), 16 * MIB);
    assert_eq!(disk[..MIB], head[..]);
    assert_eq!(disk[15 * MIB..], tail[..]);
    assert!(disk[MIB..15 * MIB].iter().all(|byte| *byte == 0));
    assert!(
        partials(cache.path()).is_empty(),
        "{:?}",
        partials(cache.path())
    );
    assert_eq!(pool.starts_in_progress(), 0);
}
