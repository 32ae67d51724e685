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

/// Writes a file only the user can read: wg.conf holds the private key.
pub fn write_private(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}
