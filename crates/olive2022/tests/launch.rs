//! `olive2022 launch` against a cloudlet built the way Kubernetes + Kilo
//! presents one (testkit's network-namespace cloudlet: wireguard-go,
//! dnsmasq, a real Xvnc, a tier-1 stand-in that adds our key as a peer).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::cloudlet::{Cloudlet, CloudletOptions, VncServer};

const URL: &str = "vmnetx+https://olivearchive.org/launch/win31/package.nxpk";

/// The Sinfonia UUID of [`URL`], as `olive2022 uuid` prints it.
fn uuid() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["uuid", URL])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The test viewer: reports what it saw over RFB to `$RFB_REPORT`.
fn viewer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rfb-probe"))
}

/// One launch with the test viewer; returns the output and the viewer's
/// report (if it got that far).
struct Launch {
    output: Output,
    report: Option<Value>,
    elapsed: Duration,
    cache: tempfile::TempDir,
}

fn launch(tier1: &str, extra: &[&str], env: &[(&str, &str)]) -> Launch {
    let cache = tempfile::tempdir().unwrap();
    let report = cache.path().join("report.json");
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_olive2022"));
    command
        .args([
            "launch",
            "--tier1-url",
            tier1,
            "--viewer",
            viewer().to_str().unwrap(),
        ])
        .args(extra)
        .arg(URL)
        .env("XDG_CACHE_HOME", cache.path())
        .env("RFB_REPORT", &report)
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let report = std::fs::read_to_string(&report)
        .ok()
        .map(|text| serde_json::from_str(&text).unwrap());
    Launch {
        output,
        report,
        elapsed: started.elapsed(),
        cache,
    }
}

impl Launch {
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    fn assert_screen(&self) -> &Value {
        assert!(self.output.status.success(), "{}", self.text());
        let report = self
            .report
            .as_ref()
            .unwrap_or_else(|| panic!("the viewer reported nothing: {}", self.text()));
        assert_eq!(report["banner"], "RFB 003.008\n");
        assert_eq!(
            (report["width"].as_u64(), report["height"].as_u64()),
            (Some(800), Some(600))
        );
        assert!(report["rects"].as_u64().unwrap() >= 1);
        assert!(
            report["red_fraction"].as_f64().unwrap() > 0.9,
            "the screen is not the VM's red: {report}"
        );
        let address = report["argv"][0].as_str().unwrap();
        assert!(address.starts_with("vnc://127.0.0.1:59"), "{address}");
        report
    }

    fn assert_failed_with(&self, expected: &[&str], within: Duration) {
        assert_eq!(self.output.status.code(), Some(1), "{}", self.text());
        let text = self.text();
        for part in expected {
            assert!(text.contains(part), "expected `{part}` in: {text}");
        }
        assert!(!text.contains("panicked"), "{text}");
        assert!(self.elapsed < within, "took {:?}: {text}", self.elapsed);
    }

    /// The private key of the key cache (one VM, one file).
    fn private_key(&self) -> String {
        let dir = self.cache.path().join("sinfonia");
        let file = std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(file).unwrap();
        let line = text
            .lines()
            .find(|line| line.starts_with("private_key:"))
            .unwrap();
        line.trim_start_matches("private_key:").trim().to_owned()
    }
}

#[test]
fn launch_reaches_the_vms_screen_through_the_tunnel() {
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let first = launch(&cloudlet.tier1_url(), &["-v"], &[("RFB_CONNECTIONS", "3")]);
    let report = first.assert_screen();
    assert_eq!(
        report["extra_banners"].as_array().unwrap().len(),
        2,
        "three connections at once"
    );
    assert!(
        first.text().contains(cloudlet.deployment_name()),
        "status names the deployment: {}",
        first.text()
    );
    assert!(
        !first.text().contains(&first.private_key()),
        "the private key never appears"
    );
    assert!(
        cloudlet.peers().contains("10.5.0."),
        "tier 1 added our key: {}",
        cloudlet.peers()
    );
    let requests = cloudlet.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("POST /api/v1/deploy/")),
        "{requests:?}"
    );
}

#[test]
fn launch_survives_ten_percent_packet_loss() {
    let options = CloudletOptions {
        loss_percent: 10,
        ..CloudletOptions::default()
    };
    let cloudlet = Cloudlet::start(options);
    launch(&cloudlet.tier1_url(), &[], &[]).assert_screen();
}

