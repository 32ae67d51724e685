//! What the server's task publishes to its handles: its address and key,
//! a way to wake it, each client key's counters (read by
//! [`ServerHandle::peers`](super::ServerHandle::peers) for lease expiry)
//! and the activity callback. Counters are atomics, so the task never
//! waits on a handle for long.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::worker::Wake;

/// Called with a client address when its key shows activity.
pub(crate) type ActivityCallback = Arc<dyn Fn(Ipv4Addr) + Send + Sync>;

/// What the server task publishes to handles.
pub(crate) struct ServerShared {
    /// Wakes the server: a relay moved data or made room.
    pub wake: Notify,
    /// Times below are microseconds since this instant, plus one (0: never).
    pub started: Instant,
    pub local_addr: SocketAddr,
    pub public_key: [u8; 32],
    pub peers: Mutex<HashMap<[u8; 32], Arc<PeerCounters>>>,
    pub on_activity: Mutex<Option<ActivityCallback>>,
}

/// One client key's published state.
#[derive(Default)]
pub(crate) struct PeerCounters {
    pub addresses: Mutex<Vec<Ipv4Addr>>,
    pub endpoint: Mutex<Option<SocketAddr>>,
    pub last_handshake: AtomicU64,
    pub last_activity: AtomicU64,
    pub last_data: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
}

impl ServerShared {
    /// Nothing published yet: no peers, no callback.
    pub fn new(local_addr: SocketAddr, public_key: [u8; 32]) -> ServerShared {
        ServerShared {
            wake: Notify::new(),
            started: Instant::now(),
            local_addr,
            public_key,
            peers: Mutex::new(HashMap::new()),
            on_activity: Mutex::new(None),
        }
    }

    /// `instant` as stored in [`PeerCounters`].
    pub fn stamp(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.started).as_micros() as u64 + 1
    }

    /// A time stored in [`PeerCounters`]; `None` for never.
    pub fn instant(&self, stamp: u64) -> Option<Instant> {
        (stamp > 0).then(|| self.started + Duration::from_micros(stamp - 1))
    }
}

impl Wake for ServerShared {
    fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Locks `mutex`, even if a thread panicked holding it: the data are
/// counters and lists, valid at any time.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
