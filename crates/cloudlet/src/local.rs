//! The single-machine backend: VMs under QEMU, clients through our own
//! user-space WireGuard server.
//!
//! A deployment's disk is pulled once into a cache keyed by digest (from a
//! registry, or an OCI layout for `oci:` repositories), and every VM runs
//! from a throw-away overlay over it. A big registry image may instead be
//! served to its VM while it downloads (`--lazy-pull`,
//! `containerdisk::lazy`); `crate::lazy_vm` keeps such a VM in step with
//! its download. The VM's VNC server listens on
//! loopback only; the tunnel shows it to its client, and to no one else, as
//! `vmi-vnc.<deployment>.svc.cluster.local:5900`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use containerdisk::auth::Credentials;
use containerdisk::lazy::{LazyMode, LazyOptions, LazyPool, Started};
use containerdisk::pull::{DiskSource, FetchOptions, evict_lru, remove_partials};
use containerdisk::registry::RegistryOptions;
use sinfonia::deployment::DiskProgress;
use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};
use tunnel::server::{PeerConfig, ServerHandle, Service};
use vmrunner::{Accel, DiskImage, RunningVm, VmSpec};

use crate::backend::{Backend, BackendError, BackendStats};
use crate::lazy_vm::{LazyWatch, ServedLayer};
use crate::spec::DeploymentSpec;

/// The address the VNC service has inside every client's tunnel; clients
/// only ever reach their own deployment's, whatever they ask for. Its name
/// and port are the `vmi` chart's (`sinfonia::vmi::VNC_SERVICE`).
pub const VNC_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);

/// VMs under QEMU, peers on our tunnel server.
pub struct LocalBackend {
    cache_dir: PathBuf,
    vms_dir: PathBuf,
    tunnel: ServerHandle,
    runtime: tokio::runtime::Handle,
    accel: Accel,
    /// What each started deployment's client may reach, by its address,
    /// until `add_peer` lets it in.
    services: Mutex<HashMap<Ipv4Addr, PeerConfig>>,
    /// Bytes (rx, tx) of the peers already removed, so the totals for
    /// `/metrics` never go down.
    retired_bytes: Mutex<(u64, u64)>,
    /// Pull durations not yet reported to `/metrics`.
    pulls: Mutex<Vec<f64>>,
    /// The most bytes the image cache may hold (0: no limit).
    cache_max_bytes: u64,
    /// Cached disks running VMs use, and how many VMs each: never evicted.
    disks_in_use: Mutex<HashMap<PathBuf, usize>>,
    /// CA certificates (PEM) trusted for registries besides the system's.
    registry_ca: Option<PathBuf>,
    /// When VMs start before their disk is downloaded, and from what size.
    lazy: (LazyMode, u64),
    /// The pulls, full and lazy; made at the first deploy, once the
    /// options are final.
    pool: OnceLock<LazyPool>,
}

/// A running deployment: its VM, the cached disk under it, or the watch
/// over its download when it runs ahead of it (its disk is read through
/// the lazy pull, which eviction cannot touch).
pub struct LocalDeployment {
    vm: Arc<Mutex<RunningVm>>,
    disk: Option<PathBuf>,
    lazy: Option<LazyWatch>,
}

impl LocalBackend {
    /// A backend keeping its VMs under `data_dir` and its images in
    /// `cache_dir`, admitting clients on `tunnel`. Must be created inside a
    /// Tokio runtime.
    pub fn new(
        data_dir: &Path,
        cache_dir: &Path,
        tunnel: ServerHandle,
        accel: Accel,
    ) -> std::io::Result<LocalBackend> {
        let cache_dir = cache_dir.to_owned();
        let vms_dir = data_dir.join("vms");
        std::fs::create_dir_all(&cache_dir)?;
        std::fs::create_dir_all(&vms_dir)?;
        Ok(LocalBackend {
            cache_dir,
            vms_dir,
            tunnel,
            runtime: tokio::runtime::Handle::current(),
            accel,
            services: Mutex::new(HashMap::new()),
            retired_bytes: Mutex::new((0, 0)),
            pulls: Mutex::new(Vec::new()),
            cache_max_bytes: 0,
            disks_in_use: Mutex::new(HashMap::new()),
            registry_ca: None,
            lazy: (LazyMode::Never, containerdisk::lazy::DEFAULT_THRESHOLD),
            pool: OnceLock::new(),
        })
    }

