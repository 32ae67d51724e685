//! `olive2022`: an edge-native virtual desktop for VM archives.
//!
//! A thin shell over the library crates: it parses the command line (the
//! original Python tool's interface, plus new commands), draws progress, and
//! turns library errors into messages and exit codes. Exit codes: 0 success,
//! 1 failure, 2 usage error, 130 interrupted.
//!
//! What this tool keeps from the original and what it fixes is described in
//! `docs/original-defects.md`; every other page is listed in `docs/README.md`.

mod cli;
mod cloudlet;
mod completions;
mod convert;
mod demo;
mod demo_plan;
mod extract;
mod handler;
mod interrupt;
mod json;
mod launch;
mod logging;
mod manpages;
mod progress;
mod snapshot;
mod tier1;

use std::process::ExitCode;

use clap::Parser;
use vmnetx::shown::Shown;

use cli::{Cli, Command};

/// Exit status after Ctrl-C, as shells report it.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse_from(snapshot::args(std::env::args_os()));
    let Some(command) = &cli.command else {
        // The original prints its help and succeeds when given no command.
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::SUCCESS;
    };
    logging::init(&cli);
    let outcome = match command {
        Command::Uuid(args) => launch::uuid(args),
        Command::Launch(args) => launch::launch(&cli, args),
        Command::Stage2(args) => launch::stage2(&cli, args),
        Command::Extract(args) => extract::run(&cli, args),
        Command::Convert(args) => convert::run(&cli, args),
        Command::Install(args) => handler::install(&cli, args),
        Command::Uninstall(args) => handler::uninstall(&cli, args),
        Command::Cloudlet(args) => cloudlet::run(&cli, args),
        Command::Tier1(args) => tier1::run(&cli, args),
        Command::Demo(args) => demo::run(&cli, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => manpages::run(args),
        Command::RfbSnapshot(args) => snapshot::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => report(&error),
    }
}

/// Prints an error with its causes, one per line, and picks the exit code.
fn report(error: &anyhow::Error) -> ExitCode {
    if interrupt::caused(error) {
        eprintln!("olive2022: interrupted");
        return ExitCode::from(INTERRUPTED);
    }
    // Errors quote URLs, package fields and servers' answers: whatever
    // slipped through unescaped is escaped here, the one way out.
    eprintln!("olive2022: error: {}", Shown(&error.to_string()));
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {}", Shown(&cause.to_string()));
    }
    ExitCode::FAILURE
}
