//! Every seed and every saved crash of every fuzz target, replayed on the
//! stable compiler through the targets' own bodies: a crash the fuzzer
//! found once is a failing test until it is fixed, and stays fixed.
//!
//! Seeds are under `fuzz/seeds/<target>/`, crashes (minimised) under
//! `fuzz/regressions/<target>/`; see `docs/fuzzing.md`.

use std::panic;
use std::path::{Path, PathBuf};

/// The `fuzz` directory of the repository.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Runs `target` on every file of `dir`; the files that made it panic.
fn replay(target: fuzzing::Target, dir: &Path) -> (usize, Vec<String>) {
    let files = inputs(dir);
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if panic::catch_unwind(|| target(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    (files.len(), failed)
}

#[test]
fn every_seed_and_regression_runs_without_panicking() {
    let fuzz = fuzz_dir();
    let mut failed = Vec::new();
    for (name, target) in fuzzing::TARGETS {
        let (seeds, seed_failures) = replay(target, &fuzz.join("seeds").join(name));
        assert!(seeds > 0, "target {name} has no seeds");
        let (_, regression_failures) = replay(target, &fuzz.join("regressions").join(name));
        failed.extend(seed_failures);
        failed.extend(regression_failures);
    }
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap_or_default();
    for (name, _) in fuzzing::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no binary {name}"
        );
    }
}
