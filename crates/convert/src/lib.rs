//! The archive operator's pipelines, as library calls with typed results:
//!
//! - [`extract()`]: a VMNetX package (file, `.netx` reference or URL) to a
//!   compressed qcow2 image that appears only once complete;
//! - [`convert()`]: the same package to a containerDisk image in a registry
//!   or an OCI layout, plus the Sinfonia recipe that deploys it.
//!
//! The disk is compressed once into a single temporary qcow2, hashed as a
//! tar layer without copying, and uploaded from that same file; the recipe
//! is written only after the push succeeded, atomically. What the formats
//! are is in `docs/vmnetx.md`, `docs/qcow2.md` and `docs/containerdisk.md`;
//! the original's defects these pipelines fix are in
//! `docs/original-defects.md`.
//!
//! Nothing here prints: progress, status lines and the one question (a VM
//! without a name) go through the caller's [`Observer`].
//!
//! The room: [`observer`] (what the caller sees), [`source`] (SOURCE to a
//! local package), [`vm`] (the package opened, its disk compressed),
//! [`extract`](mod@extract), [`job`] (what to convert and where),
//! [`push`] (image to registry or layout), [`recipe`] (the recipe written),
//! [`pipeline`] (convert, start to end), [`outcome`] (one job's result as a
//! flat record, the `--json` line), [`error`].

pub mod error;
pub mod extract;
pub mod job;
pub mod observer;
pub mod outcome;
pub mod pipeline;
pub mod push;
pub mod recipe;
pub mod source;
pub mod vm;

pub use error::ConvertError;
pub use extract::{ExtractPlan, ExtractReport, ExtractSettings, extract};
pub use job::{ConvertJob, ConvertSettings, Destination, Plan, read_batch};
pub use observer::{Observer, Phase, PhaseProgress};
pub use outcome::JobOutcome;
pub use pipeline::{ConvertReport, convert};
