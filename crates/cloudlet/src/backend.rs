//! What the registry asks of the machine: start and stop VMs, add and
//! remove tunnel peers.
//!
//! The registry ([`crate::Registry`]) decides *when*; a [`Backend`] does
//! the work, so the registry stays independent of QEMU and WireGuard. The
//! real implementations (QEMU, the user-space WireGuard endpoint) live in
//! other crates; tests use recording fakes.
//!
//! Every method is called on a blocking thread (`spawn_blocking`), never on
//! the async runtime's workers, so implementations may block: spawn
//! processes, pull images with a blocking HTTP client, send on a channel
//! with `blocking_send`. Calls for different deployments may run
//! concurrently; calls for one deployment never overlap.

use std::net::Ipv4Addr;

use sinfonia::deployment::DiskProgress;

use crate::spec::DeploymentSpec;

/// Starts and stops deployments and manages the clients' tunnel peers.
pub trait Backend: Send + Sync + 'static {
    /// What a started deployment is (a QEMU process handle…), handed back
    /// to [`Backend::stop`].
    type Running: Send + Sync + 'static;

    /// Removes what a previous run of the cloudlet left behind (VMs,
    /// overlays, peers). Called once, before the API is served.
    fn cleanup(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Starts a deployment's VM. Returns once the VM runs (not once the
    /// guest has booted).
    fn start(&self, spec: &DeploymentSpec) -> Result<Self::Running, BackendError>;

    /// Stops a deployment's VM and deletes its throw-away files. Errors are
    /// logged; the deployment is considered stopped either way.
    fn stop(&self, running: &Self::Running) -> Result<(), BackendError>;

    /// Lets the client with `key` into the tunnel with `address` (a /32).
    fn add_peer(&self, key: &[u8; 32], address: Ipv4Addr) -> Result<(), BackendError>;

    /// Drops the client's `address` from the tunnel (and the peer when it
    /// has no address left). Errors are logged.
    fn remove_peer(&self, key: &[u8; 32], address: Ipv4Addr) -> Result<(), BackendError>;

    /// How far the download of the deployment's disk is while its VM runs
    /// ahead of it (a lazy pull); `None` once there is nothing to wait for.
    fn disk_progress(&self, _running: &Self::Running) -> Option<DiskProgress> {
        None
    }

    /// Why the deployment cannot go on, when its VM was stopped under it
    /// (its disk failed its check). The registry then tears it down and
    /// answers the client's next deploy with this reason.
    fn failure(&self, _running: &Self::Running) -> Option<String> {
        None
    }

    /// The backend's figures for `/metrics`, read when Prometheus scrapes.
    /// May touch the disk (the image cache's size); called off the async
    /// threads.
    fn stats(&self) -> BackendStats {
        BackendStats::default()
    }
}

/// What a backend reports for `/metrics` ([`crate::metrics`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendStats {
    /// Clients admitted on the WireGuard endpoint.
    pub tunnel_peers: usize,
    /// WireGuard UDP bytes received since the start (peers gone included).
    pub tunnel_rx_bytes: u64,
    /// WireGuard UDP bytes sent since the start (peers gone included).
    pub tunnel_tx_bytes: u64,
    /// Bytes in the image cache.
    pub image_cache_bytes: u64,
    /// The seconds each pull completed since the previous call took, from
    /// its start to its complete disk image; a lazy pull counts when its
    /// download is verified (taken: each is reported once).
    pub pull_seconds: Vec<f64>,
}

/// A backend operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// It failed (answered 500): image unreachable, QEMU refused, …
    #[error("{0}")]
    Failed(String),
    /// Not now (answered 503): out of memory, ports, … Try again later.
    #[error("{0}")]
    Unavailable(String),
}

impl BackendError {
    /// A failure.
    pub fn failed(message: impl Into<String>) -> BackendError {
        BackendError::Failed(message.into())
    }

    /// A temporary shortage.
    pub fn unavailable(message: impl Into<String>) -> BackendError {
        BackendError::Unavailable(message.into())
    }
}
