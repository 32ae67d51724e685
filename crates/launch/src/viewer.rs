//! Finding and starting a local VNC viewer.
//!
//! The order is the original's: `remote-viewer` (virt-viewer), then
//! `gvncviewer` (gtk-vnc), then `vncviewer` (TigerVNC, or whichever viewer
//! Debian's alternatives point at). A program named with `--viewer` or
//! `OLIVE2022_VIEWER` comes first. Each viewer gets the address in the one
//! syntax it understands:
//!
//! | viewer | argument | why |
//! |---|---|---|
//! | `remote-viewer` | `vnc://HOST:PORT` | it takes URIs only |
//! | `gvncviewer` | `HOST:DISPLAY`, DISPLAY = PORT − 5900 | it splits at the first `:` and connects to `5900 + atoi(DISPLAY)`; there is no `::PORT` form, but `atoi` takes any integer, so ports outside 5900–5999 become displays below 0 or above 99 and still land on PORT |
//! | `vncviewer` | `HOST::PORT` | the double colon means a port, not a display, in TigerVNC, TightVNC and RealVNC alike, so no port is ever mistaken for a display |
//! | custom | `vnc://HOST:PORT` | one argument, as the issue specifies |
//!
//! IPv6 literals are put in brackets (`[::1]`) for the URI and `::PORT`
//! forms; `gvncviewer` cannot take an IPv6 literal at all (it splits at the
//! first colon), so use a host name or an IPv4 address with it (the tunnel's
//! local listener is `127.0.0.1`).
//!
//! Nothing here prints; the errors are [`ViewerError`]s.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The environment variable naming a viewer program, like `--viewer`.
pub const VIEWER_ENV: &str = "OLIVE2022_VIEWER";

/// The viewers looked for on `PATH`, in order.
pub const KNOWN_VIEWERS: [&str; 3] = ["remote-viewer", "gvncviewer", "vncviewer"];

/// The Debian packages that provide one of [`KNOWN_VIEWERS`].
pub const VIEWER_PACKAGES: [&str; 3] = ["virt-viewer", "gvncviewer", "tigervnc-viewer"];

/// A VNC viewer found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // `RemoteViewer` is the program's name.
pub enum Viewer {
    /// virt-viewer's `remote-viewer`: `vnc://HOST:PORT`.
    RemoteViewer(PathBuf),
    /// gtk-vnc's `gvncviewer`: `HOST:DISPLAY` with DISPLAY = PORT − 5900.
    Gvncviewer(PathBuf),
    /// `vncviewer` (TigerVNC and compatible): `HOST::PORT`.
    Vncviewer(PathBuf),
    /// A program chosen by the user: the single argument `vnc://HOST:PORT`.
    Custom(PathBuf),
}

/// Finds the viewer to use: `custom` (from `--viewer`), else the program in
/// `OLIVE2022_VIEWER`, else the first of [`KNOWN_VIEWERS`] on `PATH`.
pub fn find(custom: Option<&str>) -> Result<Viewer, ViewerError> {
    let from_env = std::env::var_os(VIEWER_ENV);
    let custom = custom.map(OsStr::new).or(from_env.as_deref());
    find_in(custom, std::env::var_os("PATH").as_deref())
}

/// [`find`] with the custom program and the search path given explicitly.
/// An empty `custom` counts as none.
pub fn find_in(custom: Option<&OsStr>, path: Option<&OsStr>) -> Result<Viewer, ViewerError> {
    if let Some(custom) = custom.filter(|custom| !custom.is_empty()) {
        // A name with a slash is a path (as a shell takes it), else a
        // program on PATH.
        let is_path = custom.as_encoded_bytes().contains(&b'/');
        let found = if is_path {
            Some(PathBuf::from(custom)).filter(|program| is_executable(program))
        } else {
            find_program(custom, path)
        };
        return match found {
            Some(program) => Ok(Viewer::Custom(program)),
            None => Err(ViewerError::CustomNotFound {
                name: custom.to_string_lossy().into_owned(),
                is_path,
            }),
        };
    }
    for name in KNOWN_VIEWERS {
        if let Some(program) = find_program(OsStr::new(name), path) {
            return Ok(match name {
                "remote-viewer" => Viewer::RemoteViewer(program),
                "gvncviewer" => Viewer::Gvncviewer(program),
                _ => Viewer::Vncviewer(program),
            });
        }
    }
    Err(ViewerError::NoneFound)
}

