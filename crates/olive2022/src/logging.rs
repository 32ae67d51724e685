//! Where the libraries' `tracing` events go: standard error, filtered by
//! `OLIVE2022_LOG` (`RUST_LOG` syntax, e.g. `cloudlet=debug,warn`) or else
//! by `-q` (errors only), nothing (warnings; information for `cloudlet`),
//! `-v` and `-vv` (one and two levels more). `--log-format json` writes one
//! JSON object per line.
//!
//! What a command reports to its user (progress, results) is printed by the
//! command; these events are for whoever operates it.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// The environment variable holding a log filter.
pub const LOG_ENV: &str = "OLIVE2022_LOG";

/// Installs the subscriber for the whole process.
pub fn init(cli: &Cli) {
    let filter =
        EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(default_level(cli)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // Flattened: `{"timestamp", "level", "target", "message", fields…}`.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The level shown without `OLIVE2022_LOG`. A server's operator wants what
/// happened; a command's user only what went wrong (the command prints its
/// own progress).
fn default_level(cli: &Cli) -> &'static str {
    let serving = matches!(cli.command, Some(Command::Cloudlet(_) | Command::Tier1(_)));
    let levels = if serving {
        ["error", "info", "debug", "trace"]
    } else {
        ["error", "warn", "info", "debug"]
    };
    let index = if cli.quiet {
        0
    } else {
        1 + usize::from(cli.verbose.min(2))
    };
    levels[index]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::{CommandFactory, Parser};

    use super::*;

    const URL: &str = "vmnetx+https://olivearchive.org/launch/abc/package.nxpk";

    /// The least each subcommand needs to parse.
    fn minimal_args(subcommand: &str) -> Vec<&'static str> {
        match subcommand {
            "launch" | "convert" | "uuid" => vec![URL],
            "extract" => vec!["-o", "out.qcow2", URL],
            "completions" => vec!["bash"],
            "rfb-snapshot" => vec!["vnc://127.0.0.1:5900", "out.png"],
            _ => vec![],
        }
    }

    fn level(subcommand: &str, flags: &[&str], after: bool) -> Result<&'static str, clap::Error> {
        let mut argv = vec!["olive2022"];
        if !after {
            argv.extend(flags);
        }
        argv.push(subcommand);
        if after {
            argv.extend(flags);
        }
        argv.extend(minimal_args(subcommand));
        Cli::try_parse_from(argv).map(|cli| default_level(&cli))
    }

    #[test]
    fn every_subcommand_takes_quiet_and_counted_verbose_anywhere() {
        let command = Cli::command();
        let names: Vec<&str> = command
            .get_subcommands()
            .map(|sub| sub.get_name())
            .collect();
        assert!(names.len() >= 12, "{names:?}");
        for name in names {
            // The servers (cloudlet, tier 1): their operator sees what
            // happened by default.
            let expected = if matches!(name, "cloudlet" | "tier1") {
                ["error", "info", "debug", "trace", "trace"]
            } else {
                ["error", "warn", "info", "debug", "debug"]
            };
            let cases: [&[&str]; 5] = [&["-q"], &[], &["-v"], &["-vv"], &["-v", "-vvv"]];
            for (flags, expected) in cases.iter().zip(expected) {
                for after in [false, true] {
                    let shown = level(name, flags, after)
                        .unwrap_or_else(|e| panic!("{name} {flags:?}: {e}"));
                    assert_eq!(shown, expected, "{name} {flags:?} after={after}");
                }
            }
            let error = level(name, &["-q", "-v"], true).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{name}"
            );
        }
    }
}
