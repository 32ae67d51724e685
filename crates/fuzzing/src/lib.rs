//! The bodies of the fuzz targets, as plain functions of the input bytes.
//!
//! Each function feeds one parser of untrusted input and returns normally
//! whatever the bytes are; a panic is a bug (in the parser, or in a property
//! the function asserts). The `cargo fuzz` targets under `fuzz/` are
//! one-line calls of these functions, and this crate's stable test
//! (`tests/corpus.rs`) runs every seed under `fuzz/seeds/<target>/` and every
//! saved crash under `fuzz/regressions/<target>/` through the same
//! functions, so a crash found once stays fixed without a nightly compiler.
//!
//! Every input is read from memory, and every size the input announces is
//! capped here (or by the library) so that one run does bounded work.
//!
//! The targets, by the name of their `cargo fuzz` binary ([`TARGETS`]):
//!
//! - [`package()`]: a VMNetX package (a ZIP file) and its manifest;
//! - [`domain_xml()`]: a libvirt `domain.xml`;
//! - [`qcow2()`]: a qcow2 image, read to the end through a conversion;
//! - [`url()`]: a VMNetX URL, whose canonical form must be a fixed point;
//! - [`recipe()`]: a Sinfonia recipe, which must survive writing it back;
//! - [`deployment()`]: tier 1's answer to a deploy request;
//! - [`dns()`]: a DNS query to the tunnel server's responder;
//! - [`rfb()`]: a VNC server's side of a session, handshake to updates.
//!
//! How to run them is in `docs/fuzzing.md`.

mod deployment;
mod dns;
mod domain_xml;
mod package;
mod qcow2;
mod recipe;
mod rfb_client;
mod url;

pub use deployment::deployment;
pub use dns::dns;
pub use domain_xml::domain_xml;
pub use package::package;
pub use qcow2::qcow2;
pub use recipe::recipe;
pub use rfb_client::rfb;
pub use url::url;

/// A fuzz target's body: takes any bytes, returns or panics.
pub type Target = fn(&[u8]);

/// Every target by name: the name is that of its `cargo fuzz` binary and
/// of its directories under `fuzz/seeds/` and `fuzz/regressions/`.
pub const TARGETS: [(&str, Target); 8] = [
    ("package", package),
    ("domain_xml", domain_xml),
    ("qcow2", qcow2),
    ("url", url),
    ("recipe", recipe),
    ("deployment", deployment),
    ("dns", dns),
    ("rfb", rfb),
];