    /// The same backend starting VMs before their disk is downloaded as
    /// `mode` says, `auto` from `threshold` bytes on
    /// (`containerdisk::lazy`); by default it never does.
    pub fn with_lazy_pull(mut self, mode: LazyMode, threshold: u64) -> LocalBackend {
        self.lazy = (mode, threshold);
        self
    }

    fn pool(&self) -> &LazyPool {
        self.pool.get_or_init(|| {
            let fetch = FetchOptions {
                registry: RegistryOptions {
                    ca_file: self.registry_ca.clone(),
                    ..RegistryOptions::default()
                },
                ..FetchOptions::default()
            };
            let options = LazyOptions {
                threshold: self.lazy.1,
                ..LazyOptions::default()
            };
            LazyPool::new(&self.cache_dir, fetch, options, self.lazy.0)
        })
    }

    fn disk_source(spec: &DeploymentSpec) -> Result<DiskSource, BackendError> {
        let values = &spec.settings.values;
        let disk = &values.container_disk;
        let credentials = values
            .container_disk_credentials
            .as_ref()
            .map(|c| Credentials::new(c.username.clone(), c.password.clone()));
        DiskSource::from_chart_values(
            &disk.repository,
            &disk.name,
            disk.tag.as_deref(),
            disk.digest.as_deref(),
            credentials,
        )
        .map_err(|e| BackendError::failed(format!("the recipe's containerDisk: {e}")))
    }

    /// The same backend keeping its image cache under `max_bytes` (0: no
    /// limit): images no VM uses are evicted, least recently used first.
    pub fn with_cache_limit(mut self, max_bytes: u64) -> LocalBackend {
        self.cache_max_bytes = max_bytes;
        self
    }

    /// The same backend trusting the CA certificates of `ca_file` (PEM)
    /// for registries, besides the system's (and HTTPS to a loopback one).
    pub fn with_registry_ca(mut self, ca_file: Option<PathBuf>) -> LocalBackend {
        self.registry_ca = ca_file;
        self
    }

    /// Evicts images beyond the cache limit, keeping those in use and
    /// `keep` (the disk about to start). Runs after each start and stop, so
    /// an image is evicted as soon as no VM needs it and the cache is over.
    fn enforce_cache_limit(&self, keep: Option<&Path>) {
        if self.cache_max_bytes == 0 {
            return;
        }
        let mut in_use: Vec<PathBuf> = lock(&self.disks_in_use).keys().cloned().collect();
        in_use.extend(keep.map(Path::to_owned));
        let eviction = evict_lru(&self.cache_dir, self.cache_max_bytes, &in_use);
        if !eviction.removed.is_empty() {
            tracing::info!(
                removed = ?eviction.removed,
                freed_bytes = eviction.freed,
                remaining_bytes = eviction.remaining,
                max_bytes = self.cache_max_bytes,
                "images evicted from the cache"
            );
        }
    }

