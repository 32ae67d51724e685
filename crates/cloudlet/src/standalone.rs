//! The whole single-machine cloudlet in one call: its WireGuard endpoint,
//! the QEMU backend and the Sinfonia API, wired together.
//!
//! [`LocalCloudlet::start`] loads (or creates) the cloudlet's key in its
//! data directory, starts the user-space tunnel server at Sinfonia's tier-2
//! address and keep-alive ([`sinfonia::tier2`]), builds the
//! [`LocalBackend`] on it, binds the API and lets tunnel traffic extend
//! leases. [`LocalCloudlet::run`] serves, reporting to the tier 1s of its
//! [`Federation`] settings ([`crate::reporter`]) under the UUID kept in the
//! data directory, until told to stop; then says goodbye to them, releases
//! every deployment and shuts the tunnel down. With `zeroconf` the API is
//! announced on the local network from start until a stop is asked for. A
//! front end only has to fill in a [`LocalCloudletConfig`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use containerdisk::lazy::LazyMode;
use sinfonia::tier2::{SERVER_KEEPALIVE_SECS, TUNNEL_ADDRESS};
use tunnel::server::{ServerConfig, TunnelServer};
use vmrunner::Accel;

use uuid::Uuid;

use crate::api::CloudletInfo;
use crate::config::CloudletConfig;
use crate::data_dir::{
    CLOUDLET_ID_FILE, DataDirError, KEY_FILE, load_or_create_key, load_or_create_uuid,
};
use crate::federation::FederationConfig;
use crate::local::LocalBackend;
use crate::reporter::{Federation, FreeSlots, Reporter, ReporterConfig};
use crate::server::{Cloudlet, ServeError};
use crate::zeroconf::{AnnounceError, Announcement};

/// What the single-machine cloudlet needs to start.
#[derive(Debug, Clone)]
pub struct LocalCloudletConfig {
    /// The recipe directory (`<uuid>.yaml`).
    pub recipes_dir: PathBuf,
    /// Where the Sinfonia API listens.
    pub listen: SocketAddr,
    /// The WireGuard endpoint's UDP address.
    pub wg_listen: SocketAddr,
    /// The endpoint clients are told to use; `127.0.0.1` and the port of
    /// `wg_listen` when `None`.
    pub public_endpoint: Option<String>,
    /// Where the key and the VMs are kept (created if missing).
    pub data_dir: PathBuf,
    /// Where the pulled disk images are kept (created if missing).
    pub cache_dir: PathBuf,
    /// How QEMU runs the VMs.
    pub accel: Accel,
    /// Most VMs running at once.
    pub max_vms: usize,
    /// Deploy requests a minute per client address; 0 for no limit.
    pub deploy_rate: u32,
    /// Most bytes the image cache may hold; 0 for no limit.
    pub cache_max_bytes: u64,
    /// When VMs start before their disk is downloaded.
    pub lazy_pull: LazyMode,
    /// In `auto`, the smallest image (bytes) started before its download.
    pub lazy_threshold: u64,
    /// A VM without traffic this long is stopped.
    pub idle_timeout: Duration,
    /// PEM file of CA certificates trusted for registries, besides the
    /// system's.
    pub registry_ca: Option<PathBuf>,
    /// As tier 2: the tier 1s it reports to and what it tells them.
    pub reporting: Federation,
    /// As tier 1: the token reporting cloudlets present and the forward
    /// timeout.
    pub federation: FederationConfig,
    /// Announce the API on the local network over mDNS
    /// ([`crate::zeroconf`]).
    pub zeroconf: bool,
}

impl LocalCloudletConfig {
    /// The endpoint clients are told to use, as configured (with port 0,
    /// the started cloudlet's [`LocalCloudlet::public_endpoint`] has the
    /// port actually bound).
    pub fn public_endpoint(&self) -> String {
        self.public_endpoint
            .clone()
            .unwrap_or_else(|| loopback_endpoint(self.wg_listen.port()))
    }
}