#[test]
fn faults_of_the_cloudlet_are_clear_errors() {
    let nxdomain = Cloudlet::start(CloudletOptions {
        dns_answers: false,
        ..CloudletOptions::default()
    });
    launch(&nxdomain.tier1_url(), &["--timeout", "20"], &[])
        .assert_failed_with(&["vmi-vnc", "resolve"], Duration::from_secs(15));
    drop(nxdomain);

    let no_vnc = Cloudlet::start(CloudletOptions {
        vnc: VncServer::None,
        ..CloudletOptions::default()
    });
    launch(&no_vnc.tier1_url(), &["--timeout", "3"], &[])
        .assert_failed_with(&["did not answer within 3 s"], Duration::from_secs(10));
    drop(no_vnc);

    let silent = Cloudlet::start(CloudletOptions {
        handshake: false,
        ..CloudletOptions::default()
    });
    launch(&silent.tier1_url(), &["--timeout", "3"], &[])
        .assert_failed_with(&["did not answer the handshake"], Duration::from_secs(10));
}

/// A tier 1 that answers every request with `status` and `body`.
fn fake_tier1(status: &str, content_type: &str, body: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    url
}

#[test]
fn faults_of_tier1_are_clear_errors() {
    let dead = format!("http://127.0.0.1:{}", testkit::registry::free_port());
    launch(&dead, &[], &[]).assert_failed_with(&["127.0.0.1"], Duration::from_secs(5));
    let problem = |status, title, detail| {
        let body = format!(r#"{{"title": "{title}", "detail": "{detail}", "status": 0}}"#);
        fake_tier1(status, "application/problem+json", &body)
    };
    launch(
        &problem("404 Not Found", "Not Found", "no recipe for this UUID"),
        &[],
        &[],
    )
    .assert_failed_with(
        &["Not Found", "no recipe for this UUID"],
        Duration::from_secs(5),
    );
    launch(
        &problem(
            "500 Internal Server Error",
            "Deployment failed",
            "every cloudlet failed",
        ),
        &[],
        &[],
    )
    .assert_failed_with(
        &["Deployment failed", "every cloudlet failed"],
        Duration::from_secs(5),
    );
    launch(
        &fake_tier1("200 OK", "application/json", "[{not json"),
        &[],
        &[],
    )
    .assert_failed_with(&["JSON"], Duration::from_secs(5));
    launch(&fake_tier1("200 OK", "application/json", "[]"), &[], &[])
        .assert_failed_with(&["no cloudlet"], Duration::from_secs(5));
}

#[test]
fn a_bad_server_key_is_refused() {
    // Our key is known in advance: the answer must name it, and only the
    // cloudlet's key (31 bytes) is wrong.
    let cache = tempfile::tempdir().unwrap();
    let private = testkit::run("wg", &["genkey"]).trim().to_owned();
    let public = testkit::run("sh", &["-c", &format!("echo {private} | wg pubkey")])
        .trim()
        .to_owned();
    let uuid = uuid();
    let keys = cache.path().join("sinfonia");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        keys.join(uuid.as_str()),
        format!("private_key: {private}\npublic_key: {public}\n"),
    )
    .unwrap();
    let body = format!(
        r#"[{{"DeploymentName": "x", "UUID": "{}", "ApplicationKey": "{public}", "Status": "Deployed",
        "TunnelConfig": {{"publicKey": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "endpoint": "127.0.0.1:9",
        "allowedIPs": ["0.0.0.0/0"], "address": ["10.5.0.2"], "dns": ["10.43.0.10"]}}}}]"#,
        uuid.as_str()
    );
    let tier1 = fake_tier1("200 OK", "application/json", &body);
    let cache_dir = cache.path().to_str().unwrap();
    launch(&tier1, &[], &[("XDG_CACHE_HOME", cache_dir)])
        .assert_failed_with(&["publicKey"], Duration::from_secs(5));
}

