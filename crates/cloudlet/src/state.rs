//! The deployment registry: one deployment per (backend UUID, client key)
//! and its lifecycle.
//!
//! ```text
//! Initializing ──start──▶ Deployed ──idle──▶ Expiring ──grace──▶ Expired
//!      ▲                     │  ▲                │
//!      └── (new request) ────┘  └── (new request)┘
//! ```
//!
//! - A deploy request creates the deployment (two random words for a name,
//!   the next free /32 in 10.5.0.0/16 for the client) or finds it; a
//!   `Deployed` one has its lease extended, an `Expiring` one is started
//!   again under the same name and address.
//! - At most `max_vms` deployments are `Initializing` or `Deployed`; an
//!   excess request fails with [`DeployError::AtCapacity`].
//! - A `Deployed` deployment whose last activity (a deploy request, or
//!   traffic the tunnel reports with [`Registry::touch`]) is older than
//!   `idle_timeout` becomes `Expiring`: its peer is removed and its VM
//!   stopped. After `expiring_grace` more it is `Expired`: forgotten, its
//!   name and address freed.
//!
//! Transitions of one deployment are serialised by a per-deployment async
//! lock and run in spawned tasks, so a client hanging up mid-request never
//! leaves a VM unaccounted for. The registry's own map is behind a plain
//! mutex held only for bookkeeping, never across a backend call.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use sinfonia::deployment::{DeploymentStatus, DiskProgress};
use sinfonia::keys::short_key;
use sinfonia::tier2::{CLIENT_NETWORK, TUNNEL_ADDRESS};
use uuid::Uuid;

use crate::backend::{Backend, BackendError};
use crate::names;
use crate::spec::{DeploymentSpec, VmSettings};

/// How long deployments live and how many run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most deployments `Initializing` or `Deployed` at once.
    pub max_vms: usize,
    /// A `Deployed` deployment idle this long becomes `Expiring`.
    pub idle_timeout: Duration,
    /// An `Expiring` deployment is `Expired` (forgotten) after this.
    pub expiring_grace: Duration,
}

/// A snapshot of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Two random words, unique on the cloudlet.
    pub name: String,
    /// The backend UUID.
    pub uuid: Uuid,
    /// The client's WireGuard public key.
    pub key: [u8; 32],
    /// The client's tunnel address (a /32).
    pub address: Ipv4Addr,
    /// Where it is in its lifecycle.
    pub status: DeploymentStatus,
    /// When its VM was last started.
    pub created: SystemTime,
}

/// A deploy request that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// `max_vms` deployments already run.
    #[error(
        "the cloudlet already runs its maximum of {max} VMs; try again later or when a lease ends"
    )]
    AtCapacity {
        /// `max_vms`.
        max: usize,
    },
    /// All 65 533 client addresses are taken.
    #[error("no client address is left in 10.5.0.0/16")]
    NoAddress,
    /// The backend could not start the VM.
    #[error("cannot start deployment {name}: {source}")]
    Start {
        /// The deployment.
        name: String,
        /// Why.
        source: BackendError,
    },
    /// The backend could not add the client's tunnel peer.
    #[error("cannot add the tunnel peer of deployment {name}: {source}")]
    Peer {
        /// The deployment.
        name: String,
        /// Why.
        source: BackendError,
    },
    /// A task of the registry failed (panicked or was cancelled).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A release request for a deployment that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no deployment of {uuid} for this key")]
pub struct NotFound {
    /// The backend requested.
    pub uuid: Uuid,
}

type SlotKey = (Uuid, [u8; 32]);

struct Slot<R> {
    /// Distinguishes this slot from a later one for the same (uuid, key).
    id: u64,
    name: String,
    address: Ipv4Addr,
    status: DeploymentStatus,
    created: SystemTime,
    last_activity: Instant,
    expiring_since: Option<Instant>,
    running: Option<Arc<R>>,
    /// Serialises the transitions of this deployment.
    op: Arc<tokio::sync::Mutex<()>>,
    /// A reaper task is on it.
    reaping: bool,
}

