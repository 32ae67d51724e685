//! `--zeroconf` on both sides, between two network namespaces joined by a
//! veth pair (multicast on), so that mDNS really crosses a link:
//!
//! ```text
//!  netns zc<pid>-<n>-c  10.77.0.1/24 ◄─veth─► 10.77.0.2/24  netns zc<pid>-<n>-u
//!  the cloudlet side                                         the user side
//! ```
//!
//! - Sinfonia's own mDNS library (Python `zeroconf`, Debian's
//!   python3-zeroconf) browsing on the user side finds our
//!   `cloudlet --zeroconf` with Sinfonia's tier-2 record, and sees it
//!   withdrawn when the cloudlet is stopped;
//! - our `launch --zeroconf` finds a tier 2 announced with that library the
//!   way Sinfonia's tier 2 does it, and deploys through our cloudlet, found
//!   the same way, up to the VM's screen;
//! - with nothing announced it fails clearly within the browse time.
//!
//! Sinfonia's own tier 3 cannot take part: its `--zeroconf` raises
//! NotImplementedError.
#![allow(clippy::unwrap_used)]

mod common;

use common::{converted_to_layout, text};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

const URL: &str = "vmnetx+https://olivearchive.org/launch/zeroconf-test/package.nxpk";
const CLOUDLET_IP: &str = "10.77.0.1";
const USER_IP: &str = "10.77.0.2";
const API_PORT: u16 = 8080;
/// Debian's interpreter, the one python3-zeroconf is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// Browses for Sinfonia's service type and prints one JSON line per event.
const PY_BROWSE: &str = r#"
import json, sys, time
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf
def say(**event):
    print(json.dumps(event), flush=True)
class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=5000)
        say(event="found", name=name, port=info.port, server=info.server,
            addresses=info.parsed_addresses(),
            properties={k.decode(): v.decode() for k, v in info.properties.items()})
    def update_service(self, zc, type_, name):
        pass
    def remove_service(self, zc, type_, name):
        say(event="removed", name=name)
zc = Zeroconf()
ServiceBrowser(zc, "_sinfonia._tcp.local.", Listener())
time.sleep(float(sys.argv[1]))
zc.close()
"#;

/// Registers a tier 2 exactly as Sinfonia's `tier2-server --zeroconf` does.
const PY_REGISTER: &str = r#"
import sys, time
from zeroconf import ServiceInfo, Zeroconf
info = ServiceInfo("_sinfonia._tcp.local.", "cloudlet._sinfonia._tcp.local.",
                   parsed_addresses=[sys.argv[1]], port=int(sys.argv[2]),
                   properties=dict(path="/"))
zc = Zeroconf()
zc.register_service(info, allow_name_change=True)
print("registered", flush=True)
try:
    time.sleep(120)
finally:
    zc.unregister_all_services()
    zc.close()
"#;

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Link {
    cloudlet_side: String,
    user_side: String,
    veths: [String; 2],
}

impl Link {
    fn new() -> Link {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let (veth_c, veth_u) = (format!("zcv{tag}c"), format!("zcv{tag}u"));
        let link = Link {
            cloudlet_side: format!("zc{tag}c"),
            user_side: format!("zc{tag}u"),
            veths: [veth_c.clone(), veth_u.clone()],
        };
        ip(&["netns", "add", &link.cloudlet_side]);
        ip(&["netns", "add", &link.user_side]);
        ip(&[
            "link", "add", &veth_c, "type", "veth", "peer", "name", &veth_u,
        ]);
        for (side, veth, address) in [
            (&link.cloudlet_side, &veth_c, CLOUDLET_IP),
            (&link.user_side, &veth_u, USER_IP),
        ] {
            ip(&["link", "set", veth, "netns", side]);
            ip(&[
                "-n",
                side,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                veth,
            ]);
            ip(&["-n", side, "link", "set", "lo", "up"]);
            ip(&["-n", side, "link", "set", veth, "multicast", "on", "up"]);
        }
        link
    }

