//! Ctrl-C, and SIGTERM and SIGHUP as well (ctrlc's `termination`
//! feature): long operations stop at the next safe point and clean up
//! (temporary files are removed by their owners, viewers stopped, tunnels
//! closed), then we exit with 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The process-wide flag that Ctrl-C sets; installs the handler once.
pub fn flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = Arc::clone(&flag);
        // Without a handler Ctrl-C still ends the process, only less tidily.
        let _ = ctrlc::set_handler(move || handler_flag.store(true, Ordering::Relaxed));
        flag
    }))
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}

/// Whether `error` is the result of Ctrl-C or SIGTERM (a download, a
/// compression, an upload or a launch stopped), at any depth.
pub fn caused(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        convert::error::is_cancellation(cause)
            || cause
                .downcast_ref::<::launch::LaunchError>()
                .is_some_and(::launch::LaunchError::is_interrupted)
    })
}
