//! `install` and `uninstall`: the desktop handler for `vmnetx://` URLs.
//!
//! `install` writes `olive2022.desktop` whose `Exec` line is the absolute
//! path of this binary, `launch` (or `convert`) and `%u`, each its own
//! argument, never a shell string (the original's defect 5: its
//! `x-terminal-emulator -e "… launch '%u'"` let a URL with a quote run
//! commands). `Terminal=true` shows progress and errors to the visitor who
//! clicked. The entry becomes the default handler of the three schemes in
//! `mimeapps.list`, editing only our own keys; other lines stay as they were.
//!
//! Where (XDG Base Directory and MIME Applications Associations specs):
//!
//! | | desktop entry | `mimeapps.list` |
//! |---|---|---|
//! | `--user` | `$XDG_DATA_HOME/applications` (`~/.local/share`) | `$XDG_CONFIG_HOME` (`~/.config`) |
//! | `--system` | first of `$XDG_DATA_DIRS` (`/usr/local/share`) + `/applications` | first of `$XDG_CONFIG_DIRS` (`/etc/xdg`), the sysadmin's place |
//!
//! `uninstall` removes the entry from `$XDG_DATA_HOME` and every
//! `$XDG_DATA_DIRS` entry, and our entries from every `mimeapps.list` the
//! spec reads (config home, config dirs, and the `applications` dir of each
//! data dir). Files are replaced atomically (temporary file and rename, the
//! target of a symlink is what gets replaced). `-n` prints and touches
//! nothing.

use std::ffi::OsString;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::cli::{Cli, InstallArgs};
use crate::progress::Verbosity;
use crate::viewer;

/// The desktop file's name, as the original's (and so its desktop id).
pub const DESKTOP_FILE_NAME: &str = "olive2022.desktop";

/// The URL schemes we handle, as MIME types.
pub const SCHEME_TYPES: [&str; 3] = [
    "x-scheme-handler/vmnetx",
    "x-scheme-handler/vmnetx+http",
    "x-scheme-handler/vmnetx+https",
];

/// The `mimeapps.list` sections that name us.
const DEFAULT_SECTION: &str = "Default Applications";
const ADDED_SECTION: &str = "Added Associations";
const REMOVED_SECTION: &str = "Removed Associations";

/// The XDG directories of this user, from the environment.
#[derive(Debug)]
struct Dirs {
    data_home: PathBuf,
    data_dirs: Vec<PathBuf>,
    config_home: PathBuf,
    config_dirs: Vec<PathBuf>,
}

impl Dirs {
    fn from_env() -> Result<Dirs> {
        let home = || -> Result<PathBuf> {
            match std::env::var_os("HOME").map(PathBuf::from) {
                Some(home) if home.is_absolute() => Ok(home),
                _ => bail!("HOME is not set to an absolute path: cannot find the XDG directories"),
            }
        };
        let data_home = match absolute_var("XDG_DATA_HOME") {
            Some(dir) => dir,
            None => home()?.join(".local/share"),
        };
        let config_home = match absolute_var("XDG_CONFIG_HOME") {
            Some(dir) => dir,
            None => home()?.join(".config"),
        };
        Ok(Dirs {
            data_home,
            data_dirs: absolute_list("XDG_DATA_DIRS", &["/usr/local/share", "/usr/share"]),
            config_home,
            config_dirs: absolute_list("XDG_CONFIG_DIRS", &["/etc/xdg"]),
        })
    }

    /// Every `applications` directory, the user's first.
    fn application_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.data_home.join("applications")];
        dirs.extend(self.data_dirs.iter().map(|dir| dir.join("applications")));
        dedup(dirs)
    }

    /// Every `mimeapps.list` the MIME Applications spec reads (without the
    /// desktop-specific `$desktop-mimeapps.list` variants).
    fn mimeapps_lists(&self) -> Vec<PathBuf> {
        let mut lists = vec![self.config_home.join("mimeapps.list")];
        lists.extend(self.config_dirs.iter().map(|dir| dir.join("mimeapps.list")));
        lists.extend(
            self.application_dirs()
                .iter()
                .map(|dir| dir.join("mimeapps.list")),
        );
        dedup(lists)
    }
}

