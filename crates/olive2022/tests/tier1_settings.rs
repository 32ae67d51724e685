//! `olive2022 tier1`'s settings through the binary: flags over
//! `OLIVE2022_TIER1_*` variables over the `--config` file over the
//! defaults, as `--print-config` shows them; the printed file gives the
//! same settings back; the token is never printed; a bad file is refused
//! with its name and line.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::settings::{olive_without, printed};

/// `olive2022 tier1 ARGS` with no tier-1 variable from the caller, in
/// `dir`, plus `env`.
fn tier1(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    olive_without("OLIVE2022_TIER1_")
        .arg("tier1")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn flags_win_over_variables_over_the_file_over_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tier1.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9101\"\n\
         deploy-rate = 5\n\
         forward-timeout = 7\n\
         recipes = \"RECIPES\"\n\
         cloudlet-token = \"file-token-never-shown\"\n\
         trusted-proxy = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let output = tier1(
        dir.path(),
        &["--print-config", "--deploy-rate", "9"],
        &[
            ("OLIVE2022_TIER1_CONFIG", file.to_str().unwrap()),
            ("OLIVE2022_TIER1_DEPLOY_RATE", "8"),
            ("OLIVE2022_TIER1_FORWARD_TIMEOUT", "3"),
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let settings = printed(&output);
    assert_eq!(settings["deploy-rate"].as_integer(), Some(9), "flag");
    assert_eq!(
        settings["forward-timeout"].as_integer(),
        Some(3),
        "variable"
    );
    assert_eq!(settings["listen"].as_str(), Some("127.0.0.1:9101"), "file");
    let recipes = dir.path().join("RECIPES");
    assert_eq!(settings["recipes"].as_str(), recipes.to_str());
    let proxies = settings["trusted-proxy"].as_array().unwrap();
    assert_eq!(proxies[0].as_str(), Some("10.0.0.0/8"));
    assert!(!text.contains("file-token-never-shown"), "{text}");
    assert!(
        text.contains("# cloudlet-token: set (never shown)"),
        "{text}"
    );

    // The printed file, read again elsewhere, gives the same settings.
    let saved = dir.path().join("printed.toml");
    std::fs::write(&saved, &output.stdout).unwrap();
    let other = tempfile::tempdir().unwrap();
    let again = tier1(
        other.path(),
        &["--print-config", "--config", saved.to_str().unwrap()],
        &[],
    );
    assert_eq!(printed(&again), settings);
}

#[test]
fn defaults_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let settings = printed(&tier1(dir.path(), &["--print-config"], &[]));
    assert_eq!(settings["listen"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(settings["deploy-rate"].as_integer(), Some(60));
    assert_eq!(settings["forward-timeout"].as_integer(), Some(10));
    assert!(!settings.contains_key("recipes"));

    let file = dir.path().join("bad.toml");
    for (text, parts) in [
        (
            "listen = \"127.0.0.1:80\"\nmax-vms = 3\n",
            &["line 2", "`max-vms`"][..],
        ),
        (
            "forward-timeout = 0\n",
            &["forward-timeout", "at least 1 second"][..],
        ),
        (
            "trusted-proxy = [\"10.0.0.0/33\"]\n",
            &["trusted-proxy", "10.0.0.0/33"][..],
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let output = tier1(
            dir.path(),
            &["--print-config", "--config", file.to_str().unwrap()],
            &[],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{text}: {stderr}");
        assert!(output.stdout.is_empty());
        for part in parts {
            assert!(stderr.contains(part), "{part}: {stderr}");
        }
    }
}
