//! `olive2022 completions SHELL`: the completion script clap derives from
//! the command line itself, so it never falls behind the flags.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// The name completions are registered under: the installed program's.
const PROGRAM: &str = "olive2022";

/// Prints the script for `args.shell` on standard output.
pub fn run(args: &CompletionsArgs) -> Result<ExitCode> {
    let mut command = without_hidden_subcommands(Cli::command());
    // Generated in memory: clap_complete panics on a failed write, and a
    // reader such as `head` may close the pipe early.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, PROGRAM, &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.context("cannot write the completion script")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The same command line without its hidden subcommands, which
/// `clap_complete` would otherwise offer (it filters hidden flags only).
fn without_hidden_subcommands(full: clap::Command) -> clap::Command {
    // The version `#[command(version)]` gives `Cli`, so `--version` stays.
    clap::Command::new(PROGRAM)
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(
            full.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        )
}
