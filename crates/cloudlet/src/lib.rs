//! The embedded cloudlet: Sinfonia's tier 1 and tier 2 in one process, on
//! one machine.
//!
//! `olive2022 cloudlet` serves the Sinfonia API with Sinfonia's exact JSON
//! shapes (`docs/sinfonia.md`), so the same recipes and clients work against it and against
//! real Sinfonia + Kubernetes + KubeVirt:
//!
//! - [`api`]: the wire types only a server speaks (cloudlet info, public
//!   recipes); the deploy answer and the problem+json body are shared with
//!   every client, in [`sinfonia::deployment`] and [`sinfonia::problem`];
//! - [`spec`]: path parameters and the checks of a recipe's `vmi` values;
//! - [`recipes`]: `RECIPES/<uuid>.yaml`, read safely, cached and bounded;
//! - [`state`]: the deployment registry and lifecycle (one deployment per
//!   backend UUID and client key, leases, `max_vms`, client addresses);
//! - [`backend`]: the [`Backend`] trait the registry drives to start and
//!   stop VMs and to add and remove tunnel peers;
//! - [`config`]: the settings, [`CloudletConfig`];
//! - [`federation`]: tier 1: the cloudlets that report here, placement
//!   of a deploy among them (and this one) and forwarding;
//! - [`tier1`]: `olive2022 tier1`, the tier-1 role alone;
//! - [`server`]: the axum router, [`Cloudlet`] and [`serve`];
//! - [`problems`]: [`ApiError`] and every error as problem+json;
//! - [`access_log`]: one log event per request;
//! - [`rate_limit`]: deploy requests per client address (429);
//! - [`metrics`]: `GET /metrics` for Prometheus (`GET /healthz` for
//!   liveness is in [`server`]);
//! - [`listener`]: the socket, each connection's request line checked
//!   before the HTTP library reads it;
//! - [`connections`]: the connections served, every request's headers
//!   within a timeout, graceful on stop;
//! - [`local`]: the single-machine [`Backend`], VMs under QEMU (`vmrunner`)
//!   and clients on the user-space WireGuard server (`tunnel`);
//! - `lazy_vm`: a VM running ahead of its disk's download
//!   (`containerdisk::lazy`): the disk served over NBD, the guest resumed
//!   when the bytes flow again, stopped when the download fails its check;
//! - [`data_dir`]: the data and cache directories and the WireGuard key;
//! - [`reporter`]: reports to Sinfonia tier 1s ([`reporter::Federation`]),
//!   with backoff, bearer token and a goodbye on stop;
//! - [`resources`]: the load reported (CPU, memory, network from `/proc`,
//!   free VM slots);
//! - [`settings`]: the options of `olive2022 cloudlet` from flags,
//!   environment, a TOML file and defaults, [`CloudletSettings`];
//! - [`standalone`]: all of it started in one call,
//!   [`LocalCloudlet::start`], which is what `olive2022 cloudlet` runs;
//! - [`zeroconf`]: `--zeroconf`, the cloudlet announced on its local
//!   network over mDNS as Sinfonia's tier 2 does.
//! - [`plan`]: what it would serve, for `--dry-run` ([`CloudletPlan`]).
//!
//! The tunnel addresses and keep-alive are Sinfonia's tier-2 numbers
//! ([`sinfonia::tier2`]); the VM limits and disk bus come from `vmnetx`.

pub mod access_log;
pub mod api;
pub mod backend;
pub mod config;
pub mod connections;
pub mod data_dir;
pub mod federation;
mod lazy_vm;
pub mod listener;
pub mod local;
pub mod metrics;
pub mod names;
pub mod plan;
pub mod problems;
pub mod rate_limit;
pub mod recipes;
pub mod reporter;
pub mod resources;
pub mod server;
pub mod settings;
pub mod spec;
pub mod standalone;
pub mod state;
pub mod tier1;
pub mod zeroconf;

pub use backend::{Backend, BackendError, BackendStats};
pub use config::CloudletConfig;
pub use plan::CloudletPlan;
pub use problems::ApiError;
pub use server::{Cloudlet, ServeError, serve};
pub use settings::{CloudletSettings, SettingsError};
pub use spec::{DeploymentSpec, VmSettings};
pub use standalone::{LocalCloudlet, LocalCloudletConfig, StartError};
pub use state::{Deployment, Registry};