struct Inner<R> {
    slots: HashMap<SlotKey, Slot<R>>,
    by_address: HashMap<Ipv4Addr, SlotKey>,
    names: HashSet<String>,
    /// The host part of the last address handed out.
    cursor: u16,
    next_id: u64,
}

impl<R> Inner<R> {
    fn active(&self) -> usize {
        self.slots
            .values()
            .filter(|s| {
                matches!(
                    s.status,
                    DeploymentStatus::Initializing | DeploymentStatus::Deployed
                )
            })
            .count()
    }

    /// The next free address after the last one handed out (so a freed
    /// address is not reused at once), skipping the network, the cloudlet
    /// and the broadcast addresses.
    fn allocate_address(&mut self) -> Option<Ipv4Addr> {
        let base = u32::from(CLIENT_NETWORK);
        for step in 1..=u32::from(u16::MAX) {
            let host = (u32::from(self.cursor) + step) as u16;
            let address = Ipv4Addr::from(base | u32::from(host));
            let reserved = host == 0 || host == u16::MAX || address == TUNNEL_ADDRESS;
            if reserved || self.by_address.contains_key(&address) {
                continue;
            }
            self.cursor = host;
            return Some(address);
        }
        None
    }

    fn snapshot(&self, key: &SlotKey) -> Option<Deployment> {
        self.slots.get(key).map(|slot| Deployment {
            name: slot.name.clone(),
            uuid: key.0,
            key: key.1,
            address: slot.address,
            status: slot.status,
            created: slot.created,
        })
    }

    /// Forgets a slot if it is still the one with `id`; frees its name and
    /// address.
    fn remove(&mut self, key: &SlotKey, id: u64) {
        if self.slots.get(key).is_some_and(|slot| slot.id == id)
            && let Some(slot) = self.slots.remove(key)
        {
            self.by_address.remove(&slot.address);
            self.names.remove(&slot.name);
        }
    }

    /// The slot for `key` if it is still the one with `id`.
    fn current(&mut self, key: &SlotKey, id: u64) -> Option<&mut Slot<R>> {
        self.slots.get_mut(key).filter(|slot| slot.id == id)
    }
}

struct Shared<B: Backend> {
    backend: Arc<B>,
    limits: Limits,
    inner: Mutex<Inner<B::Running>>,
}

/// The deployments of the cloudlet. Cheap to clone; all clones share one
/// registry.
pub struct Registry<B: Backend> {
    shared: Arc<Shared<B>>,
}

impl<B: Backend> Clone for Registry<B> {
    fn clone(&self) -> Self {
        Registry {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Why a deployment's VM was stopped, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// The client deleted it.
    Released,
    /// No tunnel traffic for the idle timeout (the slot stays `Expiring`).
    Idle,
    /// The cloudlet is stopping.
    Shutdown,
    /// The backend gave up on it (its disk failed its check).
    Failed,
}

impl StopReason {
    fn as_str(self) -> &'static str {
        match self {
            StopReason::Released => "released by the client",
            StopReason::Idle => "idle",
            StopReason::Shutdown => "cloudlet stopping",
            StopReason::Failed => "failed",
        }
    }
}

enum Action {
    Ready(Deployment),
    /// Its VM is gone for the reason given: torn down, the client told.
    Failed {
        name: String,
        reason: String,
    },
    Start {
        name: String,
        address: Ipv4Addr,
    },
    Retry,
}

impl<B: Backend> Registry<B> {
    /// An empty registry driving `backend`.
    pub fn new(backend: B, limits: Limits) -> Registry<B> {
        Registry::with_shared_backend(Arc::new(backend), limits)
    }

