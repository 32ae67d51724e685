//! `stage2`: the viewer side of the original's two-stage launch. Inside a
//! network namespace made by the Python `sinfonia-tier3`, the VM's VNC
//! service resolves with the system resolver; wait for it as the original
//! does, then run a viewer on it.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};

use crate::display::WAITING_FOR_DISPLAY;
use crate::error::LaunchError;
use crate::observer::Observer;
use crate::plan::Stage2Plan;
use crate::viewer::{self, Viewer};

/// The original's pause between two probes, and its probe's time-outs.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits (up to `timeout`) until the VNC service answers with the system
/// resolver, then runs `viewer` on it and returns its exit status.
pub fn stage2(
    viewer: &Viewer,
    timeout: Duration,
    observer: &mut dyn Observer,
) -> Result<ExitStatus, LaunchError> {
    let mut waiting = observer.waiting(WAITING_FOR_DISPLAY);
    let deadline = Instant::now() + timeout;
    while !probe_system(VNC_SERVICE, VNC_PORT) {
        if Instant::now() >= deadline {
            waiting.finish();
            return Err(LaunchError::DisplayTimeout {
                service: VNC_SERVICE,
                port: VNC_PORT,
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    waiting.finish();
    Ok(viewer::run(viewer, VNC_SERVICE, VNC_PORT)?)
}

/// What `stage2` would run, for `--dry-run` (a sentence through
/// `Display`, or JSON).
pub fn stage2_plan(viewer: &Viewer) -> Stage2Plan {
    Stage2Plan::new(viewer)
}

/// The original's probe: TCP with a 1 s timeout, then the 3-byte banner.
fn probe_system(host: &str, port: u16) -> bool {
    let Ok(addresses) = (host, port).to_socket_addrs() else {
        return false;
    };
    addresses.into_iter().any(|address: SocketAddr| {
        let Ok(mut stream) = TcpStream::connect_timeout(&address, PROBE_TIMEOUT) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
        let mut banner = [0u8; 3];
        stream.read_exact(&mut banner).is_ok() && &banner == b"RFB"
    })
}
