//! The errors of a launch, one type per concern: [`LaunchError`] for the
//! deployment, the tunnel and the display, [`ViewerError`] for finding and
//! starting a viewer (which `stage2` and the demo use on their own too).

use std::path::PathBuf;

use crate::viewer::{KNOWN_VIEWERS, VIEWER_ENV, VIEWER_PACKAGES};

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