    /// `program` to be run inside `side` (`ip netns exec` executes it, so
    /// the child's PID is the program's).
    fn command(side: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", side]).arg(program);
        command.stdin(Stdio::null());
        command
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for side in [&self.cloudlet_side, &self.user_side] {
            let _ = Command::new("ip").args(["netns", "delete", side]).status();
        }
        // Only still there if the test failed before moving them.
        for veth in &self.veths {
            let _ = Command::new("ip")
                .args(["link", "delete", veth])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A child process stopped by its PID on drop: SIGTERM, then SIGKILL.
struct Running(Child);

impl Running {
    /// SIGTERM, and the exit status within `grace` (SIGKILL after).
    fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        testkit::process::stop(&mut self.0, "TERM", grace)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(15));
    }
}

/// The lines of `stdout`, as they come.
fn lines(stdout: ChildStdout) -> Receiver<String> {
    let (send, receive) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The Python `script`, saved as `dir/name`, run inside `side`; its output
/// lines.
fn python(
    dir: &Path,
    side: &str,
    (name, script): (&str, &str),
    args: &[&str],
) -> (Running, Receiver<String>) {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(script.as_bytes()))
        .unwrap();
    let mut child = Link::command(side, PYTHON)
        .arg(&path)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (Running(child), lines(stdout))
}

/// `olive2022 cloudlet` on the cloudlet side with `announced` (the flag,
/// or a settings file that turns it on), once it serves.
fn cloudlet(link: &Link, dir: &Path, recipes: &Path, announced: &[&str]) -> Running {
    let mut child = Link::command(&link.cloudlet_side, env!("CARGO_BIN_EXE_olive2022"))
        .args(["cloudlet", "--announce"])
        .args(announced)
        .args(["--listen", &format!("{CLOUDLET_IP}:{API_PORT}")])
        .args(["--wg-listen", &format!("{CLOUDLET_IP}:51820")])
        .args(["--public-endpoint", &format!("{CLOUDLET_IP}:51820")])
        .arg("--recipes")
        .arg(recipes)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("cloudlet.log")).unwrap())
        .spawn()
        .unwrap();
    let ready = lines(child.stdout.take().unwrap());
    let cloudlet = Running(child);
    let line = ready.recv_timeout(Duration::from_secs(60));
    assert!(
        line.is_ok(),
        "the cloudlet did not start: {}",
        std::fs::read_to_string(dir.join("cloudlet.log")).unwrap_or_default()
    );
    cloudlet
}

/// The next JSON event of the Python browser within `within`.
fn next_event(events: &Receiver<String>, within: Duration) -> Value {
    let line = events
        .recv_timeout(within)
        .unwrap_or_else(|e| panic!("the Python browser reported nothing ({e})"));
    serde_json::from_str(&line).unwrap()
}

/// `olive2022 --dry-run launch --zeroconf` on the user side.
fn dry_run_launch(link: &Link) -> (Output, Duration) {
    let started = Instant::now();
    let output = Link::command(&link.user_side, env!("CARGO_BIN_EXE_olive2022"))
        .args(["--dry-run", "launch", "--zeroconf", URL])
        .env_remove("OLIVE2022_TIER1_URL")
        .output()
        .unwrap();
    (output, started.elapsed())
}

