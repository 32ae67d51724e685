//! What the client's stack publishes to its handles and streams: a way to
//! wake it, the handshake's completion, and traffic counters. Lock-free:
//! the stack's loop never waits on a handle.

use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio::sync::Notify;

use crate::worker::Wake;

/// State the stack publishes to handles.
#[derive(Default)]
pub(crate) struct Shared {
    /// Wakes the stack: a stream has data to send or room to receive.
    pub wake: Notify,
    /// Set once a handshake completed.
    pub handshake_done: AtomicBool,
    /// Signalled when the handshake completes.
    pub handshake: Notify,
    /// Bytes received from and sent to the cloudlet over UDP.
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
}

impl Wake for Shared {
    fn wake(&self) {
        self.wake.notify_one();
    }
}
