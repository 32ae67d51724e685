//! Opening the page in the user's browser: `$BROWSER`, else `xdg-open`.
//!
//! `$BROWSER` follows the old convention shared by Python's `webbrowser`,
//! `sensible-browser` and others: a `:`-separated list of commands, the
//! first one found is used; a command is split at spaces (no shell runs),
//! `%s` in it is replaced by the URL, else the URL is added as the last
//! argument.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::browser::error::BrowserError;
use crate::viewer::find_program;

/// The environment variable naming the browser.
pub const BROWSER_ENV: &str = "BROWSER";
/// The desktop's opener, used when `$BROWSER` names nothing.
pub const XDG_OPEN: &str = "xdg-open";

/// A way to open a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opener {
    program: PathBuf,
    /// The arguments, `%s` where the URL goes (appended if absent).
    args: Vec<String>,
}

impl Opener {
    /// The opener from this process's `$BROWSER` and `PATH`.
    pub fn find() -> Result<Opener, BrowserError> {
        let browser = std::env::var(BROWSER_ENV).ok();
        Opener::find_in(browser.as_deref(), std::env::var_os("PATH").as_deref())
    }

    /// The opener from `browser` (a `$BROWSER` value) and `path`.
    pub fn find_in(browser: Option<&str>, path: Option<&OsStr>) -> Result<Opener, BrowserError> {
        let commands = browser.unwrap_or("").split(':');
        for command in commands {
            let mut words = command.split_whitespace();
            let Some(name) = words.next() else { continue };
            let program = if name.contains('/') {
                Some(PathBuf::from(name)).filter(|program| program.is_file())
            } else {
                find_program(OsStr::new(name), path)
            };
            if let Some(program) = program {
                return Ok(Opener {
                    program,
                    args: words.map(str::to_owned).collect(),
                });
            }
        }
        let program = find_program(OsStr::new(XDG_OPEN), path).ok_or(BrowserError::NoBrowser)?;
        Ok(Opener {
            program,
            args: Vec::new(),
        })
    }

    /// The program that runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The arguments that open `url`.
    pub fn args(&self, url: &str) -> Vec<String> {
        let mut args: Vec<String> = self.args.iter().map(|arg| arg.replace("%s", url)).collect();
        if !self.args.iter().any(|arg| arg.contains("%s")) {
            args.push(url.to_owned());
        }
        args
    }

    /// Starts the opener on `url` without waiting for it (a browser may
    /// run for as long as the user likes); a thread reaps it.
    pub fn open(&self, url: &str) -> Result<(), BrowserError> {
        let mut child = Command::new(&self.program)
            .args(self.args(url))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| BrowserError::StartBrowser {
                program: self.program.clone(),
                source,
            })?;
        let program = self.program.clone();
        std::thread::spawn(move || match child.wait() {
            Ok(status) if !status.success() => {
                tracing::warn!(program = %program.display(), %status, "the browser opener failed");
            }
            _ => {}
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn program(dir: &Path, name: &str) -> PathBuf {
        let program = dir.join(name);
        std::fs::write(&program, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        program
    }

    #[test]
    fn browser_wins_over_xdg_open_and_takes_percent_s() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let xdg = program(dir.path(), XDG_OPEN);
        let firefox = program(dir.path(), "firefox");
        let path = Some(dir.path().as_os_str());

        let opener =
            Opener::find_in(Some("missing:firefox --new-window %s"), path).expect("firefox");
        assert_eq!(opener.program(), firefox);
        assert_eq!(opener.args("http://x/"), ["--new-window", "http://x/"]);

        let plain = Opener::find_in(Some(firefox.to_str().expect("utf-8")), path).expect("path");
        assert_eq!(plain.args("http://x/"), ["http://x/"]);

        for browser in [None, Some(""), Some("missing")] {
            let opener = Opener::find_in(browser, path).expect("xdg-open");
            assert_eq!(opener.program(), xdg);
        }
        std::fs::remove_file(xdg).expect("remove");
        assert!(matches!(
            Opener::find_in(None, path),
            Err(BrowserError::NoBrowser)
        ));
    }
}
