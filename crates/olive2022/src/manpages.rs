//! `olive2022 man [--dir DIR]`: roff manual pages generated from the
//! command line (`clap_mangen`), so they document exactly the flags, the
//! defaults and the environment variables the program reads.
//!
//! With `--dir`, the main page `olive2022.1` and one page per visible
//! subcommand (`olive2022-convert.1`, …) are written there, and their paths
//! printed one a line; without it, the main page goes to standard output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};

/// Runs `man`.
pub fn run(args: &ManArgs) -> Result<ExitCode> {
    // `help` is not a page of its own: every page has its options.
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built, so subcommands carry the global flags and their full names
    // (`olive2022-convert`), which become the pages' titles and files.
    command.build();
    let Some(dir) = &args.dir else {
        clap_mangen::Man::new(command)
            .render(&mut std::io::stdout().lock())
            .context("cannot write the manual page")?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for page in write_pages(&command, dir)? {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `command` and of each visible subcommand, deepest
/// first; returns their paths.
fn write_pages(command: &clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut pages = Vec::new();
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        pages.extend(write_pages(subcommand, dir)?);
    }
    let page = clap_mangen::Man::new(command.clone())
        .generate_to(dir)
        .with_context(|| format!("cannot write a manual page in {}", dir.display()))?;
    pages.push(page);
    Ok(pages)
}
