//! Lazy pulls end to end: a bootable image of more than 1 GiB (SYSLINUX,
//! then incompressible bytes) in a real docker-registry behind a proxy that
//! caps the bandwidth and adds latency (`testkit::throttle`), deployed by
//! `olive2022 cloudlet` and watched through our tunnel by the RFB test
//! viewer: the boot message is on screen while most of the layer has not
//! arrived, the layer then completes and is checked; the registry killed
//! mid-boot pauses the guest, which resumes once it is back; corrupt bytes
//! stop the VM and the next deploy says why; two clients share one
//! download.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{CloudletProcess, olive, text, viewer};
use serde_json::Value;
use sinfonia::keys::KeyCache;
use testkit::boot::{TITLE_RGB, syslinux_disk};
use testkit::registry::TestRegistry;
use testkit::throttle::{Shape, ThrottleProxy};

const URL: &str = "vmnetx+https://olivearchive.org/launch/lazy-test/package.nxpk";
const MIB: u64 = 1 << 20;

/// No shaping: pushes and setup go at full speed.
const OPEN: Shape = Shape {
    rate: 0,
    latency: Duration::ZERO,
};

/// A SYSLINUX disk padded with `padding` incompressible bytes, converted
/// and pushed through `proxy` (as `PROXY/olive`); the recipes directory.
fn pushed_image(dir: &Path, proxy: &ThrottleProxy, padding: u64) -> PathBuf {
    let work = tempfile::tempdir_in(dir).unwrap();
    let raw = syslinux_disk(work.path(), "Olive 2022 lazy VM", padding, 7);
    let package = work.path().join("vm.nxpk");
    testkit::package(&package, "Lazy test VM", &raw, "raw", false);
    let recipes = dir.join("RECIPES");
    let registry = format!("{}/olive", proxy.host);
    let destination = ["--compression", "zstd", "--registry", &registry];
    common::convert(&package, URL, &recipes, &destination, &[]);
    recipes
}

/// `olive2022 cloudlet` with `extra` flags, under TCG: KVM on this machine
/// stops in SYSLINUX's real-mode code (docs/test-environment.md).
fn start_cloudlet(recipes: &Path, data_dir: &Path, extra: &[&str]) -> CloudletProcess {
    let mut flags = vec!["--accel", "tcg"];
    flags.extend_from_slice(extra);
    CloudletProcess::start(recipes, data_dir, &flags)
}

/// The VM's UUID: its recipe's name.
fn uuid_of(recipes: &Path) -> String {
    let entry = std::fs::read_dir(recipes)
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let name = entry.file_name().to_string_lossy().into_owned();
    name.trim_end_matches(".yaml").to_owned()
}

