//! Step two of a launch: the user-space tunnel up, the VM's display
//! answering through it, and a local port forwarded to it; then the viewer
//! run on that port until it exits.

use std::net::Ipv4Addr;
use std::process::ExitStatus;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::task::JoinHandle;
use tunnel::{Tunnel, TunnelConfig};

use crate::cancel;
use crate::deadline::Deadline;
use crate::deploy::Deployed;
use crate::display::wait_for_display;
use crate::error::LaunchError;
use crate::observer::Observer;
use crate::viewer::Viewer;

/// How long the cloudlet may take to answer the WireGuard handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// The host the forwarded port listens on, and viewers connect to.
pub const LOCAL_HOST: &str = "127.0.0.1";

/// A running tunnel with the VM's display forwarded to a local port.
pub struct Session {
    tunnel: Tunnel,
    forwarder: JoinHandle<std::io::Result<()>>,
    port: u16,
}

impl Session {
    /// Brings the tunnel described by `config` up, waits (until
    /// `deadline`) for the handshake and the VM's display, and forwards a
    /// local port to the display. `deployed` says when the launch began.
    pub async fn open(
        deployed: &Deployed,
        config: TunnelConfig,
        deadline: Deadline,
        observer: &mut dyn Observer,
    ) -> Result<Session, LaunchError> {
        let endpoint = config.endpoint;
        let tunnel = Tunnel::start(config).await?;
        let handle = tunnel.handle();
        handle
            .wait_handshake(deadline.cap(HANDSHAKE_TIMEOUT))
            .await?;
        tracing::info!(%endpoint, "tunnel up");
        observer.detail(&format!("Tunnel to {endpoint} up"));
        let target = wait_for_display(&handle, deadline, observer).await?;
        let listener = local_listener().await?;
        let port = listener.local_addr()?.port();
        tracing::info!(
            seconds = deployed.started.elapsed().as_secs_f64(),
            port,
            "display ready"
        );
        observer.status(&format!(
            "VM display ready after {:.1} s: vnc://{LOCAL_HOST}:{port}",
            deployed.started.elapsed().as_secs_f64()
        ));
        let forwarder = tokio::spawn(tunnel::forward(handle, listener, target));
        Ok(Session {
            tunnel,
            forwarder,
            port,
        })
    }

    /// The local port forwarded to the VM's display (on [`LOCAL_HOST`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops forwarding and shuts the tunnel down.
    pub async fn close(self) {
        self.forwarder.abort();
        self.tunnel.shutdown().await;
    }
}

/// 127.0.0.1 on a port of 5900–5999 when one is free (viewers that take
/// display numbers then work), else any port.
async fn local_listener() -> Result<tokio::net::TcpListener, LaunchError> {
    for port in 5900..=5999 {
        if let Ok(listener) = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return Ok(listener);
        }
    }
    tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(LaunchError::Listen)
}

/// The whole second step: opens a [`Session`] for `deployed` (waiting
/// until `deadline`), runs `viewer` on its local port, closes the session
/// when the viewer exits and returns the viewer's exit status.
///
/// Once `stop` is set (the caller's Ctrl-C or SIGTERM handler), the wait
/// ends, the viewer is stopped and the tunnel closed, and the result is
/// [`LaunchError::Interrupted`].
pub fn view(
    deployed: &Deployed,
    viewer: &Viewer,
    deadline: Deadline,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<ExitStatus, LaunchError> {
    in_session(
        deployed,
        deadline,
        stop,
        observer,
        async |session, observer| run_viewer(session, viewer, stop, observer).await,
    )
}

/// Opens a [`Session`] for `deployed` on a runtime of its own, runs `work`
/// on it and closes it, whatever `work` returned. `stop` cuts the opening
/// short with [`LaunchError::Interrupted`]; `work` watches it itself.
pub(crate) fn in_session<T>(
    deployed: &Deployed,
    deadline: Deadline,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
    work: impl AsyncFnOnce(&Session, &mut dyn Observer) -> Result<T, LaunchError>,
) -> Result<T, LaunchError> {
    let config = deployed.tunnel_config()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LaunchError::Runtime)?;
    runtime.block_on(async {
        // Dropping a half-open session drops its tunnel.
        let session = tokio::select! {
            session = Session::open(deployed, config, deadline, observer) => session?,
            () = cancel::requested(stop) => return Err(interrupted("before the display answered")),
        };
        let outcome = work(&session, observer).await;
        session.close().await;
        tracing::info!("tunnel closed");
        outcome
    })
}

/// Runs `viewer` on the session's port until it exits or `stop` is set.
async fn run_viewer(
    session: &Session,
    viewer: &Viewer,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<ExitStatus, LaunchError> {
    let port = session.port();
    observer.detail(&format!(
        "Starting {}",
        viewer.command_line(LOCAL_HOST, port)
    ));
    let mut child = tokio::process::Command::from(viewer.command(LOCAL_HOST, port))
        .spawn()
        .map_err(|source| LaunchError::StartViewer {
            program: viewer.program().to_owned(),
            source,
        })?;
    tracing::info!(program = %viewer.program().display(), pid = child.id(), port, "viewer started");
    tokio::select! {
        status = child.wait() => {
            let status = status?;
            tracing::info!(%status, "viewer exited");
            Ok(status)
        }
        () = cancel::requested(stop) => {
            cancel::stop_child(&mut child).await;
            Err(interrupted("while the viewer ran"))
        }
    }
}

/// The error of a stopped launch, logged once with when it happened.
pub(crate) fn interrupted(when: &'static str) -> LaunchError {
    tracing::info!(when, "launch interrupted");
    LaunchError::Interrupted
}
