//! The cloudlet's directories and the WireGuard key it keeps.
//!
//! Two directories, because they are kept differently:
//!
//! - the **data directory** holds what must survive: the key (below) and
//!   the VMs' work directories. `--data-dir`, else `$STATE_DIRECTORY` (set
//!   by systemd's `StateDirectory=`), else `$XDG_DATA_HOME/olive2022/cloudlet`,
//!   else `~/.local/share/olive2022/cloudlet`;
//! - the **cache directory** holds the pulled disk images, which can be
//!   pulled again: `--cache-dir`, else `$CACHE_DIRECTORY` (systemd's
//!   `CacheDirectory=`), else `$XDG_CACHE_HOME/olive2022/cloudlet`, else
//!   `~/.cache/olive2022/cloudlet`.
//!
//! The key must survive restarts: clients cache their deployment, and with
//! it the cloudlet's public key, so a new key would lock them out until
//! their cache is cleared. It is a private key in base64 on one line, mode
//! 0600, created on first start.
//!
//! So must the cloudlet's identity ([`CLOUDLET_ID_FILE`]): the UUID it
//! reports to tier 1, so that a restarted cloudlet refreshes its entry
//! there instead of leaving a stale twin for five minutes.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sinfonia::keys::{KeyFormatError, KeyPair, decode_key, encode_key};
use uuid::Uuid;

/// The key's file name in the data directory.
pub const KEY_FILE: &str = "wireguard.key";

/// The cloudlet UUID's file name in the data directory.
pub const CLOUDLET_ID_FILE: &str = "cloudlet.uuid";

/// Why the data directory or its key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Neither `XDG_DATA_HOME` (absolute) nor `HOME` is set.
    #[error("HOME is not set: give --data-dir")]
    NoHome,
    /// Neither `XDG_CACHE_HOME` (absolute) nor `HOME` is set.
    #[error("HOME is not set: give --cache-dir")]
    NoCacheHome,
    /// The key file holds something else than a key.
    #[error("{} holds no WireGuard key: {source}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: KeyFormatError,
    },
    /// The identity file holds something else than a UUID.
    #[error("{} holds no cloudlet UUID", path.display())]
    BadUuid {
        /// The identity file.
        path: PathBuf,
    },
    /// The key file cannot be written.
    #[error("cannot create {}: {source}", path.display())]
    Write {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// `$STATE_DIRECTORY`, or `$XDG_DATA_HOME/olive2022/cloudlet`, or
/// `~/.local/share/olive2022/cloudlet`.
pub fn default_data_dir() -> Result<PathBuf, DataDirError> {
    if let Some(dir) = systemd_directory("STATE_DIRECTORY") {
        return Ok(dir);
    }
    let base = xdg_base("XDG_DATA_HOME", ".local/share").ok_or(DataDirError::NoHome)?;
    Ok(base.join("olive2022").join("cloudlet"))
}

/// `$CACHE_DIRECTORY`, or `$XDG_CACHE_HOME/olive2022/cloudlet`, or
/// `~/.cache/olive2022/cloudlet`.
pub fn default_cache_dir() -> Result<PathBuf, DataDirError> {
    if let Some(dir) = systemd_directory("CACHE_DIRECTORY") {
        return Ok(dir);
    }
    let base = xdg_base("XDG_CACHE_HOME", ".cache").ok_or(DataDirError::NoCacheHome)?;
    Ok(base.join("olive2022").join("cloudlet"))
}

/// The first directory systemd gives in `variable`: it sets a
/// colon-separated list of absolute paths, one per name in the unit's
/// `StateDirectory=` (or `CacheDirectory=`); anything else is ignored.
fn systemd_directory(variable: &str) -> Option<PathBuf> {
    let value = std::env::var_os(variable)?;
    let first = std::env::split_paths(&value).next()?;
    first.is_absolute().then_some(first)
}

/// `$variable` when it is absolute (the XDG rule), else `~/fallback`.
fn xdg_base(variable: &str, fallback: &str) -> Option<PathBuf> {
    let xdg = std::env::var_os(variable).filter(|dir| Path::new(dir).is_absolute());
    match xdg {
        Some(dir) => Some(PathBuf::from(dir)),
        None => Some(PathBuf::from(std::env::var_os("HOME")?).join(fallback)),
    }
}

/// The private key in `path`, or a new one written there (mode 0600) when
/// the file cannot be read.
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], DataDirError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return decode_key(text.trim()).map_err(|source| DataDirError::BadKey {
            path: path.to_owned(),
            source,
        });
    }
    let pair = KeyPair::generate();
    let private = pair.secret().to_bytes();
    write_new_line(path, 0o600, &encode_key(&private))?;
    Ok(private)
}

/// The UUID in `path`, or a new random one written there when the file
/// does not exist yet.
pub fn load_or_create_uuid(path: &Path) -> Result<Uuid, DataDirError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return text.trim().parse().map_err(|_| DataDirError::BadUuid {
            path: path.to_owned(),
        });
    }
    let uuid = Uuid::new_v4();
    write_new_line(path, 0o644, &uuid.to_string())?;
    Ok(uuid)
}

/// Writes `line` to `path`, created with `mode`; an existing file is an
/// error, never overwritten (two cloudlets starting on one data directory
/// must not each write their own identity).
fn write_new_line(path: &Path, mode: u32, line: &str) -> Result<(), DataDirError> {
    let write_error = |source| DataDirError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    writeln!(file, "{line}").map_err(write_error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = load_or_create_key(&path).unwrap();
        assert_eq!(load_or_create_key(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            load_or_create_key(&path),
            Err(DataDirError::BadKey { .. })
        ));
    }

    #[test]
    fn the_uuid_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CLOUDLET_ID_FILE);
        let first = load_or_create_uuid(&path).unwrap();
        assert_eq!(load_or_create_uuid(&path).unwrap(), first);
        std::fs::write(&path, "nope\n").unwrap();
        assert!(matches!(
            load_or_create_uuid(&path),
            Err(DataDirError::BadUuid { .. })
        ));
    }
}
