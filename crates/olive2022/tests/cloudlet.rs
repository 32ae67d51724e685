//! The embedded cloudlet end to end: a package converted by `convert`,
//! deployed by `olive2022 cloudlet` under real QEMU, reached by our
//! `launch` and by the original Python sinfonia-tier3 + our `stage2`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{CloudletProcess, launch_with_env, olive, text, viewer};
use serde_json::Value;
use testkit::registry::{TestRegistry, free_port};

const URL: &str = "vmnetx+https://olivearchive.org/launch/cloudlet-test/package.nxpk";

/// A package of a small real disk, converted into `destination`.
fn converted(dir: &Path, destination: &[&str]) -> PathBuf {
    converted_as(dir, URL, destination, &[])
}

/// A temporary directory with the package of [`converted`] in an OCI
/// layout in it, and the recipes.
fn converted_to_layout() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let recipes = converted(
        dir.path(),
        &["--output", &format!("oci:{}", layout.display())],
    );
    (dir, recipes)
}

/// [`converted`] for the VM of `url` (its own UUID and image); the recipes
/// of several calls share `dir/RECIPES`. `env` is set for `convert`.
fn converted_as(dir: &Path, url: &str, destination: &[&str], env: &[(&str, &Path)]) -> PathBuf {
    let work = tempfile::tempdir_in(dir).unwrap();
    let raw = testkit::ext4_disk(work.path(), "24M");
    let qcow2 = testkit::qcow2_of(&raw, &[]);
    let package = work.path().join("vm.nxpk");
    testkit::package(&package, "Cloudlet test VM", &qcow2, "qcow2", false);
    let recipes = dir.join("RECIPES");
    common::convert(&package, url, &recipes, destination, env);
    recipes
}

/// `launch` with the test viewer and its own key cache; the viewer's report.
fn launch(api: &str, cache: &Path) -> (Output, Option<Value>) {
    launch_url(api, URL, cache)
}

/// The HTTP status of a `method` request to `url`, with no body.
fn http_status(method: &str, url: &str) -> String {
    testkit::run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            url,
        ],
    )
}

/// [`launch`] of the VM of `url`.
fn launch_url(api: &str, url: &str, cache: &Path) -> (Output, Option<Value>) {
    launch_with_env(api, url, cache, &[])
}

fn deployment_name(output: &Output) -> String {
    let text = text(output);
    let line = text
        .lines()
        .find(|line| line.starts_with("Deployed "))
        .unwrap_or_else(|| panic!("{text}"));
    line.split_whitespace().nth(1).unwrap().to_owned()
}

fn assert_screen(output: &Output, report: Option<&Value>) {
    assert!(output.status.success(), "{}", text(output));
    let report = report.unwrap_or_else(|| panic!("the viewer reported nothing: {}", text(output)));
    assert_eq!(report["banner"], "RFB 003.008\n");
    assert!(report["width"].as_u64().unwrap() >= 640, "{report}");
    assert!(
        report["name"].as_str().unwrap().starts_with("QEMU"),
        "{report}"
    );
}

#[test]
fn a_package_in_a_registry_is_deployed_under_qemu_and_reached_through_the_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start(None);
    let recipes = converted(
        dir.path(),
        &["--registry", &format!("{}/olive", registry.host)],
    );
    let cloudlet = CloudletProcess::start(&recipes, &dir.path().join("data"), &[]);

    let alice = dir.path().join("alice");
    let (first, report) = launch(&cloudlet.api, &alice);
    assert_screen(&first, report.as_ref());
    assert_eq!(cloudlet.vms().len(), 1, "one VM for one client");
    // The same key gets the same deployment back.
    let (again, report) = launch(&cloudlet.api, &alice);
    assert_screen(&again, report.as_ref());
    assert_eq!(deployment_name(&again), deployment_name(&first));
    assert_eq!(cloudlet.vms().len(), 1);
    // Another client gets a VM of its own.
    let (bob, report) = launch(&cloudlet.api, &dir.path().join("bob"));
    assert_screen(&bob, report.as_ref());
    assert_ne!(deployment_name(&bob), deployment_name(&first));
    assert_eq!(cloudlet.vms().len(), 2, "one VM per client");
}

