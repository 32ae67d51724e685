//! Sinfonia, the edge discovery service olive2022 deploys through.
//!
//! - [`keys`]: the client's WireGuard key pairs and the key cache shared
//!   with the Python `sinfonia-tier3`;
//! - [`deployment`]: the deploy answer on the wire ([`deployment::Deployment`],
//!   its status and tunnel settings), written by cloudlets, read by clients;
//! - [`problem`]: the `application/problem+json` error body of every
//!   endpoint;
//! - [`tier2`]: the tunnel addresses and keep-alive a tier 2 gives its
//!   clients;
//! - [`deploy`]: the deploy request to tier 1 and strict checking of its
//!   answer;
//! - [`wireguard`]: a deployment's `wg.conf`, wg-quick config,
//!   `resolv.conf` and QR code, as the original renders them;
//! - [`recipe`]: deployment recipes (`RECIPES/<uuid>.yaml`), loaded with a
//!   safe YAML loader and checked against Sinfonia's schema;
//! - [`vmi`]: the values of the olive2022 `vmi` Helm chart, which `convert`
//!   writes and a cloudlet interprets;
//! - [`zeroconf`]: the mDNS / DNS-SD record a cloudlet announces on its
//!   local network, and the browse that finds it without a tier 1.
//!
//! The protocol is described in `docs/sinfonia.md`.

pub mod deploy;
pub mod deployment;
pub mod keys;
pub mod problem;
pub mod recipe;
pub mod tier2;
pub mod vmi;
pub mod wireguard;
pub mod zeroconf;

pub use recipe::{Recipe, RecipeError};
