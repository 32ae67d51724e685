//! `install` and `uninstall`: the desktop handler for `vmnetx://` URLs, done
//! by the `desktop` crate; here the flags are read and its events shown.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use desktop::{Event, Handler, InstallOptions, Level, Scope, XdgDirs};
use launch::viewer;

use crate::cli::{Cli, InstallArgs};
use crate::progress::Verbosity;

/// `olive2022 install [--user|--system] [--convert]`.
pub fn install(cli: &Cli, args: &InstallArgs) -> Result<ExitCode> {
    let options = InstallOptions {
        program: std::env::current_exe().context("cannot find the path of this program")?,
        handler: if args.convert {
            Handler::Convert
        } else {
            Handler::Launch
        },
        scope: if args.system {
            Scope::System
        } else {
            Scope::User
        },
        database_tool: database_tool(),
        dry_run: cli.dry_run,
    };
    desktop::install(&XdgDirs::from_env()?, &options, &mut shower(cli))?;
    Ok(ExitCode::SUCCESS)
}

/// `olive2022 uninstall`.
pub fn uninstall(cli: &Cli) -> Result<ExitCode> {
    let tool = database_tool();
    desktop::uninstall(
        &XdgDirs::from_env()?,
        tool.as_deref(),
        cli.dry_run,
        &mut shower(cli),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Shows each event where it belongs: plans on standard output, the rest as
/// status lines.
fn shower(cli: &Cli) -> impl FnMut(Event) {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.is_verbose(),
    };
    move |event: Event| match event.level {
        Level::Plan if event.message.ends_with('\n') => print!("{}", event.message),
        Level::Plan => println!("{}", event.message),
        Level::Status => verbosity.status(event.message),
        Level::Detail => verbosity.detail(event.message),
        Level::Warning => eprintln!("olive2022: warning: {}", event.message),
    }
}

/// `update-desktop-database` when it is installed (Debian package
/// `desktop-file-utils`).
fn database_tool() -> Option<PathBuf> {
    viewer::find_program(
        &OsString::from("update-desktop-database"),
        std::env::var_os("PATH").as_deref(),
    )
}
