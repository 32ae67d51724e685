//! What every long transfer shares, whichever protocol it speaks: the
//! progress it reports ([`Progress`]), when it tries again ([`Retries`]),
//! and, for HTTP downloads, one resumable ranged GET ([`ranged`]).
//!
//! The VMNetX package download (`vmnetx::fetch`) and the registry client's
//! blob and manifest transfers (`containerdisk::registry`) both report to a
//! [`Progress`] and retry by one policy: a failure worth another attempt is
//! followed by a pause that doubles from a first one up to a ceiling, and
//! the transfer gives up after a number of failures in a row; a transfer
//! that made progress since its last failure starts counting again, so a
//! long one over a flaky link still completes.
//!
//! Both downloads (a package into a file, a blob into a hashing stream) go
//! through [`ranged::RangedGet`]: the `Range`/`If-Range` resume, the checks
//! of `200` against `206` and of `Content-Range`, the size checks in both
//! directions, the idle timeout, cancellation and progress live there once;
//! the caller only says how to send the request and what a failure means
//! to its users ([`ranged::Origin`]).
//!
//! The room:
//!
//! - `progress`: [`Progress`], [`NoProgress`];
//! - `retry`: [`Retries`], [`Backoff`];
//! - [`ranged`]: the resumable ranged GET and its [`ranged::RangedError`].
//!
//! This crate sits left of every other one; it depends only on the HTTP
//! client (`reqwest`, blocking) and `thiserror`.

mod progress;
pub mod ranged;
mod retry;

pub use progress::{NoProgress, Progress};
pub use retry::{Backoff, Retries};