/// `launch` in the background, its viewer waiting for the title bar.
fn launch_in_background(api: &str, cache: &Path) -> Child {
    olive()
        .args(["launch", "--timeout", "120", "--tier1-url", api, "--viewer"])
        .arg(viewer())
        .arg(URL)
        .env("XDG_CACHE_HOME", cache)
        .env("RFB_REPORT", cache.join("report.json"))
        .env("RFB_WAIT_RGB", TITLE_RGB.map(|c| c.to_string()).join(","))
        .env("RFB_WAIT_PIXELS", "1500")
        .env("RFB_WAIT_SECONDS", "90")
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `launch` (at most 3 minutes); the viewer's report.
fn viewer_report(launch: Child, cache: &Path) -> Value {
    let output = wait_with_deadline(launch, Duration::from_secs(180));
    assert!(output.status.success(), "{}", text(&output));
    let report = std::fs::read_to_string(cache.join("report.json")).unwrap();
    serde_json::from_str(&report).unwrap()
}

fn wait_with_deadline(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// The title bar's pixels the viewer saw.
fn title_pixels(report: &Value) -> u64 {
    report["wait"]["pixels"].as_u64().unwrap_or(0)
}

/// The deployment's `Disk` progress, as the client with the key cached in
/// `cache` sees it.
fn disk_progress(api: &str, cache: &Path, uuid: &str) -> Value {
    let keys = KeyCache::at(cache.join("sinfonia"));
    let key = keys.load_or_create(uuid.parse().unwrap()).unwrap();
    let url = format!("{api}/api/v1/deploy/{uuid}/{}", key.keys.public_urlsafe());
    let body = testkit::run("curl", &["-s", &url]);
    let answer: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    answer["Disk"].clone()
}

/// The pulls in the cloudlet's `olive2022_cloudlet_pull_seconds` histogram.
fn pulls_measured(api: &str) -> u64 {
    let metrics = testkit::run("curl", &["-s", &format!("{api}/metrics")]);
    let count = metrics
        .lines()
        .find_map(|line| line.strip_prefix("olive2022_cloudlet_pull_seconds_count "))
        .unwrap_or_else(|| panic!("no pull count in {metrics}"));
    count.trim().parse().unwrap()
}

/// Waits until the cloudlet's log holds `line`.
fn wait_for_log(cloudlet: &CloudletProcess, line: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !cloudlet.log().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in the log: {}",
            cloudlet.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_gigabyte_vm_is_on_screen_long_before_its_layer_is_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let proxy = ThrottleProxy::start(&registry.host, OPEN);
    let padding = std::env::var("LAZY_PADDING")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1 << 30);
    let recipes = pushed_image(dir.path(), &proxy, padding);
    let uuid = uuid_of(&recipes);
    // 200 Mbit/s and 10 ms per request: the whole layer takes about 45 s.
    proxy.shape(Shape {
        rate: 25 * MIB,
        latency: Duration::from_millis(10),
    });
    let down_before = proxy.counters().bytes_down.load(Ordering::Relaxed);
    // auto is the default; the image is far above its threshold.
    let cloudlet = start_cloudlet(&recipes, &dir.path().join("data"), &[]);
    let cache = dir.path().join("alice");
    let report = viewer_report(launch_in_background(&cloudlet.api, &cache), &cache);
    let progress = disk_progress(&cloudlet.api, &cache, &uuid);
    assert!(
        title_pixels(&report) >= 1500,
        "no boot message: {report}\n{}",
        cloudlet.log()
    );
    let (bytes, total) = (
        progress["bytes"].as_u64().unwrap(),
        progress["total"].as_u64().unwrap(),
    );
    assert!(total > 1 << 30, "{progress}");
    assert!(
        bytes < total / 2,
        "the screen came after half the layer: {progress}"
    );
    // No pull is complete yet, so none is in the pull-time histogram.
    assert_eq!(pulls_measured(&cloudlet.api), 0);

    // The layer completes and is checked; it is an ordinary cache entry,
    // and the pull's time goes to the histogram.
    let deadline = Instant::now() + Duration::from_secs(240);
    while disk_progress(&cloudlet.api, &cache, &uuid)["state"] != "complete" {
        assert!(Instant::now() < deadline, "{}", cloudlet.log());
        std::thread::sleep(Duration::from_secs(1));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pulls_measured(&cloudlet.api) != 1 {
        assert!(Instant::now() < deadline, "{}", cloudlet.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = cloudlet.log();
    assert!(log.contains("lazy pull complete and verified"), "{log}");
    let meta = only_cache_entry(&dir.path().join("data/cache"));
    assert_eq!(meta["layer"], sha256_of_largest_blob(&registry));
    // About the layer came over the link, not several times it.
    let down = proxy.counters().bytes_down.load(Ordering::Relaxed) - down_before;
    assert!(
        down < total + total / 20,
        "{down} bytes for a layer of {total}"
    );
}

/// The one entry's `image.json` in the image cache.
fn only_cache_entry(cache: &Path) -> Value {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    serde_json::from_slice(&std::fs::read(entries[0].join("image.json")).unwrap()).unwrap()
}

/// `sha256:…` of the registry's largest blob: the layer.
fn sha256_of_largest_blob(registry: &TestRegistry) -> String {
    let sum = testkit::run("sha256sum", &[registry.largest_blob().to_str().unwrap()]);
    format!("sha256:{}", sum.split_whitespace().next().unwrap())
}

#[test]
fn the_registry_killed_mid_boot_pauses_the_guest_which_resumes_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = TestRegistry::start(None);
    let proxy = ThrottleProxy::start(&registry.host, OPEN);
    let recipes = pushed_image(dir.path(), &proxy, 256 * MIB);
    // A slow link: the background download reaches SYSLINUX's files, 32
    // MiB in, after half a minute; the boot asks for them long before,
    // while the registry is away.
    proxy.shape(Shape {
        rate: MIB,
        latency: Duration::from_millis(100),
    });
    let cloudlet = start_cloudlet(
        &recipes,
        &dir.path().join("data"),
        &["--lazy-pull", "always"],
    );
    let cache = dir.path().join("alice");
    let launch = launch_in_background(&cloudlet.api, &cache);
    wait_for_log(&cloudlet, "VM started", 60);
    registry.stop();
    wait_for_log(&cloudlet, "VM paused", 60);
    registry.restart();
    wait_for_log(&cloudlet, "VM resumed", 60);
    let report = viewer_report(launch, &cache);
    assert!(title_pixels(&report) >= 1500, "no boot message: {report}");
    assert_eq!(cloudlet.vms().len(), 1);
}

#[test]
fn corrupt_bytes_stop_the_vm_and_the_next_deploy_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let proxy = ThrottleProxy::start(&registry.host, OPEN);
    let recipes = pushed_image(dir.path(), &proxy, 64 * MIB);
    let uuid = uuid_of(&recipes);
    // Corrupt the padding's last bytes, far from what the boot reads.
    let blob = registry.largest_blob();
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.len() - 4096;
    bytes[at] ^= 0x55;
    std::fs::write(&blob, bytes).unwrap();
    proxy.shape(Shape {
        rate: 8 * MIB,
        latency: Duration::from_millis(5),
    });
    let cloudlet = start_cloudlet(
        &recipes,
        &dir.path().join("data"),
        &["--lazy-pull", "always"],
    );
    let cache = dir.path().join("alice");
    let report = viewer_report(launch_in_background(&cloudlet.api, &cache), &cache);
    assert!(title_pixels(&report) >= 1500, "no boot message: {report}");
    wait_for_log(&cloudlet, "stopping the VM: its disk failed its check", 120);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cloudlet.vms().is_empty() {
        assert!(Instant::now() < deadline, "the VM still runs");
        std::thread::sleep(Duration::from_millis(200));
    }
    let progress = disk_progress(&cloudlet.api, &cache, &uuid);
    assert_eq!(progress["state"], "failed", "{progress}");
    // The client's next deploy is told why; nothing is left in the cache.
    let next = olive()
        .args(["launch", "--timeout", "30", "--tier1-url", &cloudlet.api])
        .arg("--viewer")
        .arg(viewer())
        .arg(URL)
        .env("XDG_CACHE_HOME", &cache)
        .env("RFB_REPORT", cache.join("again.json"))
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!next.status.success(), "{}", text(&next));
    assert!(text(&next).contains("digest"), "{}", text(&next));
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("data/cache"))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
    // Told once: the deploy after that starts afresh (and boots again).
    let report = viewer_report(launch_in_background(&cloudlet.api, &cache), &cache);
    assert!(title_pixels(&report) >= 1500, "no boot message: {report}");
}

