//! Sinfonia, the edge discovery service olive2022 deploys through.
//!
//! - [`keys`]: the client's WireGuard key pairs and the key cache shared
//!   with the Python `sinfonia-tier3`;
//! - [`deploy`]: the deploy request to tier 1 and strict checking of its
//!   answer;
//! - [`wireguard`]: a deployment's `wg.conf`, wg-quick config,
//!   `resolv.conf` and QR code, as the original renders them;
//! - [`recipe`]: deployment recipes (`RECIPES/<uuid>.yaml`), loaded with a
//!   safe YAML loader and checked against Sinfonia's schema;
//! - [`vmi`]: the values of the olive2022 `vmi` Helm chart, which `convert`
//!   writes and a cloudlet interprets.
//!
//! The protocol is described in `docs/sinfonia.md`.

pub mod deploy;
pub mod keys;
pub mod recipe;
pub mod vmi;
pub mod wireguard;

pub use recipe::{Recipe, RecipeError};
