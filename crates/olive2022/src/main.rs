//! `olive2022`: an edge-native virtual desktop for VM archives.
//!
//! A thin shell over the library crates: it parses the command line (the
//! original Python tool's interface, plus new commands), draws progress, and
//! turns library errors into messages and exit codes. Exit codes: 0 success,
//! 1 failure, 2 usage error or a command that is not implemented yet,
//! 130 interrupted.

mod cli;
mod convert;
mod desktop;
mod extract;
mod interrupt;
mod launch;
mod progress;
mod source;
mod viewer;
mod vm;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Exit status of a command that is not implemented yet.
const NOT_IMPLEMENTED: u8 = 2;
/// Exit status after Ctrl-C, as shells report it.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = &cli.command else {
        // The original prints its help and succeeds when given no command.
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::SUCCESS;
    };
    let outcome = match command {
        Command::Uuid(args) => launch::uuid(args),
        Command::Launch(args) => launch::launch(&cli, args),
        Command::Stage2(args) => launch::stage2(&cli, args),
        Command::Extract(args) => extract::run(&cli, args),
        Command::Convert(args) => convert::run(&cli, args),
        Command::Install(args) => desktop::install(&cli, args),
        Command::Uninstall => desktop::uninstall(&cli),
        Command::Cloudlet | Command::Demo => return not_implemented(command.name()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => report(&error),
    }
}

fn not_implemented(command: &str) -> ExitCode {
    eprintln!("olive2022 {command}: not implemented yet");
    ExitCode::from(NOT_IMPLEMENTED)
}

/// Prints an error with its causes, one per line, and picks the exit code.
fn report(error: &anyhow::Error) -> ExitCode {
    if interrupt::caused(error) {
        eprintln!("olive2022: interrupted");
        return ExitCode::from(INTERRUPTED);
    }
    eprintln!("olive2022: error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}