/// Real registries speak HTTPS: an image in a docker-registry whose
/// certificate comes from a throw-away CA is deployed by a cloudlet given
/// that CA (`--registry-ca`). Without it, the client's deploy fails with
/// an error naming the registry, its HTTPS and the option, and no VM
/// starts.
#[test]
fn a_vm_from_an_https_registry_is_deployed_with_the_registry_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = testkit::tls::TestCa::new("olive2022 cloudlet test CA");
    let registry = TestRegistry::start_with(None, Some(&ca));
    let ca_file = ca.ca_pem.to_str().unwrap();
    let recipes = converted(
        dir.path(),
        &[
            "--registry",
            &format!("{}/olive", registry.host),
            "--registry-ca",
            ca_file,
        ],
    );

    let untrusting = CloudletProcess::start(&recipes, &dir.path().join("plain"), &[]);
    let (refused, _) = launch(&untrusting.api, &dir.path().join("refused"));
    assert!(!refused.status.success());
    let said = text(&refused);
    // A loopback registry is tried over plain HTTP first, as docker does;
    // this one answers that it speaks HTTPS, and the error says so.
    assert!(
        said.contains("HTTPS") && said.contains(&registry.host),
        "{said}"
    );
    assert!(untrusting.vms().is_empty());
    let log = untrusting.log();
    assert!(log.contains("--registry-ca"), "{log}");
    drop(untrusting);

    let trusting = CloudletProcess::start(
        &recipes,
        &dir.path().join("data"),
        &["--registry-ca", ca_file],
    );
    let (output, report) = launch(&trusting.api, &dir.path().join("alice"));
    assert_screen(&output, report.as_ref());
    assert_eq!(trusting.vms().len(), 1);
}

#[test]
fn the_original_sinfonia_tier3_and_our_stage2_reach_a_vm_of_our_cloudlet() {
    let (dir, recipes) = converted_to_layout();
    let cloudlet = CloudletProcess::start(&recipes, &dir.path().join("data"), &[]);
    let uuid = String::from_utf8(olive().args(["uuid", URL]).output().unwrap().stdout).unwrap();
    let report = testkit::original_stage2_report(
        &cloudlet.api,
        uuid.trim(),
        env!("CARGO_BIN_EXE_olive2022"),
        &viewer(),
        dir.path(),
        Duration::from_secs(60),
    );
    assert_eq!(report["banner"], "RFB 003.008\n");
    assert_eq!(report["argv"][0], "vnc://vmi-vnc:5900");
    assert!(
        report["name"].as_str().unwrap().starts_with("QEMU"),
        "{report}"
    );
}