#[test]
fn config_debug_and_qrcode_stop_after_the_deploy() {
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let cwd = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args([
            "launch",
            "--config-debug",
            "--tier1-url",
            &cloudlet.tier1_url(),
            URL,
        ])
        .current_dir(cwd.path())
        .env("XDG_CACHE_HOME", cwd.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wg = std::fs::read_to_string(cwd.path().join("wg.conf")).unwrap();
    assert!(
        wg.contains("PrivateKey") && wg.contains(&cloudlet.public_key()),
        "{wg}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cwd.path().join("wg.conf"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "wg.conf holds the private key");
    let resolv = std::fs::read_to_string(cwd.path().join("resolv.conf")).unwrap();
    assert!(
        resolv.contains("options ndots:5") && resolv.contains(cloudlet.deployment_name()),
        "{resolv}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args([
            "launch",
            "--qrcode",
            "compact",
            "--tier1-url",
            &cloudlet.tier1_url(),
            URL,
        ])
        .env("XDG_CACHE_HOME", cwd.path().join("cache"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let qr = String::from_utf8(output.stdout).unwrap();
    assert!(qr.lines().count() > 10 && qr.contains('█'), "{qr}");
}

#[test]
fn dry_run_deploys_nothing() {
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["-n", "launch", "--tier1-url", &cloudlet.tier1_url(), URL])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(&cloudlet.tier1_url()));
    assert!(cloudlet.requests().is_empty(), "a dry run sends no request");
}

/// A viewer that writes its PID to `$VIEWER_PID` and then runs until
/// killed, ignoring SIGTERM (the stubborn case: launch must kill it).
fn stubborn_viewer(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("stubborn-viewer");
    std::fs::write(
        &path,
        "#!/bin/sh\ntrap '' TERM\necho $$ > \"$VIEWER_PID.tmp\"\nmv \"$VIEWER_PID.tmp\" \"$VIEWER_PID\"\nwhile :; do sleep 0.2; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn process_exists(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

#[test]
fn sigterm_stops_the_viewer_and_closes_the_tunnel() {
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let viewer = stubborn_viewer(dir.path());
    let pid_file = dir.path().join("viewer.pid");
    let mut child = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["launch", "--tier1-url", &cloudlet.tier1_url(), "--viewer"])
        .arg(&viewer)
        .arg(URL)
        .env("XDG_CACHE_HOME", dir.path())
        .env("VIEWER_PID", &pid_file)
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !pid_file.exists() {
        assert!(child.try_wait().unwrap().is_none(), "launch ended early");
        assert!(started.elapsed() < Duration::from_secs(60), "no viewer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let viewer_pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(process_exists(&viewer_pid));
    let signalled = Instant::now();
    testkit::run("kill", &["-TERM", &child.id().to_string()]);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Exit 130 as after Ctrl-C, within the viewer's grace period and a bit.
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted"), "{text}");
    assert!(signalled.elapsed() < Duration::from_secs(8), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // The viewer is gone (killed: it ignored SIGTERM), not orphaned.
    assert!(
        !process_exists(&viewer_pid),
        "viewer {viewer_pid} left running"
    );
}

/// A virtual X screen, stopped when dropped.
struct Xvfb {
    child: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        use std::io::BufRead;
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start Xvfb ({e}): apt-get install xvfb (scripts/setup.sh)")
            });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Xvfb {
            child,
            display: format!(":{}", line.trim()),
        }
    }

    /// The fraction of the screen that is pure red, and the screenshot.
    fn red_fraction(&self, png: &Path) -> f64 {
        let raw = testkit::run_bytes(
            "import",
            &[
                "-display",
                &self.display,
                "-window",
                "root",
                "-depth",
                "8",
                "rgb:-",
            ],
        );
        testkit::run(
            "import",
            &[
                "-display",
                &self.display,
                "-window",
                "root",
                png.to_str().unwrap(),
            ],
        );
        let red = raw
            .chunks_exact(3)
            .filter(|pixel| pixel[0] > 240 && pixel[1] < 16 && pixel[2] < 16)
            .count();
        red as f64 / (raw.len() / 3).max(1) as f64
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_viewer_shows_the_vms_screen() {
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let screen = Xvfb::start();
    // Only TigerVNC's vncviewer on PATH: launch picks it as the original
    // would and gives it its own address syntax (HOST::PORT).
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/bin/vncviewer", bin.path().join("vncviewer"))
        .unwrap_or_else(|e| panic!("tigervnc-viewer is needed (scripts/setup.sh): {e}"));
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["launch", "--tier1-url", &cloudlet.tier1_url(), URL])
        .env("PATH", bin.path())
        .env("DISPLAY", &screen.display)
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("launch-vncviewer.png");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut red = 0.0;
    while Instant::now() < deadline && red < 0.3 {
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "launch ended before the viewer showed anything"
        );
        red = screen.red_fraction(&screenshot);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("pkill")
        .args(["-f", &format!("vncviewer.*{}", screen.display)])
        .status();
    // The 800×600 red VM screen in a 1024×768 root window: about 60 %.
    assert!(
        red > 0.3,
        "the viewer does not show the VM's red screen ({red}); see {}",
        screenshot.display()
    );
}

#[test]
fn stage2_works_inside_the_original_sinfonia_tier3_namespace() {
    // The original's own launch path: sinfonia-tier3 deploys, builds its
    // namespace with its bundled wireguard-go and resolv.conf, and runs
    // our `stage2` in it, which must find vmi-vnc with the system resolver.
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let work = tempfile::tempdir().unwrap();
    let report = testkit::original_stage2_report(
        &cloudlet.tier1_url(),
        &uuid(),
        env!("CARGO_BIN_EXE_olive2022"),
        &viewer(),
        work.path(),
        Duration::from_secs(30),
    );
    assert_eq!(report["banner"], "RFB 003.008\n");
    assert_eq!(report["argv"][0], "vnc://vmi-vnc:5900");
    assert!(report["red_fraction"].as_f64().unwrap() > 0.9, "{report}");
}
