//! Sinfonia, the edge discovery service olive2022 deploys through.
//!
//! - [`recipe`]: deployment recipes (`RECIPES/<uuid>.yaml`), loaded with a
//!   safe YAML loader and checked against Sinfonia's schema;
//! - [`vmi`]: the values of the olive2022 `vmi` Helm chart, which `convert`
//!   writes and a cloudlet interprets.

pub mod recipe;
pub mod vmi;

pub use recipe::{Recipe, RecipeError};
