//! Peers for the registry tests besides the real registry
//! (`testkit::registry`): a proxy that cuts uploads (`proxy`), and a small
//! fake registry for faults a real one does not make (`fake_registry`),
//! both on the fake HTTP server of `testkit`; the tools the tests check
//! with, and a recording progress. A missing tool fails the test with the
//! Debian package to install.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

mod fake_registry;
mod images;
mod proxy;

use std::process::{Command, Stdio};

use containerdisk::registry::PushProgress;

pub use self::fake_registry::{FakeConfig, FakeRegistry};
pub use self::images::{Converted, converted, push_converted, random_bytes};
pub use self::proxy::{Cut, CutProxy};

/// Runs a tool; panics naming the Debian package when it is missing.
pub fn tool(program: &str, package: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}): install the Debian package {package}")
        })
}

/// Fails unless `program` can be started, naming its Debian package.
pub fn require(program: &str, package: &str) {
    if let Err(e) = Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!("cannot run `{program}` ({e}): install the Debian package {package}");
    }
}

/// `skopeo` with arguments; panics with its output when it fails.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let output = tool("skopeo", "skopeo", args);
    assert!(
        output.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A [`PushProgress`] that records what it hears.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Totals announced by `start`.
    pub starts: Vec<u64>,
    /// Sum of `advance`.
    pub advanced: u64,
    /// `skipped` calls.
    pub skipped: u32,
    /// `retry` calls: attempt and message.
    pub retries: Vec<(u32, String)>,
}

impl PushProgress for Recorder {
    fn start(&mut self, total: Option<u64>) {
        self.starts.push(total.unwrap_or(0));
    }
    fn advance(&mut self, bytes: u64) {
        self.advanced += bytes;
    }
    fn skipped(&mut self) {
        self.skipped += 1;
    }
    fn retry(&mut self, attempt: u32, error: &dyn std::error::Error) {
        self.retries.push((attempt, error.to_string()));
    }
}
