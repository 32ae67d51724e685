//! What several integration tests of the binary share: running it, its
//! output as text, and a small real VM converted into an OCI layout for a
//! cloudlet to serve. (Each test file is its own crate and uses part of
//! it; `dead_code` is allowed for the rest.)
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

mod cloudlet;
pub mod settings;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use self::cloudlet::{CloudletProcess, launch_with_env, viewer};

/// `olive2022`, the binary under test.
pub fn olive() -> Command {
    Command::new(env!("CARGO_BIN_EXE_olive2022"))
}

/// Standard output then standard error, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A package of a small real ext4 disk named `name`, converted for `url`
/// into an OCI layout under `dir` (`dir/layout`); the recipes directory
/// (`dir/RECIPES`).
pub fn converted_to_layout(dir: &Path, url: &str, name: &str) -> PathBuf {
    let work = tempfile::tempdir_in(dir).unwrap();
    let raw = testkit::ext4_disk(work.path(), "24M");
    let qcow2 = testkit::qcow2_of(&raw, &[]);
    let package = work.path().join("vm.nxpk");
    testkit::package(&package, name, &qcow2, "qcow2", false);
    let recipes = dir.join("RECIPES");
    let layout = format!("oci:{}", dir.join("layout").display());
    convert(&package, url, &recipes, &["--output", &layout], &[]);
    recipes
}

/// `olive2022 -q convert --yes` of `package` as `url` to `destination`
/// (`--output …`, `--registry …`, and any other flags), its recipe into
/// `recipes`, with `env` set (and no credentials from the environment);
/// panics with its output when it fails.
pub fn convert(
    package: &Path,
    url: &str,
    recipes: &Path,
    destination: &[&str],
    env: &[(&str, &Path)],
) {
    let output = olive()
        .args(["-q", "convert", "--yes", "--recipes"])
        .arg(recipes)
        .args(destination)
        .arg(url)
        .arg(package)
        .env_remove("OLIVE2022_CREDENTIALS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}