/// An XDG variable holding one directory; unset, empty or relative values
/// are ignored, as the XDG Base Directory spec says.
fn absolute_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
}

/// An XDG variable holding a `:` list; relative entries are ignored, and an
/// unset, empty or all-relative list means `default`.
fn absolute_list(name: &str, default: &[&str]) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::var_os(name)
        .map(|value| {
            std::env::split_paths(&value)
                .filter(|dir| dir.is_absolute())
                .collect()
        })
        .unwrap_or_default();
    if dirs.is_empty() {
        default.iter().map(PathBuf::from).collect()
    } else {
        dedup(dirs)
    }
}

fn dedup(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = Vec::with_capacity(paths.len());
    for path in paths {
        if !seen.contains(&path) {
            seen.push(path);
        }
    }
    seen
}

/// `olive2022 install [--user|--system] [--convert]`.
pub fn install(cli: &Cli, args: &InstallArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let dry_run = cli.dry_run;
    let dirs = Dirs::from_env()?;
    let exe = std::env::current_exe().context("cannot find the path of this program")?;
    let handler = if args.convert { "convert" } else { "launch" };
    let entry = desktop_entry(&exe, handler)?;
    let (apps_dir, mimeapps) = if args.system {
        (
            dirs.data_dirs[0].join("applications"),
            dirs.config_dirs[0].join("mimeapps.list"),
        )
    } else {
        (
            dirs.data_home.join("applications"),
            dirs.config_home.join("mimeapps.list"),
        )
    };
    let target = apps_dir.join(DESKTOP_FILE_NAME);

    if dry_run {
        println!("Would write {}:", target.display());
        print!("{entry}");
    } else {
        write_atomic(&target, entry.as_bytes(), 0o644)
            .with_context(|| install_hint(args.system, &target))?;
        verbosity.status(format!("Installed {}", target.display()));
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
            println!("Would remove the older {}", old.display());
        } else if let Err(error) = std::fs::remove_file(&old) {
            eprintln!(
                "olive2022: warning: cannot remove the older {}: {error}",
                old.display()
            );
        } else {
            verbosity.status(format!("Removed the older {}", old.display()));
            refresh_database(&dir, verbosity);
        }
    }

    let old_text = read_optional(&mimeapps)?;
    let new_text = register(&old_text);
    if dry_run {
        println!(
            "Would make {DESKTOP_FILE_NAME} the default handler of {} in {}",
            SCHEME_TYPES.join(", "),
            mimeapps.display()
        );
    } else if new_text != old_text {
        write_atomic(&mimeapps, new_text.as_bytes(), 0o644)
            .with_context(|| install_hint(args.system, &mimeapps))?;
        verbosity.status(format!(
            "Made it the default handler of vmnetx, vmnetx+http and vmnetx+https URLs in {}",
            mimeapps.display()
        ));
    } else {
        verbosity.detail(format!("{} already names it", mimeapps.display()));
    }

    if dry_run {
        if let Some(tool) = database_tool() {
            println!("Would run {} -q {}", tool.display(), apps_dir.display());
        }
    } else {
        refresh_database(&apps_dir, verbosity);
    }
    Ok(ExitCode::SUCCESS)
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

