//! `install` and `uninstall`: the desktop handler for `vmnetx://` URLs, done
//! by the `desktop` crate; here the flags are read and its events shown (a
//! dry run's with `--json`: gathered into one `desktop::HandlerPlan`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use desktop::{Event, Handler, HandlerPlan, InstallOptions, Level, Scope, XdgDirs};
use launch::viewer;

use crate::cli::{Cli, InstallArgs, UninstallArgs};
use crate::progress::Verbosity;

/// `olive2022 install [--user|--system] [--convert]`.
pub fn install(cli: &Cli, args: &InstallArgs) -> Result<ExitCode> {
    crate::json::plan_only(args.json, cli.dry_run)?;
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
    let dirs = XdgDirs::from_env()?;
    if args.json {
        let plan = gathered(cli, |show| desktop::install(&dirs, &options, show))?;
        crate::json::print_line(&plan)?;
    } else {
        desktop::install(&dirs, &options, &mut shower(cli))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `olive2022 uninstall`.
pub fn uninstall(cli: &Cli, args: &UninstallArgs) -> Result<ExitCode> {
    crate::json::plan_only(args.json, cli.dry_run)?;
    let tool = database_tool();
    let dirs = XdgDirs::from_env()?;
    let run =
        |show: &mut dyn FnMut(Event)| desktop::uninstall(&dirs, tool.as_deref(), cli.dry_run, show);
    if args.json {
        crate::json::print_line(&gathered(cli, run)?)?;
    } else {
        run(&mut shower(cli))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a dry run, gathering the changes of its plan events into one
/// record (standard output is the JSON's alone); the other events are
/// shown as usual.
fn gathered(
    cli: &Cli,
    run: impl FnOnce(&mut dyn FnMut(Event)) -> Result<(), desktop::DesktopError>,
) -> Result<HandlerPlan> {
    let mut plan = HandlerPlan::default();
    let mut show = shower(cli);
    run(&mut |event: Event| match event.change {
        Some(change) => plan.record(change),
        None => show(event),
    })?;
    Ok(plan)
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
