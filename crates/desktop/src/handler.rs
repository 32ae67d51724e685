//! `install` and `uninstall`: the steps, in order, each reported as an
//! [`Event`] for the caller to show.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::entry::desktop_entry;
use crate::files::{read_optional, write_atomic};
use crate::mimeapps::{register, unregister};
use crate::plan::{Change, DefaultHandlerChange, EntryFile, HandlerEdit};
use crate::{DESKTOP_FILE_NAME, DesktopError, SCHEME_TYPES, XdgDirs};

/// Which command the desktop entry runs on a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `olive2022 launch URL` (the default).
    Launch,
    /// `olive2022 convert URL`.
    Convert,
}

impl Handler {
    /// The subcommand's name.
    pub fn command(self) -> &'static str {
        match self {
            Handler::Launch => "launch",
            Handler::Convert => "convert",
        }
    }
}

/// Whose desktop gets the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This user's data and config homes.
    User,
    /// The first system data and config directories (needs root).
    System,
}

/// How loud an [`Event`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A dry run's plan: the result itself, for standard output.
    Plan,
    /// A step done, worth a status line.
    Status,
    /// A detail for the verbose.
    Detail,
    /// Something failed that does not fail the command.
    Warning,
}

/// One thing that happened (or, in a dry run, would happen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// How loud it is.
    pub level: Level,
    /// What happened, as one or more lines for a person.
    pub message: String,
    /// For [`Level::Plan`], the change as a record.
    pub change: Option<Change>,
}

/// What `install` needs to know.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The absolute path of the program the entry runs.
    pub program: PathBuf,
    /// Which command it runs.
    pub handler: Handler,
    /// Whose desktop.
    pub scope: Scope,
    /// `update-desktop-database`, when installed.
    pub database_tool: Option<PathBuf>,
    /// Report only; touch nothing.
    pub dry_run: bool,
}

/// Writes the desktop entry, removes older copies, and makes it the default
/// handler of the three schemes.
pub fn install(
    dirs: &XdgDirs,
    options: &InstallOptions,
    report: &mut dyn FnMut(Event),
) -> Result<(), DesktopError> {
    let dry_run = options.dry_run;
    let entry = desktop_entry(&options.program, options.handler)?;
    let system = options.scope == Scope::System;
    let (apps_dir, mimeapps) = match options.scope {
        Scope::System => (
            dirs.data_dirs[0].join("applications"),
            dirs.config_dirs[0].join("mimeapps.list"),
        ),
        Scope::User => (
            dirs.data_home.join("applications"),
            dirs.config_home.join("mimeapps.list"),
        ),
    };
    let target = apps_dir.join(DESKTOP_FILE_NAME);
    let refresh = |dir: &Path, report: &mut dyn FnMut(Event)| {
        refresh_database(options.database_tool.as_deref(), dir, dry_run, report);
    };

    if dry_run {
        let message = format!("Would write {}:\n{entry}", target.display());
        let file = EntryFile {
            path: target.clone(),
            text: entry.clone(),
        };
        report(plan(message, Change::Write(file)));
    } else {
        write_atomic(&target, entry.as_bytes(), 0o644)
            .map_err(|source| file_error(install_hint(system, &target), source))?;
        report(status(format!("Installed {}", target.display())));
    }

    // Remove older copies elsewhere, as the original does (it removes them
    // first; we do it once the new one is in place, so that a failed write
    // leaves the old handler working). The copy at the target was replaced.
    for dir in dirs.application_dirs() {
        let old = dir.join(DESKTOP_FILE_NAME);
        if old == target || !old.exists() {
            continue;
        }
        if dry_run {
            let message = format!("Would remove the older {}", old.display());
            report(plan(message, Change::Remove(old)));
        } else if let Err(error) = std::fs::remove_file(&old) {
            report(warning(format!(
                "cannot remove the older {}: {error}",
                old.display()
            )));
        } else {
            report(status(format!("Removed the older {}", old.display())));
            refresh(&dir, report);
        }
    }

    let old_text = read_optional(&mimeapps)?;
    let new_text = register(&old_text);
    if dry_run {
        let message = format!(
            "Would make {DESKTOP_FILE_NAME} the default handler of {} in {}",
            SCHEME_TYPES.join(", "),
            mimeapps.display()
        );
        let change = DefaultHandlerChange::new(mimeapps.clone(), HandlerEdit::Set);
        report(plan(message, Change::DefaultHandler(change)));
    } else if new_text != old_text {
        write_atomic(&mimeapps, new_text.as_bytes(), 0o644)
            .map_err(|source| file_error(install_hint(system, &mimeapps), source))?;
        report(status(format!(
            "Made it the default handler of vmnetx, vmnetx+http and vmnetx+https URLs in {}",
            mimeapps.display()
        )));
    } else {
        report(detail(format!("{} already names it", mimeapps.display())));
    }
    refresh(&apps_dir, report);
    tracing::info!(entry = %target.display(), dry_run, "vmnetx+https handler installed");
    Ok(())
}