#[test]
fn idle_leases_stop_their_vm_and_a_restart_cleans_up() {
    let (dir, recipes) = converted_to_layout();
    let data = dir.path().join("data");
    let cloudlet = CloudletProcess::start(&recipes, &data, &["--idle-timeout", "2"]);
    let (output, report) = launch(&cloudlet.api, &dir.path().join("client"));
    assert_screen(&output, report.as_ref());
    assert_eq!(cloudlet.vms().len(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cloudlet.vms().is_empty() {
        assert!(Instant::now() < deadline, "the idle VM was not stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cloudlet);

    // A cloudlet killed outright takes its VM with it (QEMU's parent-death
    // signal); the next one removes the files the VM left.
    let mut crashed = CloudletProcess::start(&recipes, &data, &[]);
    let (output, _) = launch(&crashed.api, &dir.path().join("client"));
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(crashed.vms().len(), 1);
    let _ = crashed.child.kill();
    let _ = crashed.child.wait();
    wait_until("the VM to end with its SIGKILLed cloudlet", 10, || {
        crashed.vms().is_empty()
    });
    assert!(!vm_files(&data).is_empty(), "the killed VM left no files");
    let _restarted = CloudletProcess::start(&recipes, &data, &[]);
    wait_until("the restart to remove the files left", 20, || {
        vm_files(&data).is_empty()
    });
}

/// Polls `done` every 200 ms for up to `seconds`.
fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "waited {seconds} s for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The files under the data directory's `vms/` (overlays, sockets, logs).
fn vm_files(data: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![data.join("vms")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn sigterm_stops_every_vm_and_exits_0() {
    let (dir, recipes) = converted_to_layout();
    let data = dir.path().join("data");
    let mut cloudlet = CloudletProcess::start(&recipes, &data, &[]);
    for client in ["alice", "bob"] {
        let (output, report) = launch(&cloudlet.api, &dir.path().join(client));
        assert_screen(&output, report.as_ref());
    }
    assert_eq!(cloudlet.vms().len(), 2);
    let asked = Instant::now();
    testkit::run("kill", &["-TERM", &cloudlet.child.id().to_string()]);
    let status = loop {
        if let Some(status) = cloudlet.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(25),
            "SIGTERM did not stop the cloudlet"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(cloudlet.vms().is_empty(), "QEMU left: {:?}", cloudlet.vms());
    assert!(vm_files(&data).is_empty(), "{:?}", vm_files(&data));
}

/// QEMU's parent-death signal fires when the *thread* that started it
/// ends; tokio's blocking threads end after 10 idle seconds. A VM must
/// survive its cloudlet being quiet for a minute.
#[test]
fn a_vm_survives_a_minute_of_idleness() {
    let (dir, recipes) = converted_to_layout();
    let cloudlet = CloudletProcess::start(&recipes, &dir.path().join("data"), &[]);
    let (output, report) = launch(&cloudlet.api, &dir.path().join("client"));
    assert_screen(&output, report.as_ref());
    let before = cloudlet.vms();
    assert_eq!(before.len(), 1);
    std::thread::sleep(Duration::from_secs(65));
    assert_eq!(
        cloudlet.vms(),
        before,
        "the VM died while the cloudlet idled"
    );
}

#[test]
fn bad_requests_get_problems_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    let uuid = String::from_utf8(olive().args(["uuid", URL]).output().unwrap().stdout).unwrap();
    // The original's recipe, Python tag and all.
    std::fs::write(
        recipes.join(format!("{}.yaml", uuid.trim())),
        "chart: https://cmusatyalab.github.io/olive2022/vmi\nversion: 0.1.4\nvalues:\n  containerDisk:\n    name: !!python/object:uuid.UUID\n      int: 1\n",
    )
    .unwrap();
    let cloudlet = CloudletProcess::start(&recipes, &dir.path().join("data"), &[]);
    let (output, _) = launch(&cloudlet.api, &dir.path().join("client"));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    // The client learns which recipe failed; the operator's log says why.
    assert!(
        text(&output).contains("Invalid recipe"),
        "{}",
        text(&output)
    );
    assert!(
        !text(&output).contains("python/object"),
        "{}",
        text(&output)
    );
    assert!(
        cloudlet.log().contains("python/object"),
        "{}",
        cloudlet.log()
    );
    let unknown = "vmnetx+https://olivearchive.org/nothing-here.nxpk";
    let output = olive()
        .args([
            "launch",
            "--tier1-url",
            &cloudlet.api,
            "--viewer",
            viewer().to_str().unwrap(),
            unknown,
        ])
        .env("XDG_CACHE_HOME", dir.path().join("client"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("404") || text(&output).to_lowercase().contains("no recipe"),
        "{}",
        text(&output)
    );
    assert!(cloudlet.vms().is_empty());
}

#[test]
fn a_burst_of_deploy_requests_is_answered_without_leaking_vms() {
    let (dir, recipes) = converted_to_layout();
    // About capacity, not the per-address limit: all come from 127.0.0.1.
    let cloudlet = CloudletProcess::start(
        &recipes,
        &dir.path().join("data"),
        &["--max-vms", "2", "--deploy-rate", "0"],
    );
    let uuid = String::from_utf8(olive().args(["uuid", URL]).output().unwrap().stdout).unwrap();
    // 20 clients, 200 requests from 8 threads at once.
    let keys: Vec<String> = (0..20)
        .map(|_| {
            let private = testkit::run("wg", &["genkey"]);
            let public = testkit::run(
                "sh",
                &["-c", &format!("echo {} | wg pubkey", private.trim())],
            );
            public
                .trim()
                .replace('+', "-")
                .replace('/', "_")
                .trim_end_matches('=')
                .to_owned()
        })
        .collect();
    let started = Instant::now();
    let codes: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let (keys, api, uuid) = (&keys, &cloudlet.api, uuid.trim());
                scope.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let key = &keys[(worker * 25 + i) % keys.len()];
                            let url = format!("{api}/api/v1/deploy/{uuid}/{key}");
                            http_status("POST", &url)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    assert_eq!(codes.len(), 200);
    assert!(
        codes.iter().all(|code| code == "200" || code == "503"),
        "{codes:?}"
    );
    assert!(
        codes.iter().filter(|code| *code == "200").count() >= 2,
        "{codes:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        cloudlet.vms().len() <= 2,
        "more VMs than --max-vms: {:?}",
        cloudlet.vms()
    );
    // Still serving afterwards.
    let status = http_status("GET", &format!("{}/api/v1/cloudlets/", cloudlet.api));
    assert_eq!(status, "200");
}

/// `--log-format json` at every level: each line is one JSON object; a
/// deploy logs its request and its lifecycle; no private key and no
/// registry credential appears anywhere.
#[test]
fn json_logs_tell_the_story_of_a_deploy_and_keep_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (user, password) = ("deploy", "tok3n-Secret-42");
    let registry = TestRegistry::start(Some((user, password)));
    let repo = format!("{}/private/olive", registry.host);
    let credentials = format!("{user}:{password}");
    let basic = testkit::run(
        "sh",
        &["-c", &format!("printf %s '{credentials}' | base64 -w0")],
    );
    let auth = dir.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{basic}"}}}}}}"#,
            registry.host
        ),
    )
    .unwrap();
    let recipes = converted_as(
        dir.path(),
        URL,
        &["--registry", &repo, "--deploy-token", &credentials],
        &[("REGISTRY_AUTH_FILE", &auth)],
    );

    let data = dir.path().join("data");
    // Every level, every crate: secrets must not appear even in traces.
    let mut cloudlet = CloudletProcess::start_with_env(
        &recipes,
        &data,
        &["--log-format", "json"],
        &[("OLIVE2022_LOG", "trace")],
    );
    let client_cache = dir.path().join("client");
    let (output, report) = launch_with_env(
        &cloudlet.api,
        URL,
        &client_cache,
        &[("OLIVE2022_LOG", "trace")],
    );
    assert_screen(&output, report.as_ref());
    // The client's libraries log too (human format: `LEVEL target: message`).
    let client_log = text(&output);
    for expected in [
        " sinfonia::keys: created a key for this VM",
        " sinfonia::deploy: tier 1 answered the deploy request",
        " launch::deploy: deployed",
        " tunnel::client::stack: WireGuard handshake complete",
        " launch::session: tunnel up",
        " launch::session: viewer started",
        " launch::session: viewer exited",
    ] {
        assert!(
            client_log.contains(expected),
            "no `{expected}` in {client_log}"
        );
    }
    testkit::run("kill", &["-TERM", &cloudlet.child.id().to_string()]);
    let status = cloudlet.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let log = cloudlet.log();
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|event| event["message"].as_str())
        .collect();
    for expected in [
        "deploying",
        "pulling the disk image",
        "disk image ready",
        "VM started",
        "deployed",
        "stopping: no new deploys, every VM stopped",
        "deployment stopped",
    ] {
        assert!(
            messages.contains(&expected),
            "no `{expected}` in {messages:?}"
        );
    }
    let access = events
        .iter()
        .find(|event| {
            event["message"] == "request"
                && event["method"] == "POST"
                && event["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/api/v1/deploy/"))
        })
        .unwrap_or_else(|| panic!("no access event for the deploy: {log}"));
    assert_eq!(access["status"], 200);
    assert!(access["milliseconds"].as_f64().is_some());
    assert!(access["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(access["path"].as_str().unwrap().ends_with('…'), "{access}");
    let ready = events
        .iter()
        .find(|event| event["message"] == "disk image ready")
        .unwrap();
    assert!(ready["bytes"].as_u64().unwrap() > 0, "{ready}");
    let stopped = events
        .iter()
        .find(|event| event["message"] == "deployment stopped")
        .unwrap();
    assert_eq!(stopped["reason"], "cloudlet stopping");
    // The libraries under the cloudlet log through the same subscriber.
    for (target, message) in [
        ("containerdisk::pull", "pulling the disk"),
        ("vmrunner", "QEMU started"),
        ("vmrunner", "QEMU stopped"),
        ("tunnel::server::engine", "peer added"),
        ("tunnel::server::engine", "WireGuard handshake"),
    ] {
        assert!(
            events.iter().any(|event| event["message"] == message
                && event["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(target))),
            "no `{message}` from {target}: {log}"
        );
    }

    // No secret, in any form, at any level.
    let cloudlet_key = std::fs::read_to_string(data.join("wireguard.key")).unwrap();
    let client_key = std::fs::read_dir(client_cache.join("sinfonia"))
        .unwrap()
        .flatten()
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .find_map(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("private_key:"))
                .map(|key| key.trim().to_owned())
        })
        .unwrap();
    for secret in [
        password,
        basic.as_str(),
        cloudlet_key.trim(),
        client_key.as_str(),
    ] {
        assert!(!secret.is_empty());
        assert!(!log.contains(secret), "a secret in the log: {secret}");
        assert!(
            !client_log.contains(secret),
            "a secret in the client's log: {secret}"
        );
    }
}

/// A real Prometheus (Debian's) scrapes `/metrics`; its query API then
/// returns what happened: one VM, one peer, its traffic, the image cached,
/// one pull, and the deploy requests by outcome.
#[test]
fn prometheus_scrapes_what_happened() {
    let (dir, recipes) = converted_to_layout();
    let cloudlet = CloudletProcess::start(&recipes, &dir.path().join("data"), &[]);
    let (output, report) = launch(&cloudlet.api, &dir.path().join("client"));
    assert_screen(&output, report.as_ref());
    let unknown = format!(
        "{}/api/v1/deploy/{}/{}",
        cloudlet.api,
        "11111111-2222-3333-4444-555555555555",
        "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI"
    );
    let status = http_status("POST", &unknown);
    assert_eq!(status, "404");
    let health = testkit::run("curl", &["-s", &format!("{}/healthz", cloudlet.api)]);
    assert_eq!(health.trim(), "ok");

    let prometheus = Prometheus::start(dir.path(), cloudlet.api.trim_start_matches("http://"));
    for (query, expected) in [
        ("olive2022_cloudlet_vms_running", 1.0),
        ("olive2022_cloudlet_tunnel_peers", 1.0),
        (
            "olive2022_cloudlet_deploy_requests_total{outcome=\"deployed\"}",
            1.0,
        ),
        (
            "olive2022_cloudlet_deploy_requests_total{outcome=\"unknown_recipe\"}",
            1.0,
        ),
        ("olive2022_cloudlet_pull_seconds_count", 1.0),
    ] {
        assert_eq!(prometheus.value(query), expected, "{query}");
    }
    for query in [
        "olive2022_cloudlet_tunnel_bytes_total{direction=\"rx\"}",
        "olive2022_cloudlet_tunnel_bytes_total{direction=\"tx\"}",
        "olive2022_cloudlet_image_cache_bytes",
    ] {
        assert!(prometheus.value(query) > 0.0, "{query}");
    }
}

/// Prometheus scraping one target every second, on a free loopback port,
/// its data in a temporary directory; stopped by its PID on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cloudlet\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The value of an instant query once Prometheus has one (waits up to
    /// 30 s for the first scrapes).
    fn value(&self, query: &str) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = Command::new("curl")
                .args(["-s", "-G", &format!("{}/api/v1/query", self.url)])
                .args(["--data-urlencode", &format!("query={query}")])
                .output()
                .unwrap();
            let answer: Value = serde_json::from_slice(&answer.stdout).unwrap_or(Value::Null);
            if let Some(value) = answer["data"]["result"][0]["value"][1].as_str() {
                return value.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no value for {query}: {answer}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs of `size` mounted at `path` (this test runs as root, like the
/// namespace tests); unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        testkit::run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path.to_str().unwrap(),
            ],
        );
        SmallDisk(path.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The names in a directory.
fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_full_cache_disk_is_a_503_and_leaves_nothing_partial() {
    let (dir, recipes) = converted_to_layout();
    let cache = dir.path().join("cache");
    let _small = SmallDisk::mount(&cache, "256k");
    let cloudlet = CloudletProcess::start(
        &recipes,
        &dir.path().join("data"),
        &["--cache-dir", cache.to_str().unwrap()],
    );
    let (output, _) = launch(&cloudlet.api, &dir.path().join("client"));
    let text = text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("image cache is full"), "{text}");
    assert!(
        cloudlet.log().contains("the image cache's disk is full"),
        "{}",
        cloudlet.log()
    );
    assert!(
        names_in(&cache).is_empty(),
        "left in the cache: {:?}",
        names_in(&cache)
    );
    assert!(cloudlet.vms().is_empty());
}

#[test]
fn images_beyond_the_cache_limit_are_evicted_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let destination = ["--output".to_owned(), format!("oci:{}", layout.display())];
    let destination: Vec<&str> = destination.iter().map(String::as_str).collect();
    let first_url = "vmnetx+https://olivearchive.org/launch/cache-first/package.nxpk";
    let recipes = converted_as(dir.path(), first_url, &destination, &[]);
    converted_as(dir.path(), URL, &destination, &[]);
    let cache = dir.path().join("cache");
    // One byte: every image but the ones in use must go.
    let cloudlet = CloudletProcess::start(
        &recipes,
        &dir.path().join("data"),
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--cache-max-bytes",
            "1",
        ],
    );
    let (first, report) = launch_url(&cloudlet.api, first_url, &dir.path().join("first-client"));
    assert_screen(&first, report.as_ref());
    let entries = |cache: &Path| -> Vec<String> {
        names_in(cache)
            .into_iter()
            .filter(|name| !name.starts_with('.'))
            .collect()
    };
    let first_entries = entries(&cache);
    assert_eq!(
        first_entries.len(),
        1,
        "the image in use is kept: {first_entries:?}"
    );
    // The first VM still runs: its image stays while the second is pulled.
    let (second, report) = launch(&cloudlet.api, &dir.path().join("second-client"));
    assert_screen(&second, report.as_ref());
    assert_eq!(entries(&cache).len(), 2, "an image in use was evicted");
    // Once the first VM is released, the next pull evicts its image.
    let uuid =
        String::from_utf8(olive().args(["uuid", first_url]).output().unwrap().stdout).unwrap();
    let key_file = std::fs::read_dir(dir.path().join("first-client/sinfonia"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let key_text = std::fs::read_to_string(key_file).unwrap();
    let public = key_text
        .lines()
        .find_map(|line| line.strip_prefix("public_key:"))
        .unwrap()
        .trim()
        .replace('+', "-")
        .replace('/', "_");
    let deleted = http_status(
        "DELETE",
        &format!("{}/api/v1/deploy/{}/{public}", cloudlet.api, uuid.trim()),
    );
    assert_eq!(deleted, "204");
    // Its VM stopped, the first image is over the limit and unused: gone.
    wait_until("the unused image to be evicted", 10, || {
        entries(&cache).len() == 1
    });
    assert!(
        cloudlet.log().contains("images evicted from the cache"),
        "{}",
        cloudlet.log()
    );
    // Launching it again pulls it again.
    let (third, report) = launch_url(&cloudlet.api, first_url, &dir.path().join("third-client"));
    assert_screen(&third, report.as_ref());
    assert_eq!(entries(&cache).len(), 2);
}

/// The uid (and gid) a process runs as, from `/proc`.
fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// The cloudlet needs no root: as `nobody` (with the `kvm` group when the
/// machine has one, for /dev/kvm), it serves the whole deploy → tunnel →
/// VNC path, and its VMs run as `nobody` too.
#[test]
fn an_unprivileged_cloudlet_serves_the_whole_path() {
    const NOBODY: &str = "65534";
    let (dir, recipes) = converted_to_layout();
    testkit::run(
        "chown",
        &[
            "-R",
            &format!("{NOBODY}:{NOBODY}"),
            dir.path().to_str().unwrap(),
        ],
    );
    let kvm_gid = testkit::run("sh", &["-c", "getent group kvm | cut -d: -f3"]);
    let groups = match kvm_gid.trim() {
        "" => "--clear-groups".to_owned(),
        gid => format!("--groups={gid}"),
    };
    let wrapper = [
        "setpriv",
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        &groups,
        "--",
    ];
    let data = dir.path().join("data");
    let cloudlet =
        CloudletProcess::start_as(&wrapper, &recipes, &data, &[], &[("HOME", "/nonexistent")]);
    assert_eq!(
        uid_of(cloudlet.child.id()),
        65534,
        "the cloudlet is not unprivileged"
    );
    let (output, report) = launch(&cloudlet.api, &dir.path().join("client"));
    assert_screen(&output, report.as_ref());
    let vms = cloudlet.vms();
    assert_eq!(vms.len(), 1);
    assert_eq!(uid_of(vms[0]), 65534, "the VM runs as root");
}