#[test]
fn python_zeroconf_finds_our_cloudlet_with_sinfonias_record_until_it_stops() {
    let link = Link::new();
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    // From the settings file, as a service would have it.
    let settings = dir.path().join("cloudlet.toml");
    std::fs::write(&settings, "zeroconf = true\n").unwrap();
    let mut cloudlet = cloudlet(
        &link,
        dir.path(),
        &recipes,
        &["--config", settings.to_str().unwrap()],
    );

    let (_browser, events) = python(
        dir.path(),
        &link.user_side,
        ("browse.py", PY_BROWSE),
        &["60"],
    );
    let found = next_event(&events, Duration::from_secs(30));
    assert_eq!(found["event"], "found", "{found}");
    assert_eq!(found["name"], "cloudlet._sinfonia._tcp.local.");
    assert_eq!(found["port"], API_PORT);
    assert_eq!(found["addresses"], serde_json::json!([CLOUDLET_IP]));
    assert_eq!(found["properties"], serde_json::json!({"path": "/"}));
    assert_eq!(found["server"], "cloudlet._sinfonia._tcp.local.");

    // A graceful stop withdraws the record (goodbye packets).
    let status = cloudlet.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let removed = next_event(&events, Duration::from_secs(10));
    assert_eq!(removed["event"], "removed", "{removed}");
    assert_eq!(removed["name"], "cloudlet._sinfonia._tcp.local.");
    let log = std::fs::read_to_string(dir.path().join("cloudlet.log")).unwrap();
    assert!(log.contains("zeroconf: cloudlet announced"), "{log}");
    assert!(log.contains("zeroconf: announcement withdrawn"), "{log}");
}

#[test]
fn launch_zeroconf_finds_a_tier2_announced_as_sinfonia_does() {
    let link = Link::new();
    let dir = tempfile::tempdir().unwrap();
    let (_tier2, said) = python(
        dir.path(),
        &link.cloudlet_side,
        ("register.py", PY_REGISTER),
        &[CLOUDLET_IP, "8123"],
    );
    let registered = said.recv_timeout(Duration::from_secs(30));
    assert_eq!(registered.as_deref(), Ok("registered"));

    let (output, _) = dry_run_launch(&link);
    let text = text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("Tier 1: http://{CLOUDLET_IP}:8123/")),
        "{text}"
    );
    assert!(
        text.contains("Found cloudlet cloudlet._sinfonia._tcp.local."),
        "{text}"
    );
}

#[test]
fn launch_zeroconf_without_a_cloudlet_fails_clearly_within_the_browse_time() {
    let link = Link::new();
    let (output, took) = dry_run_launch(&link);
    let text = text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(
            "no Sinfonia cloudlet (_sinfonia._tcp.local.) answered on the local network within 3 s"
        ),
        "{text}"
    );
    // The whole browse time, and not much more (the machine may be busy).
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn launch_zeroconf_reaches_the_screen_of_a_vm_of_our_cloudlet() {
    let link = Link::new();
    let dir = tempfile::tempdir().unwrap();
    let recipes = converted_to_layout(dir.path(), URL, "Zeroconf test VM");
    let _cloudlet = cloudlet(&link, dir.path(), &recipes, &["--zeroconf"]);

    let report = dir.path().join("report.json");
    let output = Link::command(&link.user_side, env!("CARGO_BIN_EXE_olive2022"))
        .args(["launch", "--zeroconf", "--timeout", "120", "--viewer"])
        .arg(env!("CARGO_BIN_EXE_rfb-probe"))
        .arg(URL)
        .env("XDG_CACHE_HOME", dir.path().join("user"))
        .env("RFB_REPORT", &report)
        .env_remove("OLIVE2022_VIEWER")
        .env_remove("OLIVE2022_TIER1_URL")
        .output()
        .unwrap();
    let text = text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "Found cloudlet cloudlet._sinfonia._tcp.local. at http://{CLOUDLET_IP}:{API_PORT}/"
        )),
        "{text}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["banner"], "RFB 003.008\n");
    assert!(
        report["name"].as_str().unwrap().starts_with("QEMU"),
        "{report}"
    );
    // The deploy request came over the link, from the user side.
    let log = std::fs::read_to_string(dir.path().join("cloudlet.log")).unwrap();
    assert!(log.contains(&format!("client=\"{USER_IP}:")), "{log}");
    // Announced once, by one responder.
    assert_eq!(
        log.matches("zeroconf: cloudlet announced").count(),
        1,
        "{log}"
    );
}
