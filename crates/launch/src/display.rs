//! Waiting for the VM's display through the tunnel: the deployment's VNC
//! service ([`VNC_SERVICE`]) resolved with the tunnel's DNS, then probed
//! with backoff until its server sends the `RFB` banner.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};
use tunnel::TunnelHandle;

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
/// banner through the tunnel; gives up after `timeout`. Returns the
/// service's address inside the tunnel.
pub async fn wait_for_display(
    handle: &TunnelHandle,
    timeout: Duration,
    observer: &mut dyn Observer,
) -> Result<SocketAddrV4, LaunchError> {
    let mut waiting = observer.waiting(WAITING_FOR_DISPLAY);
    let result = probe_until_answered(handle, timeout).await;
    waiting.finish();
    result
}

async fn probe_until_answered(
    handle: &TunnelHandle,
    timeout: Duration,
) -> Result<SocketAddrV4, LaunchError> {
    let deadline = Instant::now() + timeout;
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
        if Instant::now() + pause > deadline {
            return Err(LaunchError::DisplayTimeout {
                service: VNC_SERVICE,
                port: VNC_PORT,
                seconds: timeout.as_secs(),
            });
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
