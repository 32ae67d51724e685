//! The command line: the original's interface, `uuid`, and `demo -n`.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

fn olive(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_olive2022"));
    command
        .args(args)
        .stdin(Stdio::null())
        .env_remove("OLIVE2022_TIER1_URL");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const URL: &str = "vmnetx+https://olivearchive.org/launch/8d3c6b72e1/package.nxpk";
const UUID: &str = "cefd5401-036a-5e48-afd7-062c24ab3a0b";

#[test]
fn uuid_matches_every_reference_vector() {
    // The vectors live with the crate that owns the URL contract.
    let vectors = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vmnetx/tests/data/vmnetx-uuid.tsv"
    );
    let text = std::fs::read_to_string(vectors).unwrap_or_else(|e| panic!("{vectors}: {e}"));
    let mut count = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (url, expected) = line.split_once('\t').unwrap();
        let output = olive(&["uuid", url], &[]);
        assert!(output.status.success(), "{url}");
        assert_eq!(stdout(&output).trim(), expected.trim(), "{url}");
        count += 1;
    }
    assert!(count >= 14);
}

#[test]
fn dry_run_launch_prints_uuid_and_tier1() {
    let output = olive(&["-n", "launch", URL], &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains(UUID) && text.contains("https://cmu.findcloudlet.org"),
        "{text}"
    );
    let output = olive(
        &["--dry-run", "launch", URL],
        &[("OLIVE2022_TIER1_URL", "http://127.0.0.1:9")],
    );
    assert!(stdout(&output).contains("http://127.0.0.1:9"));
    let output = olive(
        &["launch", "-n", "--tier1-url", "http://tier1.example", URL],
        &[],
    );
    assert!(stdout(&output).contains("http://tier1.example"));
}

#[test]
fn hostile_urls_are_refused() {
    for url in [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "vmnetx+https://host/\u{7}bell",
        "vmnetx+https://",
    ] {
        let output = olive(&["uuid", url], &[]);
        assert_eq!(output.status.code(), Some(1), "{url}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("error"),
            "{url}"
        );
    }
    let long = format!("vmnetx+https://olivearchive.org/{}", "a".repeat(100_000));
    assert_eq!(olive(&["uuid", &long], &[]).status.code(), Some(1));
}

#[test]
fn dry_run_demo_prints_the_plan_and_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let output = olive(
        &[
            "-n",
            "demo",
            "--headless",
            "--work-dir",
            work.to_str().unwrap(),
            "--screenshot",
            "shot.png",
        ],
        &[],
    );
    assert!(output.status.success());
    let text = stdout(&output);
    for part in [
        "vmnetx+https://olivearchive.org/demo/olive2022-demo.nxpk",
        "SYSLINUX",
        "cloudlet",
        "shot.png",
        "accel tcg",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(!work.exists());
    // The screenshot helper is hidden from the help.
    assert!(!stdout(&olive(&["--help"], &[])).contains("rfb-snapshot"));
}

#[test]
fn version_and_help() {
    let output = olive(&["--version"], &[]);
    assert!(stdout(&output).starts_with("olive2022 "));
    let output = olive(&[], &[]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("extract"));
    assert_eq!(olive(&["frobnicate"], &[]).status.code(), Some(2));
}