/// The first executable file called `name` in the absolute directories of
/// `path` (a `PATH`-style list; empty and relative entries are skipped, so
/// a handler started from an odd working directory never runs a stray file).
pub fn find_program(name: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    let path = path?;
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

impl Viewer {
    /// The program that runs.
    pub fn program(&self) -> &Path {
        match self {
            Viewer::RemoteViewer(program)
            | Viewer::Gvncviewer(program)
            | Viewer::Vncviewer(program)
            | Viewer::Custom(program) => program,
        }
    }

    /// The arguments that make this viewer connect to `host` port `port`.
    pub fn args(&self, host: impl Display, port: u16) -> Vec<OsString> {
        let host = host.to_string();
        let bracketed = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let address = match self {
            Viewer::RemoteViewer(_) | Viewer::Custom(_) => format!("vnc://{bracketed}:{port}"),
            Viewer::Gvncviewer(_) => format!("{host}:{}", i32::from(port) - 5900),
            Viewer::Vncviewer(_) => format!("{bracketed}::{port}"),
        };
        vec![OsString::from(address)]
    }

    /// A command that starts this viewer on `host` port `port`; it inherits
    /// standard input, output and error.
    pub fn command(&self, host: impl Display, port: u16) -> Command {
        let mut command = Command::new(self.program());
        command.args(self.args(host, port));
        command
    }

    /// The command line, for messages and `--dry-run`.
    pub fn command_line(&self, host: impl Display, port: u16) -> String {
        std::iter::once(self.program().as_os_str().to_owned())
            .chain(self.args(host, port))
            .map(|word| word.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Starts `viewer` on `host` port `port` and waits until it exits.
pub fn run(viewer: &Viewer, host: impl Display, port: u16) -> Result<ExitStatus, ViewerError> {
    let host = host.to_string();
    viewer
        .command(&host, port)
        .status()
        .map_err(|source| ViewerError::Start {
            program: viewer.program().to_owned(),
            source,
        })
}

/// What can go wrong finding or starting a VNC viewer.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The program named with `--viewer` or the environment is not there.
    #[error(
        "the VNC viewer {name:?} (from --viewer or {VIEWER_ENV}) is not an executable program{}",
        where_looked(.is_path)
    )]
    CustomNotFound {
        /// The name or path given.
        name: String,
        /// Whether it was a path (else a name looked up on `PATH`).
        is_path: bool,
    },
    /// None of the known viewers is on `PATH`.
    #[error(
        "no VNC viewer found on PATH (looked for {}): install one, e.g. `apt install {}` \
         (Debian packages {}), or name a program with --viewer or {VIEWER_ENV}",
        KNOWN_VIEWERS.join(", "),
        VIEWER_PACKAGES[0],
        VIEWER_PACKAGES.join(", ")
    )]
    NoneFound,
    /// The viewer could not be started.
    #[error("cannot start the VNC viewer {}", program.display())]
    Start {
        /// The viewer's program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How a custom viewer was looked for: as a path, or on `PATH`.
fn where_looked(is_path: &bool) -> &'static str {
    if *is_path { "" } else { " on PATH" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_custom_viewer_says_where_it_was_looked_for() {
        let on_path = ViewerError::CustomNotFound {
            name: "my-viewer".into(),
            is_path: false,
        };
        assert!(
            on_path
                .to_string()
                .ends_with("is not an executable program on PATH")
        );
        let as_path = ViewerError::CustomNotFound {
            name: "/opt/viewer".into(),
            is_path: true,
        };
        assert!(
            as_path
                .to_string()
                .ends_with("is not an executable program")
        );
    }
}
