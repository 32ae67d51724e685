//! Where the libraries' `tracing` events go: standard error, filtered by
//! `OLIVE2022_LOG` (`RUST_LOG` syntax, e.g. `cloudlet=debug,warn`) or else
//! by `-q` (errors only), nothing (warnings; information for `cloudlet`)
//! or `-v` (one level more).
//!
//! What a command reports to its user (progress, results) is printed by the
//! command; these events are for whoever operates it.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// The environment variable holding a log filter.
pub const LOG_ENV: &str = "OLIVE2022_LOG";

/// Installs the subscriber for the whole process.
pub fn init(cli: &Cli) {
    // A server's operator wants what happened; a command's user only what
    // went wrong (the command prints its own progress).
    let serving = matches!(cli.command, Some(Command::Cloudlet(_)));
    let default = if cli.quiet {
        "error"
    } else if cli.verbose {
        if serving { "debug" } else { "info" }
    } else if serving {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(default));
    let stderr = std::io::stderr();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr.is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
