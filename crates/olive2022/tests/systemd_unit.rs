//! `contrib/systemd/olive2022-cloudlet.service` and
//! `olive2022-tier1.service` as systemd itself reads them
//! (`systemd-analyze verify`), the hardening choices QEMU depends on, and
//! the example settings files read by the real binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::settings::{olive_without, printed};

const UNIT: &str = "olive2022-cloudlet.service";
const TIER1_UNIT: &str = "olive2022-tier1.service";
/// The binary's path in the unit as shipped.
const INSTALLED: &str = "/usr/local/bin/olive2022";

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd")
}

fn unit_text() -> String {
    std::fs::read_to_string(contrib().join(UNIT)).unwrap()
}

fn tier1_unit_text() -> String {
    std::fs::read_to_string(contrib().join(TIER1_UNIT)).unwrap()
}

/// The unit's settings: `Key=value` lines, comments left out.
fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn value(text: &str, key: &str) -> Option<String> {
    directives(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value)
}

/// `systemd-analyze verify` of `text` installed as the cloudlet's unit.
fn verify(text: &str) -> (bool, Vec<String>) {
    verify_as(UNIT, text)
}

/// `systemd-analyze verify` of `text` installed as unit `name` in a fresh
/// directory, `ExecStart` pointing at the built binary (verify checks that
/// it exists and is executable); every output line naming the unit.
fn verify_as(name: &str, text: &str) -> (bool, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace(INSTALLED, env!("CARGO_BIN_EXE_olive2022"));
    let unit = dir.path().join(name);
    std::fs::write(&unit, text).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd, see scripts/setup.sh)");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let about_unit = all
        .lines()
        .filter(|line| line.contains(name))
        .map(str::to_owned)
        .collect();
    (output.status.success(), about_unit)
}

#[test]
fn systemd_analyze_verify_passes_without_a_warning() {
    let text = unit_text();
    assert!(text.contains(&format!("ExecStart={INSTALLED} cloudlet ")));
    let (passed, warnings) = verify(&text);
    assert!(passed && warnings.is_empty(), "{warnings:#?}");
    // The check can fail: an unknown key is reported.
    let broken = text.replace("[Service]\n", "[Service]\nFrobnicate=yes\n");
    let (_, warnings) = verify(&broken);
    assert!(
        warnings.iter().any(|line| line.contains("Frobnicate")),
        "{warnings:#?}"
    );
}

#[test]
fn the_unit_keeps_what_qemu_and_a_graceful_stop_need() {
    let text = unit_text();
    let set = |key: &str| value(&text, key);
    assert_eq!(set("DynamicUser").as_deref(), Some("yes"));
    assert_eq!(set("SupplementaryGroups").as_deref(), Some("kvm"));
    assert_eq!(set("DeviceAllow").as_deref(), Some("/dev/kvm rw"));
    assert_ne!(set("PrivateDevices").as_deref(), Some("yes"));
    assert!(set("StateDirectory").is_some() && set("CacheDirectory").is_some());
    assert_eq!(set("ProtectSystem").as_deref(), Some("strict"));
    assert_eq!(set("NoNewPrivileges").as_deref(), Some("yes"));
    assert_eq!(set("PrivateTmp").as_deref(), Some("yes"));
    // QEMU's emulator needs pages both writable and executable.
    assert_eq!(set("MemoryDenyWriteExecute"), None);
    // SIGTERM to the cloudlet alone, which stops its VMs (about 10 s of
    // grace), and the rest of the group killed only after that.
    assert_eq!(set("KillMode").as_deref(), Some("mixed"));
    let timeout = set("TimeoutStopSec").unwrap();
    let seconds: u64 = timeout.trim_end_matches('s').parse().unwrap();
    assert!(seconds >= 20, "{timeout}");
}

#[test]
fn the_example_settings_file_is_read_by_the_cloudlet() {
    let file = contrib().join("cloudlet.toml");
    let home = tempfile::tempdir().unwrap();
    let output = olive_without("OLIVE2022_CLOUDLET_")
        .args(["cloudlet", "--print-config", "--config"])
        .arg(&file)
        .env("HOME", home.path())
        .env("STATE_DIRECTORY", "/var/lib/olive2022-cloudlet")
        .env("CACHE_DIRECTORY", "/var/cache/olive2022-cloudlet")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .output()
        .unwrap();
    let settings = printed(&output);
    // The file's own keys, as written in it.
    let example: toml::Table = std::fs::read_to_string(&file).unwrap().parse().unwrap();
    for key in ["listen", "wg-listen", "max-vms", "idle-timeout", "accel"] {
        assert_eq!(settings[key], example[key], "{key}");
    }
    let recipes = file.parent().unwrap().join("RECIPES");
    assert_eq!(settings["recipes"].as_str(), recipes.to_str());
    // The directories systemd gives the service.
    assert_eq!(
        settings["data-dir"].as_str(),
        Some("/var/lib/olive2022-cloudlet")
    );
    assert_eq!(
        settings["cache-dir"].as_str(),
        Some("/var/cache/olive2022-cloudlet")
    );
}

#[test]
fn the_tier1_unit_verifies_and_reads_its_example_settings() {
    let text = tier1_unit_text();
    assert!(text.contains(&format!("ExecStart={INSTALLED} tier1 --config ")));
    let (passed, warnings) = verify_as(TIER1_UNIT, &text);
    assert!(passed && warnings.is_empty(), "{warnings:#?}");
    let broken = text.replace("[Service]\n", "[Service]\nFrobnicate=yes\n");
    let (_, warnings) = verify_as(TIER1_UNIT, &broken);
    assert!(
        warnings.iter().any(|line| line.contains("Frobnicate")),
        "{warnings:#?}"
    );

    let file = contrib().join("tier1.toml");
    let output = olive_without("OLIVE2022_TIER1_")
        .args(["tier1", "--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let settings = printed(&output);
    let example: toml::Table = std::fs::read_to_string(&file).unwrap().parse().unwrap();
    for key in ["listen", "deploy-rate", "forward-timeout"] {
        assert_eq!(settings[key], example[key], "{key}");
    }
}