/// `olive2022 uninstall`.
pub fn uninstall(cli: &Cli) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let dry_run = cli.dry_run;
    let dirs = Dirs::from_env()?;
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
            println!("Would remove {}", file.display());
            if let Some(tool) = database_tool() {
                println!("Would run {} -q {}", tool.display(), dir.display());
            }
        } else if let Err(error) = std::fs::remove_file(&file) {
            failures.push(format!("cannot remove {}: {error}", file.display()));
        } else {
            verbosity.status(format!("Removed {}", file.display()));
            refresh_database(&dir, verbosity);
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
            println!("Would remove {DESKTOP_FILE_NAME} from {}", list.display());
        } else if let Err(error) = write_atomic(&list, new_text.as_bytes(), 0o644) {
            failures.push(format!("cannot update {}: {error:#}", list.display()));
        } else {
            verbosity.status(format!(
                "Removed {DESKTOP_FILE_NAME} from {}",
                list.display()
            ));
        }
    }

    if !found {
        verbosity.status(format!("{DESKTOP_FILE_NAME} is not installed"));
    }
    if !failures.is_empty() {
        bail!(
            "{} (system-wide files need root: try sudo)",
            failures.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The desktop entry that runs `exe handler URL`.
fn desktop_entry(exe: &Path, handler: &str) -> Result<String> {
    let exe = exe
        .to_str()
        .filter(|exe| !exe.chars().any(char::is_control))
        .with_context(|| {
            format!(
                "the path of this program, {exe:?}, is not UTF-8 text without control \
                 characters, which a desktop entry needs"
            )
        })?;
    if !Path::new(exe).is_absolute() {
        bail!("the path of this program, {exe:?}, is not absolute");
    }
    if exe.contains('%') {
        // The spec wants `%%`, but GLib (and so most browsers) looks the
        // program up before expanding it and then ignores the entry.
        bail!(
            "the path of this program, {exe:?}, has a `%`, which desktop launchers do not \
             agree on: put olive2022 in a directory without one"
        );
    }
    let (name, comment) = if handler == "convert" {
        (
            "Olive 2022 (convert)",
            "Convert Olive Archive VMNetX packages to containerDisk images and Sinfonia recipes",
        )
    } else {
        (
            "Olive 2022",
            "Run Olive Archive virtual machines on a nearby cloudlet with Sinfonia",
        )
    };
    let exec = [exec_arg(exe), handler.to_owned(), "%u".to_owned()].join(" ");
    Ok(format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Version=1.0\n\
         Name={name}\n\
         Comment={comment}\n\
         TryExec={try_exec}\n\
         Exec={exec}\n\
         Terminal=true\n\
         NoDisplay=true\n\
         MimeType={mime}\n\
         Categories=Network;RemoteAccess;\n",
        try_exec = escape_string(exe),
        exec = escape_string(&exec),
        mime = SCHEME_TYPES.map(|mime| format!("{mime};")).concat(),
    ))
}

/// Characters that make an `Exec` argument need quoting (Desktop Entry spec,
/// "The Exec key").
const EXEC_RESERVED: &[char] = &[
    ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')',
    '`',
];

/// One literal `Exec` argument: `%` doubled, and quoted in `"…"` with
/// `"`, `` ` ``, `$` and `\` escaped when it has a reserved character.
fn exec_arg(arg: &str) -> String {
    let arg = arg.replace('%', "%%");
    if !arg.is_empty() && !arg.contains(EXEC_RESERVED) {
        return arg;
    }
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('"');
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The escapes of a value of type string (applied before `Exec` quoting is
/// undone, so a backslash of the quoting becomes `\\`).
fn escape_string(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `mimeapps.list` text with us first for each scheme in the default and
/// added sections, and out of the removed associations.
fn register(text: &str) -> String {
    let mut list = KeyFile::parse(text);
    for mime in SCHEME_TYPES {
        for section in [DEFAULT_SECTION, ADDED_SECTION] {
            list.update(section, mime, |ids| {
                ids.retain(|id| id != DESKTOP_FILE_NAME);
                ids.insert(0, DESKTOP_FILE_NAME.to_owned());
            });
        }
        list.update(REMOVED_SECTION, mime, |ids| {
            ids.retain(|id| id != DESKTOP_FILE_NAME);
        });
    }
    list.render()
}

/// `mimeapps.list` text without us (other handlers of the schemes stay).
fn unregister(text: &str) -> String {
    let mut list = KeyFile::parse(text);
    for mime in SCHEME_TYPES {
        for section in [DEFAULT_SECTION, ADDED_SECTION] {
            list.update(section, mime, |ids| {
                ids.retain(|id| id != DESKTOP_FILE_NAME);
            });
        }
    }
    list.render()
}

/// The lines of a `mimeapps.list`, kept verbatim except those we change.
struct KeyFile {
    lines: Vec<String>,
}

impl KeyFile {
    fn parse(text: &str) -> KeyFile {
        KeyFile {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    fn render(&self) -> String {
        let mut text = self.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Applies `edit` to the desktop ids of `key` in every `[section]`
    /// (an absent key is an empty list); a key left empty is removed, and a
    /// new one goes after the last line of the first such section, or in a
    /// new section at the end.
    fn update(&mut self, section: &str, key: &str, edit: impl Fn(&mut Vec<String>)) {
        let mut in_section = false;
        let mut sections_seen = 0;
        let mut found = false;
        let mut insert_at = None;
        let mut index = 0;
        while index < self.lines.len() {
            let line = self.lines[index].trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_section = name == section;
                if in_section {
                    sections_seen += 1;
                    if sections_seen == 1 {
                        insert_at = Some(index + 1);
                    }
                }
                index += 1;
                continue;
            }
            if !in_section {
                index += 1;
                continue;
            }
            if sections_seen == 1 && !line.is_empty() {
                insert_at = Some(index + 1);
            }
            let entry = line.split_once('=').filter(|_| !line.starts_with('#'));
            let Some((name, value)) =
                entry.filter(|(name, _)| name.trim().eq_ignore_ascii_case(key))
            else {
                index += 1;
                continue;
            };
            found = true;
            let mut ids = split_ids(value);
            let before = ids.clone();
            edit(&mut ids);
            if ids.is_empty() && !before.is_empty() {
                // Only a found key is ever removed, and then nothing is
                // inserted, so `insert_at` may go stale.
                self.lines.remove(index);
            } else {
                if ids != before {
                    self.lines[index] = format!("{}={};", name.trim(), ids.join(";"));
                }
                index += 1;
            }
        }
        if found {
            return;
        }
        let mut ids = Vec::new();
        edit(&mut ids);
        if ids.is_empty() {
            return;
        }
        let line = format!("{key}={};", ids.join(";"));
        match insert_at {
            Some(at) => self.lines.insert(at, line),
            None => {
                if self
                    .lines
                    .last()
                    .is_some_and(|last| !last.trim().is_empty())
                {
                    self.lines.push(String::new());
                }
                self.lines.push(format!("[{section}]"));
                self.lines.push(line);
            }
        }
    }
}

fn split_ids(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

fn read_optional(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces `path` with `contents` through a temporary file in the same
/// directory and a rename; a symlink's target is what gets replaced, and an
/// existing file keeps its permissions (a new one gets `mode`).
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let path = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    };
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mode = std::fs::metadata(&path).map_or(mode, |meta| meta.permissions().mode() & 0o7777);
    let mut file = tempfile::Builder::new()
        .prefix(".olive2022-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    file.write_all(contents)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.as_file().sync_all()?;
    file.persist(&path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// `update-desktop-database` when it is installed (Debian package
/// `desktop-file-utils`).
fn database_tool() -> Option<PathBuf> {
    viewer::find_program(
        &OsString::from("update-desktop-database"),
        std::env::var_os("PATH").as_deref(),
    )
}

/// Refreshes the MIME cache of `dir` when the tool exists; its failure is
/// only a warning, since `mimeapps.list` already names us.
fn refresh_database(dir: &Path, verbosity: Verbosity) {
    let Some(tool) = database_tool() else {
        verbosity.detail("update-desktop-database is not installed: no cache to refresh");
        return;
    };
    if !dir.is_dir() {
        return;
    }
    match Command::new(&tool)
        .arg("-q")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(output) if output.status.success() => {
            verbosity.detail(format!(
                "Refreshed the desktop database of {}",
                dir.display()
            ));
        }
        Ok(output) => eprintln!(
            "olive2022: warning: {} -q {} failed: {}",
            tool.display(),
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => eprintln!("olive2022: warning: cannot run {}: {error}", tool.display()),
    }
}