/// The default endpoint: the WireGuard port on loopback.
fn loopback_endpoint(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Why the cloudlet did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data or cache directory cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key cannot be read or written.
    #[error(transparent)]
    Key(#[from] DataDirError),
    /// The WireGuard endpoint did not start.
    #[error("cannot start the WireGuard endpoint: {0}")]
    Tunnel(#[from] tunnel::TunnelError),
    /// The API did not start, or failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// `zeroconf` is set and the announcement failed.
    #[error(transparent)]
    Announce(#[from] AnnounceError),
}

/// A started single-machine cloudlet; [`LocalCloudlet::run`] serves it.
pub struct LocalCloudlet {
    cloudlet: Cloudlet<LocalBackend>,
    tunnel: TunnelServer,
    public_endpoint: String,
    reporting: ReporterConfig,
    free_slots: FreeSlots,
    announcement: Option<Announcement>,
}

impl LocalCloudlet {
    /// Starts the tunnel server, the backend and the API (bound, not yet
    /// serving). Must be called inside a multi-threaded Tokio runtime.
    pub async fn start(config: LocalCloudletConfig) -> Result<LocalCloudlet, StartError> {
        let data_dir = &config.data_dir;
        // Both created here, so that an error names the one that failed.
        for dir in [data_dir, &config.cache_dir] {
            std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        let key = load_or_create_key(&data_dir.join(KEY_FILE))?;
        let uuid = load_or_create_uuid(&data_dir.join(CLOUDLET_ID_FILE))?;
        let tunnel = TunnelServer::start(ServerConfig {
            private_key: key,
            listen: config.wg_listen,
            address: TUNNEL_ADDRESS,
            mtu: tunnel::DEFAULT_MTU,
            keepalive: Some(SERVER_KEEPALIVE_SECS),
        })
        .await?;
        let handle = tunnel.handle();
        let backend = LocalBackend::new(data_dir, &config.cache_dir, handle.clone(), config.accel)
            .map_err(|source| StartError::DataDir {
                path: data_dir.clone(),
                source,
            })?
            .with_cache_limit(config.cache_max_bytes)
            .with_registry_ca(config.registry_ca.clone())
            .with_lazy_pull(config.lazy_pull, config.lazy_threshold);
        let public_endpoint = config
            .public_endpoint
            .clone()
            .unwrap_or_else(|| loopback_endpoint(handle.local_addr().port()));
        let mut api = CloudletConfig::new(
            &config.recipes_dir,
            public_endpoint.clone(),
            handle.public_key(),
        );
        api.listen = config.listen;
        api.max_vms = config.max_vms;
        api.deploy_rate = config.deploy_rate;
        api.idle_timeout = config.idle_timeout;
        with_federation(&mut api, uuid, &config.reporting);
        api.federation = config.federation.clone();
        let cloudlet = match Cloudlet::bind(api, backend).await {
            Ok(cloudlet) => cloudlet,
            Err(e) => {
                tunnel.shutdown().await;
                return Err(e.into());
            }
        };
        let announcement = if config.zeroconf {
            match Announcement::start(cloudlet.local_addr()) {
                Ok(announcement) => Some(announcement),
                Err(e) => {
                    tunnel.shutdown().await;
                    return Err(e.into());
                }
            }
        } else {
            None
        };
        let registry = cloudlet.registry();
        let slots = cloudlet.registry();
        handle.on_activity(move |address| {
            registry.touch(address);
        });
        let max_vms = config.max_vms;
        let reporting = ReporterConfig {
            tier1_urls: config.reporting.tier1_urls.clone(),
            token: config.reporting.cloudlet_token.clone(),
            identity: identity(cloudlet.config(), cloudlet.local_addr()),
        };
        Ok(LocalCloudlet {
            cloudlet,
            tunnel,
            public_endpoint,
            reporting,
            free_slots: Arc::new(move || max_vms.saturating_sub(slots.active())),
            announcement,
        })
    }

    /// The cloudlet's UUID, as reported to tier 1 (kept in the data
    /// directory).
    pub fn uuid(&self) -> Uuid {
        self.cloudlet.config().uuid
    }

    /// The deploy endpoint tier 1 is told (`<public URL>/api/v1/deploy`).
    pub fn deploy_endpoint(&self) -> &str {
        &self.reporting.identity.endpoint
    }

    /// The API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.cloudlet.local_addr()
    }

    /// The WireGuard endpoint's UDP address.
    pub fn wireguard_addr(&self) -> SocketAddr {
        self.tunnel.local_addr()
    }

    /// The endpoint clients are told to use.
    pub fn public_endpoint(&self) -> &str {
        &self.public_endpoint
    }

    /// Serves until `shutdown` completes; then withdraws the mDNS
    /// announcement at once (no longer offered once it takes no deploys),
    /// releases every deployment (peers removed, VMs stopped) and stops the
    /// tunnel.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let reporter = Reporter::spawn(self.reporting, self.free_slots);
        // Tier 1 hears of the stop before the VMs go, so it sends no more
        // clients here.
        let announcement = self.announcement;
        let shutdown = async move {
            shutdown.await;
            if let Some(announcement) = announcement {
                // Waits (briefly) for the mDNS goodbye to go out.
                let _ = tokio::task::spawn_blocking(move || announcement.withdraw()).await;
            }
            reporter.goodbye().await;
        };
        let served = self.cloudlet.run(shutdown).await;
        self.tunnel.shutdown().await;
        Ok(served?)
    }
}

/// The API settings with the federation's: identity, public URL,
/// locations and client networks (accepted: `0.0.0.0/0` unless given).
fn with_federation(api: &mut CloudletConfig, uuid: Uuid, federation: &Federation) {
    api.uuid = uuid;
    api.name = hostname();
    api.api_url = federation.public_url.clone();
    api.locations = federation.locations.clone();
    api.local_networks = federation.local_networks.clone();
    if !federation.accepted_clients.is_empty() {
        api.accepted_clients = federation.accepted_clients.clone();
    }
    api.rejected_clients = federation.rejected_clients.clone();
}

/// What every report says besides the load: the API settings' identity,
/// the deploy endpoint under the public URL (else `http://` and the
/// address bound; the host name for a wildcard address).
fn identity(api: &CloudletConfig, bound: SocketAddr) -> CloudletInfo {
    let base = match &api.api_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => {
            let host = api.name.clone().unwrap_or_else(|| "localhost".into());
            format!("http://{host}:{}", bound.port())
        }
        None => format!("http://{bound}"),
    };
    CloudletInfo {
        uuid: Some(api.uuid),
        name: api.name.clone(),
        endpoint: format!("{base}/api/v1/deploy"),
        resources: Default::default(),
        locations: api.locations.clone(),
        local_networks: api.local_networks.clone(),
        accepted_clients: api.accepted_clients.clone(),
        rejected_clients: api.rejected_clients.clone(),
        last_update: None,
    }
}

/// This machine's name, for logs on tier 1.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
