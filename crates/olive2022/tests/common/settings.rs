//! The servers' settings as `--print-config` shows them: the binary run
//! with none of the caller's variables of a prefix, and its output read
//! back as TOML.

use std::process::{Command, Output};

/// `olive2022` without the caller's variables that start with `prefix`
/// (`OLIVE2022_CLOUDLET_`, `OLIVE2022_TIER1_`), so a test sees only its own.
pub fn olive_without(prefix: &str) -> Command {
    let mut command = super::olive();
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with(prefix) {
            command.env_remove(name);
        }
    }
    command
}

/// The printed settings, parsed back as TOML (panics with the output when
/// the command failed).
pub fn printed(output: &Output) -> toml::Table {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.parse().unwrap()
}