    /// Makes the deployment's disk available (cached, pulled, or served
    /// while it downloads), with its log events and pull time.
    fn pull(&self, deployment: &str, source: &DiskSource) -> Result<Started, BackendError> {
        let pulling = std::time::Instant::now();
        let started = self.pool().start(source).map_err(|e| {
            if is_disk_full(&e) {
                // Nothing partial stays: the pull's temporary directory is
                // removed with it.
                tracing::warn!(deployment, image = %source, error = %e, "pull failed: the image cache's disk is full");
                BackendError::unavailable(format!("the image cache is full: {e}"))
            } else {
                tracing::warn!(deployment, image = %source, error = %e, "pull failed");
                BackendError::failed(format!("cannot fetch the disk image: {e}"))
            }
        })?;
        let seconds = pulling.elapsed().as_secs_f64();
        match &started {
            Started::Cached(disk) => {
                if !disk.cache_hit {
                    lock(&self.pulls).push(seconds);
                }
                self.enforce_cache_limit(Some(&disk.path));
                tracing::info!(
                    deployment,
                    image = %source,
                    digest = %disk.digest,
                    bytes = disk.size,
                    seconds,
                    mib_per_second = disk.size as f64 / (1 << 20) as f64 / seconds.max(1e-3),
                    cache_hit = disk.cache_hit,
                    "disk image ready"
                );
            }
            Started::Lazy(disk) => tracing::info!(
                deployment,
                image = %source,
                layer = %disk.layer(),
                bytes = disk.size(),
                seconds,
                "disk image served while it downloads"
            ),
        }
        Ok(started)
    }

