//! Ctrl-C: long operations stop at the next safe point and clean up
//! (temporary files are removed by their owners), then we exit with 130.

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

/// Whether `error` is the result of Ctrl-C (a download, a compression or
/// an upload cancelled), at any depth.
pub fn caused(error: &anyhow::Error) -> bool {
    error.chain().any(convert::error::is_cancellation)
}
