//! The errors of a launch: [`LaunchError`] for the deployment, the tunnel
//! and the display; finding and starting a viewer fails with the viewer
//! room's own [`ViewerError`] (which `stage2` and the demo use on their own
//! too), the browser view with [`BrowserError`].

use std::path::PathBuf;

use crate::browser::BrowserError;
use crate::viewer::ViewerError;

/// What can stop a launch between the deploy request and the viewer's exit.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The key cache could not be found, read or written.
    #[error("cannot use the key cache")]
    KeyCache(#[source] sinfonia::keys::KeyError),
    /// Tier 1 refused or failed the deployment.
    #[error("deployment failed")]
    Deploy(#[source] sinfonia::deploy::DeployError),
    /// The deployment's tunnel settings have no IPv4 address for us.
    #[error("the deployment gave the tunnel no IPv4 address")]
    NoTunnelAddress,
    /// The cloudlet's WireGuard endpoint does not resolve.
    #[error("cannot find the cloudlet's endpoint")]
    Endpoint(#[source] sinfonia::deploy::DeployError),
    /// The tunnel's async runtime could not start.
    #[error("cannot start the tunnel's runtime")]
    Runtime(#[source] std::io::Error),
    /// The tunnel failed (socket, handshake, closed).
    #[error(transparent)]
    Tunnel(#[from] tunnel::TunnelError),
    /// The VM's VNC service name does not resolve through the tunnel.
    #[error("the deployment has no VNC service")]
    NoVncService(#[source] tunnel::TunnelError),
    /// The VM's VNC server did not send its banner in time.
    #[error("the VM's display ({service}:{port}) did not answer within {seconds} s")]
    DisplayTimeout {
        /// The service waited for.
        service: &'static str,
        /// Its port.
        port: u16,
        /// How long we waited.
        seconds: u64,
    },
    /// No local port to forward the display to.
    #[error("cannot listen on 127.0.0.1")]
    Listen(#[source] std::io::Error),
    /// A local socket or the viewer's process failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The task waiting for the viewer failed.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
    /// The viewer could not be started.
    #[error("cannot start {}", program.display())]
    StartViewer {
        /// The viewer's program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration does not fit in a QR code.
    #[error(transparent)]
    QrCode(#[from] sinfonia::wireguard::QrTooLarge),
    /// Finding or running the viewer failed.
    #[error(transparent)]
    Viewer(#[from] ViewerError),
    /// The browser view failed.
    #[error(transparent)]
    Browser(#[from] BrowserError),
    /// The caller stopped the launch (Ctrl-C, SIGTERM); the viewer and the
    /// tunnel were closed.
    #[error("the launch was interrupted")]
    Interrupted,
}

impl LaunchError {
    /// Whether this is the caller's own stop rather than a failure.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, LaunchError::Interrupted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_display_names_its_service() {
        let error = LaunchError::DisplayTimeout {
            service: sinfonia::vmi::VNC_SERVICE,
            port: sinfonia::vmi::VNC_PORT,
            seconds: 3,
        };
        assert_eq!(
            error.to_string(),
            "the VM's display (vmi-vnc:5900) did not answer within 3 s"
        );
    }
}
