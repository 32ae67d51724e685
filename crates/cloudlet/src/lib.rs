//! The embedded cloudlet: Sinfonia's tier 1 and tier 2 in one process, on
//! one machine.
//!
//! `olive2022 cloudlet` serves the Sinfonia API with the exact JSON shapes
//! of `../shared/spec/sinfonia.md`, so the same recipes and clients work
//! against it and against real Sinfonia + Kubernetes + KubeVirt. This crate
//! is the machine-independent part:
//!
//! - [`api`]: the wire types only a server speaks (cloudlet info, public
//!   recipes); the deploy answer and the problem+json body are shared with
//!   every client, in [`sinfonia::deployment`] and [`sinfonia::problem`];
//! - [`spec`]: path parameters, `RECIPES/<uuid>.yaml` and the checks of
//!   their `vmi` values;
//! - [`state`]: the deployment registry and lifecycle (one deployment per
//!   backend UUID and client key, leases, `max_vms`, client addresses);
//! - [`backend`]: the [`Backend`] trait the registry drives to start and
//!   stop VMs and to add and remove tunnel peers (QEMU and the user-space
//!   WireGuard endpoint implement it elsewhere);
//! - [`config`]: the settings, [`CloudletConfig`];
//! - [`server`]: the axum router, [`Cloudlet`] and [`serve`].

pub mod api;
pub mod backend;
pub mod config;
pub mod local;
pub mod names;
pub mod server;
pub mod spec;
pub mod state;

pub use backend::{Backend, BackendError};
pub use config::CloudletConfig;
pub use server::{ApiError, Cloudlet, ServeError, serve};
pub use spec::{DeploymentSpec, VmSettings};
pub use state::{Deployment, Registry};