#[test]
fn two_clients_of_one_image_share_one_download() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let proxy = ThrottleProxy::start(&registry.host, OPEN);
    let recipes = pushed_image(dir.path(), &proxy, 128 * MIB);
    let uuid = uuid_of(&recipes);
    proxy.shape(Shape {
        rate: 16 * MIB,
        latency: Duration::from_millis(5),
    });
    let gets_before = proxy.counters().blob_gets.load(Ordering::Relaxed);
    let down_before = proxy.counters().bytes_down.load(Ordering::Relaxed);
    let cloudlet = start_cloudlet(
        &recipes,
        &dir.path().join("data"),
        &["--lazy-pull", "always"],
    );
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let first = launch_in_background(&cloudlet.api, &alice);
    let second = launch_in_background(&cloudlet.api, &bob);
    for (launch, cache) in [(first, &alice), (second, &bob)] {
        let report = viewer_report(launch, cache);
        assert!(title_pixels(&report) >= 1500, "no boot message: {report}");
    }
    assert_eq!(cloudlet.vms().len(), 2);
    assert!(cloudlet.log().contains("joining the lazy pull in progress"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while disk_progress(&cloudlet.api, &alice, &uuid)["state"] != "complete" {
        assert!(Instant::now() < deadline, "{}", cloudlet.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let total = disk_progress(&cloudlet.api, &bob, &uuid)["total"]
        .as_u64()
        .unwrap();
    let down = proxy.counters().bytes_down.load(Ordering::Relaxed) - down_before;
    let gets = proxy.counters().blob_gets.load(Ordering::Relaxed) - gets_before;
    // One download: 64 MiB background requests and some demand reads; two
    // would double both.
    assert!(
        down < total + total / 10,
        "{down} bytes for a layer of {total}"
    );
    assert!(gets < 2 * total.div_ceil(64 * MIB) + 40, "{gets} blob GETs");
}