/// Removes the desktop entry from every data directory and our ids from
/// every `mimeapps.list`; carries on past failures and names them all.
pub fn uninstall(
    dirs: &XdgDirs,
    database_tool: Option<&Path>,
    dry_run: bool,
    report: &mut dyn FnMut(Event),
) -> Result<(), DesktopError> {
    let mut failures = Vec::new();
    let mut found = false;

    for dir in dirs.application_dirs() {
        let file = dir.join(DESKTOP_FILE_NAME);
        match std::fs::symlink_metadata(&file) {
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => {
                failures.push(format!("cannot look at {}: {error}", file.display()));
                continue;
            }
            Ok(_) => found = true,
        }
        if dry_run {
            let message = format!("Would remove {}", file.display());
            report(plan(message, Change::Remove(file)));
            refresh_database(database_tool, &dir, dry_run, report);
        } else if let Err(error) = std::fs::remove_file(&file) {
            failures.push(format!("cannot remove {}: {error}", file.display()));
        } else {
            report(status(format!("Removed {}", file.display())));
            refresh_database(database_tool, &dir, dry_run, report);
        }
    }

    for list in dirs.mimeapps_lists() {
        let old_text = match std::fs::read_to_string(&list) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => {
                failures.push(format!("cannot read {}: {error}", list.display()));
                continue;
            }
        };
        let new_text = unregister(&old_text);
        if new_text == old_text {
            continue;
        }
        found = true;
        if dry_run {
            let message = format!("Would remove {DESKTOP_FILE_NAME} from {}", list.display());
            let change = DefaultHandlerChange::new(list, HandlerEdit::Unset);
            report(plan(message, Change::DefaultHandler(change)));
        } else if let Err(error) = write_atomic(&list, new_text.as_bytes(), 0o644) {
            failures.push(format!(
                "cannot update {}: {error}: {}",
                list.display(),
                error.source
            ));
        } else {
            report(status(format!(
                "Removed {DESKTOP_FILE_NAME} from {}",
                list.display()
            )));
        }
    }

    if !found {
        report(status(format!("{DESKTOP_FILE_NAME} is not installed")));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(DesktopError::Uninstall(failures))
    }
}

fn install_hint(system: bool, path: &Path) -> String {
    if system {
        format!(
            "cannot write {} (a system-wide install needs root: try sudo)",
            path.display()
        )
    } else {
        format!("cannot write {}", path.display())
    }
}

fn file_error(context: String, source: crate::files::FileError) -> DesktopError {
    DesktopError::File { context, source }
}

fn plan(message: String, change: Change) -> Event {
    Event {
        level: Level::Plan,
        message,
        change: Some(change),
    }
}

fn status(message: String) -> Event {
    Event {
        level: Level::Status,
        message,
        change: None,
    }
}

fn detail(message: String) -> Event {
    Event {
        level: Level::Detail,
        message,
        change: None,
    }
}

fn warning(message: String) -> Event {
    Event {
        level: Level::Warning,
        message,
        change: None,
    }
}

/// Refreshes the MIME cache of `dir` when the tool exists; its failure is
/// only a warning, since `mimeapps.list` already names us.
fn refresh_database(tool: Option<&Path>, dir: &Path, dry_run: bool, report: &mut dyn FnMut(Event)) {
    let Some(tool) = tool else {
        if !dry_run {
            report(detail(
                "update-desktop-database is not installed: no cache to refresh".to_owned(),
            ));
        }
        return;
    };
    if dry_run {
        let message = format!("Would run {} -q {}", tool.display(), dir.display());
        report(plan(message, Change::Refresh(dir.to_owned())));
        return;
    }
    if !dir.is_dir() {
        return;
    }
    match Command::new(tool)
        .arg("-q")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(output) if output.status.success() => report(detail(format!(
            "Refreshed the desktop database of {}",
            dir.display()
        ))),
        Ok(output) => report(warning(format!(
            "{} -q {} failed: {}",
            tool.display(),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
        Err(error) => report(warning(format!("cannot run {}: {error}", tool.display()))),
    }
}
