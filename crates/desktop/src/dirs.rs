//! The XDG directories of this user, from the environment (XDG Base
//! Directory spec): unset, empty or relative values are ignored.

use std::path::PathBuf;

use crate::DesktopError;

/// The XDG data and config directories, each list without duplicates.
#[derive(Debug, Clone)]
pub struct XdgDirs {
    /// `$XDG_DATA_HOME` (default `~/.local/share`).
    pub data_home: PathBuf,
    /// `$XDG_DATA_DIRS` (default `/usr/local/share:/usr/share`).
    pub data_dirs: Vec<PathBuf>,
    /// `$XDG_CONFIG_HOME` (default `~/.config`).
    pub config_home: PathBuf,
    /// `$XDG_CONFIG_DIRS` (default `/etc/xdg`).
    pub config_dirs: Vec<PathBuf>,
}

impl XdgDirs {
    /// The directories the environment names, with the spec's defaults.
    pub fn from_env() -> Result<XdgDirs, DesktopError> {
        let home = || -> Result<PathBuf, DesktopError> {
            match std::env::var_os("HOME").map(PathBuf::from) {
                Some(home) if home.is_absolute() => Ok(home),
                _ => Err(DesktopError::NoHome),
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
        Ok(XdgDirs {
            data_home,
            data_dirs: absolute_list("XDG_DATA_DIRS", &["/usr/local/share", "/usr/share"]),
            config_home,
            config_dirs: absolute_list("XDG_CONFIG_DIRS", &["/etc/xdg"]),
        })
    }

    /// Every `applications` directory, the user's first.
    pub fn application_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.data_home.join("applications")];
        dirs.extend(self.data_dirs.iter().map(|dir| dir.join("applications")));
        dedup(dirs)
    }

    /// Every `mimeapps.list` the MIME Applications spec reads (without the
    /// desktop-specific `$desktop-mimeapps.list` variants).
    pub fn mimeapps_lists(&self) -> Vec<PathBuf> {
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

/// An XDG variable holding one directory.
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
