//! Waiting for the VM's display through the tunnel: the deployment's VNC
//! service ([`VNC_SERVICE`]) resolved with the tunnel's DNS, then probed
//! with backoff until its server sends the `RFB` banner.

use std::net::SocketAddrV4;
use std::time::Duration;

use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};
use tunnel::TunnelHandle;

use crate::deadline::Deadline;
use crate::error::LaunchError;
use crate::observer::Observer;

/// First and longest pause between two probes of the VM's display.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long one probe may take, connection and banner together.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The label of the wait for the VM's display.
pub const WAITING_FOR_DISPLAY: &str = "Waiting for the VM's display";

/// Resolves the VNC service and waits until its server sends the `RFB`
/// banner through the tunnel; gives up at `deadline`, name lookups
/// included. Returns the service's address inside the tunnel.
pub async fn wait_for_display(
    handle: &TunnelHandle,
    deadline: Deadline,
    observer: &mut dyn Observer,
) -> Result<SocketAddrV4, LaunchError> {
    let mut waiting = observer.waiting(WAITING_FOR_DISPLAY);
    let bounded = tokio::time::timeout_at(deadline.at().into(), probe_until_answered(handle));
    let result = bounded
        .await
        .unwrap_or_else(|_| Err(display_timeout(deadline)));
    waiting.finish();
    result
}

fn display_timeout(deadline: Deadline) -> LaunchError {
    LaunchError::DisplayTimeout {
        service: VNC_SERVICE,
        port: VNC_PORT,
        seconds: deadline.total().as_secs(),
    }
}

/// Resolves the service, then probes it with growing pauses until it
/// answers; the caller bounds the time.
async fn probe_until_answered(handle: &TunnelHandle) -> Result<SocketAddrV4, LaunchError> {
    let ip = handle
        .resolve(VNC_SERVICE)
        .await
        .map_err(LaunchError::NoVncService)?;
    let target = SocketAddrV4::new(ip, VNC_PORT);
    let mut pause = FIRST_BACKOFF;
    loop {
        if probe(handle, target).await {
            return Ok(target);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// Whether a VNC server answers at `target`: its banner starts with `RFB`.
async fn probe(handle: &TunnelHandle, target: SocketAddrV4) -> bool {
    let attempt = async {
        let mut stream = handle.connect(target).await.ok()?;
        let mut banner = Vec::new();
        while banner.len() < 3 {
            banner.extend(stream.recv().await?);
        }
        Some(banner.starts_with(b"RFB"))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}
