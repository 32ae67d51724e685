//! The cloudlet's data directory and the WireGuard key it keeps there.
//!
//! The key must survive restarts: clients cache their deployment, and with
//! it the cloudlet's public key, so a new key would lock them out until
//! their cache is cleared. It is a private key in base64 on one line, mode
//! 0600, created on first start.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sinfonia::keys::{KeyFormatError, KeyPair, decode_key, encode_key};

/// The key's file name in the data directory.
pub const KEY_FILE: &str = "wireguard.key";

/// Why the data directory or its key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Neither `XDG_DATA_HOME` (absolute) nor `HOME` is set.
    #[error("HOME is not set: give --data-dir")]
    NoHome,
    /// The key file holds something else than a key.
    #[error("{} holds no WireGuard key: {source}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: KeyFormatError,
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

/// `$XDG_DATA_HOME/olive2022/cloudlet`, or
/// `~/.local/share/olive2022/cloudlet`.
pub fn default_data_dir() -> Result<PathBuf, DataDirError> {
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|dir| Path::new(dir).is_absolute());
    let base = match xdg {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").ok_or(DataDirError::NoHome)?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(base.join("olive2022").join("cloudlet"))
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
    let write_error = |source| DataDirError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write_error)?;
    writeln!(file, "{}", encode_key(&private)).map_err(write_error)?;
    Ok(private)
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
}
