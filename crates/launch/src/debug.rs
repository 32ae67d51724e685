//! The deployment as the original's `--config-debug` and `--qrcode` show
//! it: `wg.conf` and `resolv.conf` files, or a wg-quick config as a QR code.

use sinfonia::wireguard::{self, QrStyle};

use crate::deploy::Deployed;
use crate::error::LaunchError;

impl Deployed {
    /// The files `--config-debug` writes, by name: `wg.conf` (which holds
    /// the private key) and `resolv.conf`.
    pub fn debug_config(&self) -> [(&'static str, String); 2] {
        let tunnel = &self.deployment.tunnel;
        [
            ("wg.conf", wireguard::wg_conf(&self.key.keys, tunnel)),
            ("resolv.conf", wireguard::resolv_conf(tunnel)),
        ]
    }

    /// The wg-quick configuration as a QR code for a terminal.
    pub fn qrcode(&self, style: QrStyle) -> Result<String, LaunchError> {
        let config = wireguard::wg_quick_conf(&self.key.keys, &self.deployment.tunnel, &[]);
        Ok(wireguard::qrcode(&config, style)?)
    }
}

/// Writes a file only the user can read (wg.conf holds the private key):
/// a new mode-0600 file beside `path`, then renamed onto it. Whatever was
/// at `path` (a world-readable file, a symbolic link to elsewhere) is
/// replaced, never written through or left with its old mode; a directory
/// or a device at `path` makes the rename fail.
pub fn write_private(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = std::path::Path::new(path);
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let kind = meta.file_type();
        if !(kind.is_file() || kind.is_symlink()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a file is in the way",
            ));
        }
    }
    // tempfile creates the file with mode 0600 and O_EXCL.
    let mut file = tempfile::Builder::new()
        .prefix(".olive2022-")
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn an_existing_readable_file_is_replaced_by_a_private_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wg.conf");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(path.to_str().unwrap(), "PrivateKey = secret\n").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "PrivateKey = secret\n"
        );
        // Nothing else is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symbolic_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep me").unwrap();
        let path = dir.path().join("resolv.conf");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_private(path.to_str().unwrap(), "nameserver 10.43.0.10\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_directory_or_device_in_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("wg.conf");
        std::fs::create_dir(&sub).unwrap();
        assert!(write_private(sub.to_str().unwrap(), "x").is_err());
        assert!(sub.is_dir());
        assert!(write_private("/dev/null", "x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
