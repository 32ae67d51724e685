//! Stopping a launch from outside: the caller's flag (set by its Ctrl-C or
//! SIGTERM handler) is polled, so the library installs no signal handler
//! of its own, and a stopped launch still closes its tunnel and its viewer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::process::Child;

/// How often the flag is looked at: short enough that a stop feels
/// immediate, long enough to cost nothing.
const POLL: Duration = Duration::from_millis(100);

/// How long a viewer may take to end after SIGTERM before it is killed.
pub const VIEWER_STOP_GRACE: Duration = Duration::from_secs(3);

/// Resolves once `flag` is set.
pub(crate) async fn requested(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(POLL).await;
    }
}

/// Ends `child`: SIGTERM first, as a window manager closing it would, so
/// it can tidy up; SIGKILL after [`VIEWER_STOP_GRACE`]. Reaps it either way.
pub(crate) async fn stop_child(child: &mut Child) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // It may have ended on its own in the meantime: nothing to do then.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(VIEWER_STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            pid = child.id(),
            grace_seconds = VIEWER_STOP_GRACE.as_secs(),
            "the viewer ignored SIGTERM; killing it"
        );
        let _ = child.kill().await;
    }
}