    fn services(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, PeerConfig>> {
        self.services
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Backend for LocalBackend {
    type Running = LocalDeployment;

    fn cleanup(&self) -> Result<(), BackendError> {
        let cleanup = vmrunner::cleanup_leftovers(&self.vms_dir);
        if let Ok(entries) = std::fs::read_dir(&self.vms_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        for error in &cleanup.errors {
            tracing::warn!(%error, "cleaning up after the previous run");
        }
        let partials = remove_partials(&self.cache_dir);
        if partials > 0 {
            tracing::info!(partials, "removed unfinished pulls of the previous run");
        }
        Ok(())
    }

    fn start(&self, spec: &DeploymentSpec) -> Result<LocalDeployment, BackendError> {
        // Checked when the recipe was read; again here, because pulling an
        // image for a VM the runner will refuse wastes minutes and disk.
        spec.settings
            .size()
            .check()
            .map_err(|e| BackendError::failed(format!("the recipe's VM: {e}")))?;
        let source = Self::disk_source(spec)?;
        let deployment = spec.name.as_str();
        tracing::info!(deployment, image = %source, "pulling the disk image");
        let (disk_image, cached_disk, lazy_disk) = match self.pull(deployment, &source)? {
            Started::Cached(disk) => (DiskImage::File(disk.path.clone()), Some(disk.path), None),
            Started::Lazy(disk) => {
                let served = DiskImage::Served(Arc::new(ServedLayer(Arc::clone(&disk))));
                (served, None, Some(disk))
            }
        };
        let values = &spec.settings.values;
        let machine = values.machine.as_ref();
        let vm_spec = VmSpec {
            disk: disk_image,
            vcpus: spec.settings.cpus,
            memory_mib: spec.settings.memory_bytes.div_ceil(1 << 20),
            bus: values.container_disk.bus,
            machine: machine.and_then(|m| m.machine_type.clone()),
            network: machine.is_some_and(|m| m.network),
            work_dir: self.vms_dir.join(&spec.name),
            accel: self.accel,
        };
        let vm = vmrunner::start(&vm_spec)
            .map_err(|e| BackendError::failed(format!("cannot start the VM: {e}")))?;
        tracing::info!(
            deployment,
            pid = vm.pid(),
            vnc = %vm.vnc(),
            accel = ?vm.accel(),
            vcpus = vm_spec.vcpus,
            memory_mib = vm_spec.memory_mib,
            "VM started"
        );
        let peer = PeerConfig {
            public_key: spec.client_key,
            address: spec.client_address,
            search_domain: format!("{}.svc.cluster.local", spec.name),
            services: vec![Service {
                name: VNC_SERVICE.to_owned(),
                ip: VNC_SERVICE_IP,
                port: VNC_PORT,
                target: vm.vnc(),
            }],
        };
        let vm = Arc::new(Mutex::new(vm));
        let lazy = match lazy_disk {
            Some(disk) => Some(
                LazyWatch::start(deployment, disk, Arc::clone(&vm))
                    .map_err(|e| BackendError::failed(format!("cannot watch the VM: {e}")))?,
            ),
            None => None,
        };
        self.services().insert(spec.client_address, peer);
        if let Some(path) = &cached_disk {
            *lock(&self.disks_in_use).entry(path.clone()).or_insert(0) += 1;
        }
        Ok(LocalDeployment {
            vm,
            disk: cached_disk,
            lazy,
        })
    }

    fn stop(&self, running: &LocalDeployment) -> Result<(), BackendError> {
        if let Some(watch) = &running.lazy {
            watch.stop();
        }
        let mut vm = running
            .vm
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stopped = vm
            .stop()
            .map_err(|e| BackendError::failed(format!("cannot stop the VM: {e}")));
        if let Some(disk) = &running.disk {
            let mut in_use = lock(&self.disks_in_use);
            if let Some(count) = in_use.get_mut(disk) {
                *count -= 1;
                if *count == 0 {
                    in_use.remove(disk);
                }
            }
        }
        self.enforce_cache_limit(None);
        stopped
    }

    fn disk_progress(&self, running: &LocalDeployment) -> Option<DiskProgress> {
        running.lazy.as_ref().map(LazyWatch::progress)
    }

    fn failure(&self, running: &LocalDeployment) -> Option<String> {
        let watch = running.lazy.as_ref()?;
        let reason = watch.failure()?;
        // This client hears it now; the image's next start tries again.
        self.pool().reported(watch.disk());
        Some(reason)
    }

    fn add_peer(&self, key: &[u8; 32], address: Ipv4Addr) -> Result<(), BackendError> {
        let peer = self
            .services()
            .get(&address)
            .filter(|peer| &peer.public_key == key)
            .cloned()
            .ok_or_else(|| BackendError::failed("no running VM for this client"))?;
        self.runtime
            .block_on(self.tunnel.add_peer(peer))
            .map_err(|e| BackendError::failed(format!("cannot admit the client: {e}")))
    }

    fn remove_peer(&self, key: &[u8; 32], address: Ipv4Addr) -> Result<(), BackendError> {
        self.services().remove(&address);
        let peer_of = |peers: Vec<tunnel::server::PeerStatus>| {
            peers.into_iter().find(|peer| peer.public_key == *key)
        };
        let before = peer_of(self.tunnel.peers());
        self.runtime
            .block_on(self.tunnel.remove_address(*key, address));
        // A peer that is gone now takes its counters with it: keep them.
        if let Some(peer) = before
            && peer_of(self.tunnel.peers()).is_none()
        {
            let mut retired = lock(&self.retired_bytes);
            retired.0 += peer.rx_bytes;
            retired.1 += peer.tx_bytes;
        }
        Ok(())
    }

    fn stats(&self) -> BackendStats {
        let peers = self.tunnel.peers();
        let retired = *lock(&self.retired_bytes);
        let mut pull_seconds = std::mem::take(&mut *lock(&self.pulls));
        if let Some(pool) = self.pool.get() {
            let lazy = pool.take_completed();
            pull_seconds.extend(lazy.iter().map(std::time::Duration::as_secs_f64));
        }
        BackendStats {
            tunnel_peers: peers.len(),
            tunnel_rx_bytes: retired.0 + peers.iter().map(|p| p.rx_bytes).sum::<u64>(),
            tunnel_tx_bytes: retired.1 + peers.iter().map(|p| p.tx_bytes).sum::<u64>(),
            image_cache_bytes: tree_size(&self.cache_dir),
            pull_seconds,
        }
    }
}

/// The bytes of the regular files under `dir` (what they occupy is what an
/// operator budgets for; a missing directory is empty).
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) if meta.is_file() => total += meta.len(),
                _ => {}
            }
        }
    }
    total
}

/// Whether a pull failed because its file system is full.
fn is_disk_full(error: &containerdisk::pull::PullError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || io.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()))
        {
            return true;
        }
        cause = current.source();
    }
    false
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