    /// An empty registry driving a backend shared with others.
    pub fn with_shared_backend(backend: Arc<B>, limits: Limits) -> Registry<B> {
        Registry {
            shared: Arc::new(Shared {
                backend,
                limits,
                inner: Mutex::new(Inner {
                    slots: HashMap::new(),
                    by_address: HashMap::new(),
                    names: HashSet::new(),
                    cursor: 1,
                    next_id: 0,
                }),
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.shared.backend
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner<B::Running>> {
        // The bookkeeping is consistent between statements; a panic while
        // holding the lock cannot leave it half-updated.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deploys `uuid` for the client `key`: returns its deployment,
    /// starting it if needed, and extends its lease.
    ///
    /// The work runs in a spawned task: if the caller goes away, the
    /// deployment still ends up either `Deployed` or forgotten.
    pub async fn deploy(
        &self,
        uuid: Uuid,
        key: [u8; 32],
        settings: VmSettings,
    ) -> Result<Deployment, DeployError> {
        let registry = self.clone();
        tokio::spawn(async move { registry.deploy_task(uuid, key, settings).await })
            .await
            .map_err(|e| DeployError::Internal(e.to_string()))?
    }

    async fn deploy_task(
        &self,
        uuid: Uuid,
        key: [u8; 32],
        settings: VmSettings,
    ) -> Result<Deployment, DeployError> {
        let slot_key = (uuid, key);
        loop {
            let (op, id) = self.find_or_create(&slot_key)?;
            let _guard = op.lock().await;
            let action = {
                let mut inner = self.lock();
                let active = inner.active();
                let max = self.shared.limits.max_vms;
                match inner.current(&slot_key, id) {
                    None => Action::Retry,
                    Some(slot) => match slot.status {
                        DeploymentStatus::Deployed
                            if let Some(reason) = slot
                                .running
                                .as_ref()
                                .and_then(|running| self.shared.backend.failure(running)) =>
                        {
                            Action::Failed {
                                name: slot.name.clone(),
                                reason,
                            }
                        }
                        DeploymentStatus::Deployed => {
                            slot.last_activity = Instant::now();
                            match inner.snapshot(&slot_key) {
                                Some(deployment) => Action::Ready(deployment),
                                None => Action::Retry,
                            }
                        }
                        DeploymentStatus::Expiring | DeploymentStatus::Expired if active >= max => {
                            return Err(DeployError::AtCapacity { max });
                        }
                        DeploymentStatus::Initializing
                        | DeploymentStatus::Expiring
                        | DeploymentStatus::Expired => {
                            slot.status = DeploymentStatus::Initializing;
                            slot.expiring_since = None;
                            Action::Start {
                                name: slot.name.clone(),
                                address: slot.address,
                            }
                        }
                    },
                }
            };
            match action {
                Action::Retry => continue,
                Action::Failed { name, reason } => {
                    self.tear_down(&slot_key, id, StopReason::Failed).await;
                    return Err(DeployError::Start {
                        name,
                        source: BackendError::failed(reason),
                    });
                }
                Action::Ready(deployment) => {
                    tracing::debug!(
                        deployment = deployment.name,
                        %uuid,
                        client = short_key(&key),
                        "lease renewed by a deploy request"
                    );
                    return Ok(deployment);
                }
                Action::Start { name, address } => {
                    tracing::info!(
                        deployment = name,
                        %uuid,
                        client = short_key(&key),
                        %address,
                        "deploying"
                    );
                    let spec = DeploymentSpec {
                        uuid,
                        name,
                        settings,
                        client_key: key,
                        client_address: address,
                    };
                    return self.start(&slot_key, id, spec).await;
                }
            }
        }
    }

    /// The slot's operation lock and id, creating the slot (Initializing,
    /// counted against `max_vms`) when there is none.
    fn find_or_create(
        &self,
        slot_key: &SlotKey,
    ) -> Result<(Arc<tokio::sync::Mutex<()>>, u64), DeployError> {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.get(slot_key) {
            return Ok((Arc::clone(&slot.op), slot.id));
        }
        let max = self.shared.limits.max_vms;
        if inner.active() >= max {
            return Err(DeployError::AtCapacity { max });
        }
        let address = inner.allocate_address().ok_or(DeployError::NoAddress)?;
        let name = names::unique_name(|name| inner.names.contains(name));
        let id = inner.next_id;
        inner.next_id += 1;
        let op = Arc::new(tokio::sync::Mutex::new(()));
        inner.names.insert(name.clone());
        inner.by_address.insert(address, *slot_key);
        inner.slots.insert(
            *slot_key,
            Slot {
                id,
                name,
                address,
                status: DeploymentStatus::Initializing,
                created: SystemTime::now(),
                last_activity: Instant::now(),
                expiring_since: None,
                running: None,
                op: Arc::clone(&op),
                reaping: false,
            },
        );
        Ok((op, id))
    }

    /// Starts the VM and adds the peer of an `Initializing` slot (its
    /// operation lock held); on failure the slot is forgotten.
    async fn start(
        &self,
        slot_key: &SlotKey,
        id: u64,
        spec: DeploymentSpec,
    ) -> Result<Deployment, DeployError> {
        let name = spec.name.clone();
        let (key, address) = (spec.client_key, spec.client_address);
        let starting = Instant::now();
        let started = self.blocking(move |backend| backend.start(&spec)).await;
        let running = match started {
            Ok(running) => Arc::new(running),
            Err(source) => {
                tracing::warn!(deployment = name, uuid = %slot_key.0, error = %source, "deployment failed");
                self.lock().remove(slot_key, id);
                return Err(DeployError::Start { name, source });
            }
        };
        if let Err(source) = self
            .blocking(move |backend| backend.add_peer(&key, address))
            .await
        {
            self.stop_vm(&name, running).await;
            self.lock().remove(slot_key, id);
            return Err(DeployError::Peer { name, source });
        }
        let deployed = {
            let mut inner = self.lock();
            match inner.current(slot_key, id) {
                Some(slot) => {
                    slot.status = DeploymentStatus::Deployed;
                    slot.running = Some(running.clone());
                    slot.created = SystemTime::now();
                    slot.last_activity = Instant::now();
                    slot.expiring_since = None;
                    inner.snapshot(slot_key)
                }
                None => None,
            }
        };
        match deployed {
            Some(deployment) => {
                tracing::info!(
                    deployment = name,
                    uuid = %slot_key.0,
                    seconds = starting.elapsed().as_secs_f64(),
                    "deployed"
                );
                Ok(deployment)
            }
            None => {
                // Only this task may remove the slot while it holds the
                // operation lock; stay safe anyway.
                self.remove_peer(key, address).await;
                self.stop_vm(&name, running).await;
                Err(DeployError::Internal(format!(
                    "deployment {name} vanished while starting"
                )))
            }
        }
    }

    /// Runs a backend call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&B) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let backend = Arc::clone(&self.shared.backend);
        tokio::task::spawn_blocking(move || call(&backend))
            .await
            .unwrap_or_else(|e| Err(BackendError::failed(format!("the backend panicked: {e}"))))
    }

    async fn stop_vm(&self, name: &str, running: Arc<B::Running>) {
        if let Err(e) = self.blocking(move |backend| backend.stop(&running)).await {
            tracing::error!(deployment = name, error = %e, "stopping the VM failed");
        }
    }

    async fn remove_peer(&self, key: [u8; 32], address: Ipv4Addr) {
        if let Err(e) = self
            .blocking(move |backend| backend.remove_peer(&key, address))
            .await
        {
            tracing::error!(%address, error = %e, "removing the tunnel peer failed");
        }
    }

    /// The deployment of `uuid` for `key`, if any.
    pub fn get(&self, uuid: Uuid, key: [u8; 32]) -> Option<Deployment> {
        self.lock().snapshot(&(uuid, key))
    }

    /// How far the download of a deployment's disk is, while its VM runs
    /// ahead of it ([`Backend::disk_progress`]).
    pub fn disk_progress(&self, uuid: Uuid, key: [u8; 32]) -> Option<DiskProgress> {
        let running = self.lock().slots.get(&(uuid, key))?.running.clone()?;
        self.shared.backend.disk_progress(&running)
    }

    /// The deployment whose client has `address`, if any.
    pub fn by_address(&self, address: Ipv4Addr) -> Option<Deployment> {
        let inner = self.lock();
        let key = inner.by_address.get(&address)?;
        inner.snapshot(key)
    }

    /// Every deployment, in no particular order.
    pub fn deployments(&self) -> Vec<Deployment> {
        let inner = self.lock();
        inner
            .slots
            .keys()
            .filter_map(|key| inner.snapshot(key))
            .collect()
    }

    /// How many deployments are `Initializing` or `Deployed`.
    pub fn active(&self) -> usize {
        self.lock().active()
    }

    /// How many deployments are `Deployed`: their VM runs.
    pub fn running(&self) -> usize {
        let inner = self.lock();
        inner
            .slots
            .values()
            .filter(|slot| slot.status == DeploymentStatus::Deployed)
            .count()
    }

    /// Reports tunnel traffic from the client with `address`: extends the
    /// lease of its deployment if it is `Deployed`. Returns whether it is.
    /// Cheap and callable from any thread.
    pub fn touch(&self, address: Ipv4Addr) -> bool {
        let mut inner = self.lock();
        let Some(key) = inner.by_address.get(&address).copied() else {
            return false;
        };
        match inner.slots.get_mut(&key) {
            Some(slot) if slot.status == DeploymentStatus::Deployed => {
                slot.last_activity = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Releases the deployment of `uuid` for `key` at once: removes the
    /// peer, stops the VM, forgets it.
    pub async fn release(&self, uuid: Uuid, key: [u8; 32]) -> Result<(), NotFound> {
        let registry = self.clone();
        tokio::spawn(async move { registry.release_task(uuid, key).await })
            .await
            .unwrap_or(Err(NotFound { uuid }))
    }

    async fn release_task(&self, uuid: Uuid, key: [u8; 32]) -> Result<(), NotFound> {
        let slot_key = (uuid, key);
        let (op, id) = {
            let inner = self.lock();
            let slot = inner.slots.get(&slot_key).ok_or(NotFound { uuid })?;
            (Arc::clone(&slot.op), slot.id)
        };
        let _guard = op.lock().await;
        self.tear_down(&slot_key, id, StopReason::Released)
            .await
            .then_some(())
            .ok_or(NotFound { uuid })
    }

    /// Removes the peer and stops the VM of a slot (operation lock held);
    /// then forgets the slot, or makes it `Expiring` when it stopped for
    /// being idle. False if the
    /// slot is gone.
    async fn tear_down(&self, slot_key: &SlotKey, id: u64, reason: StopReason) -> bool {
        let forget = reason != StopReason::Idle;
        let (name, address, running) = {
            let mut inner = self.lock();
            let Some(slot) = inner.current(slot_key, id) else {
                return false;
            };
            (slot.name.clone(), slot.address, slot.running.take())
        };
        if let Some(running) = running {
            self.remove_peer(slot_key.1, address).await;
            self.stop_vm(&name, running).await;
            tracing::info!(
                deployment = name,
                uuid = %slot_key.0,
                reason = reason.as_str(),
                "deployment stopped"
            );
        }
        let mut inner = self.lock();
        if forget {
            inner.remove(slot_key, id);
        } else if let Some(slot) = inner.current(slot_key, id) {
            slot.status = DeploymentStatus::Expiring;
            slot.expiring_since = Some(Instant::now());
            slot.reaping = false;
        }
        true
    }

    /// One pass of the lifecycle: `Deployed` deployments idle for
    /// `idle_timeout` become `Expiring` (peer removed, VM stopped);
    /// `Expiring` ones older than `expiring_grace` are forgotten. Returns
    /// once those transitions are done.
    pub async fn reap(&self) {
        let Limits {
            idle_timeout,
            expiring_grace,
            ..
        } = self.shared.limits;
        let due = {
            let mut inner = self.lock();
            let now = Instant::now();
            let mut due = Vec::new();
            for (key, slot) in inner.slots.iter_mut() {
                let idle = slot.status == DeploymentStatus::Deployed
                    && now.duration_since(slot.last_activity) >= idle_timeout;
                let gone = slot.status == DeploymentStatus::Expiring
                    && slot
                        .expiring_since
                        .is_some_and(|since| now.duration_since(since) >= expiring_grace);
                if (idle || gone) && !slot.reaping {
                    slot.reaping = true;
                    due.push((*key, slot.id, Arc::clone(&slot.op)));
                }
            }
            due
        };
        let tasks: Vec<_> = due
            .into_iter()
            .map(|(key, id, op)| {
                let registry = self.clone();
                tokio::spawn(async move {
                    let _guard = op.lock().await;
                    registry.reap_one(&key, id).await;
                })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "expiring a deployment failed");
            }
        }
    }

    /// Expires or forgets one slot if it is still due (operation lock held).
    async fn reap_one(&self, slot_key: &SlotKey, id: u64) {
        let Limits {
            idle_timeout,
            expiring_grace,
            ..
        } = self.shared.limits;
        let now = Instant::now();
        let status = {
            let mut inner = self.lock();
            let Some(slot) = inner.current(slot_key, id) else {
                return;
            };
            slot.reaping = false;
            match slot.status {
                DeploymentStatus::Deployed
                    if now.duration_since(slot.last_activity) >= idle_timeout =>
                {
                    slot.reaping = true;
                    DeploymentStatus::Expiring
                }
                DeploymentStatus::Expiring
                    if slot
                        .expiring_since
                        .is_some_and(|since| now.duration_since(since) >= expiring_grace) =>
                {
                    DeploymentStatus::Expired
                }
                // Touched or restarted meanwhile.
                _ => return,
            }
        };
        match status {
            DeploymentStatus::Expiring => {
                self.tear_down(slot_key, id, StopReason::Idle).await;
            }
            _ => self.lock().remove(slot_key, id),
        }
    }

    /// Runs [`Registry::reap`] every `period` until the registry's last
    /// other handle is dropped or the task is aborted.
    pub fn spawn_reaper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                Registry { shared }.reap().await;
            }
        })
    }

    /// Releases every deployment (peers removed, VMs stopped), for a clean
    /// shutdown.
    pub async fn shutdown(&self) {
        let all: Vec<_> = {
            let inner = self.lock();
            inner
                .slots
                .iter()
                .map(|(key, slot)| (*key, slot.id, Arc::clone(&slot.op)))
                .collect()
        };
        let tasks: Vec<_> = all
            .into_iter()
            .map(|(key, id, op)| {
                let registry = self.clone();
                tokio::spawn(async move {
                    let _guard = op.lock().await;
                    registry.tear_down(&key, id, StopReason::Shutdown).await;
                })
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "releasing a deployment failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_skip_reserved_and_wrap() {
        let mut inner: Inner<()> = Inner {
            slots: HashMap::new(),
            by_address: HashMap::new(),
            names: HashSet::new(),
            cursor: 1,
            next_id: 0,
        };
        assert_eq!(inner.allocate_address(), Some(Ipv4Addr::new(10, 5, 0, 2)));
        assert_eq!(inner.allocate_address(), Some(Ipv4Addr::new(10, 5, 0, 3)));
        inner.cursor = u16::MAX - 1;
        // 10.5.255.255 (broadcast), 10.5.0.0 and 10.5.0.1 are skipped.
        assert_eq!(inner.allocate_address(), Some(Ipv4Addr::new(10, 5, 0, 2)));
        let key = (Uuid::nil(), [0; 32]);
        for host in 2..u16::MAX {
            inner
                .by_address
                .insert(Ipv4Addr::from(0x0a05_0000 | u32::from(host)), key);
        }
        assert_eq!(inner.allocate_address(), None);
    }
}
