//! The desktop handler for `vmnetx://` URLs: what `olive2022 install` and
//! `uninstall` do, with no printing (the binary shows the [`Event`]s).
//!
//! `install` writes `olive2022.desktop` whose `Exec` line is the absolute
//! path of the program, `launch` (or `convert`) and `%u`, each its own
//! argument, never a shell string (the original's defect 5: its
//! `x-terminal-emulator -e "… launch '%u'"` let a URL with a quote run
//! commands; see `docs/original-defects.md`). `Terminal=true` shows progress
//! and errors to the visitor who clicked. The entry becomes the default
//! handler of the three schemes in `mimeapps.list`, editing only our own
//! keys; other lines stay as they were.
//!
//! Where (XDG Base Directory and MIME Applications Associations specs):
//!
//! | | desktop entry | `mimeapps.list` |
//! |---|---|---|
//! | user | `$XDG_DATA_HOME/applications` (`~/.local/share`) | `$XDG_CONFIG_HOME` (`~/.config`) |
//! | system | first of `$XDG_DATA_DIRS` (`/usr/local/share`) + `/applications` | first of `$XDG_CONFIG_DIRS` (`/etc/xdg`), the sysadmin's place |
//!
//! `uninstall` removes the entry from `$XDG_DATA_HOME` and every
//! `$XDG_DATA_DIRS` entry, and our entries from every `mimeapps.list` the
//! spec reads. Files are replaced atomically (temporary file and rename; the
//! target of a symlink is what gets replaced). A dry run reports and touches
//! nothing.
//!
//! The room: [`dirs`] (the XDG directories), [`entry`] (the desktop entry's
//! text), [`mimeapps`] (the `mimeapps.list` key-file editor), [`handler`]
//! (install and uninstall), [`files`] (atomic replacement), [`plan`] (a
//! dry run's changes as a record, [`HandlerPlan`]).

pub mod dirs;
pub mod entry;
pub mod files;
pub mod handler;
pub mod mimeapps;
pub mod plan;

pub use dirs::XdgDirs;
pub use handler::{Event, Handler, InstallOptions, Level, Scope, install, uninstall};
pub use plan::{Change, HandlerPlan};

/// The desktop file's name, as the original's (and so its desktop id).
pub const DESKTOP_FILE_NAME: &str = "olive2022.desktop";

/// The URL schemes we handle, as MIME types.
pub const SCHEME_TYPES: [&str; 3] = [
    "x-scheme-handler/vmnetx",
    "x-scheme-handler/vmnetx+http",
    "x-scheme-handler/vmnetx+https",
];

/// Why installing or removing the handler failed.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// `HOME` is needed for the default XDG directories.
    #[error("HOME is not set to an absolute path: cannot find the XDG directories")]
    NoHome,
    /// The program's path cannot stand in a desktop entry.
    #[error("{0}")]
    ProgramPath(String),
    /// A file could not be read, written or replaced.
    #[error("{context}")]
    File {
        /// What we were doing, with the path.
        context: String,
        /// The cause.
        #[source]
        source: files::FileError,
    },
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] files::FileError),
    /// Some of the files `uninstall` had to change could not be changed.
    #[error("{} (system-wide files need root: try sudo)", .0.join("; "))]
    Uninstall(Vec<String>),
}
