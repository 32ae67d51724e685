//! VMNetX: the identity and the packages of the Olive Archive.
//!
//! This crate knows everything about a VMNetX virtual machine that does not
//! involve its disk contents:
//!
//! - [`url`]: canonicalising a `vmnetx+https://…` URL exactly as the original
//!   Python tool (yarl) does, and deriving the Sinfonia backend UUID from it;
//! - [`package`]: opening a `.nxpk` package (a ZIP archive), reading its
//!   manifest and locating its members without copying them; writing one
//!   (`package::write`, `package::xml`);
//! - [`bus`]: the disk bus of a libvirt domain and of a recipe (KubeVirt),
//!   and the mapping between them; the recipe's bus is the one every crate
//!   down to the VM runner uses;
//! - [`domain`]: the few facts of the libvirt `domain.xml` that matter to us
//!   (vCPUs, memory, disk bus and format, machine, network);
//! - [`limits`]: the vCPUs and memory one VM may have, the same from
//!   `domain.xml` to the VM runner;
//! - [`reference`](mod@reference): `.netx` reference files that point at a package URL;
//! - [`shown`]: untrusted text (names, URLs, messages) made safe to print;
//! - [`fetch`]: downloading a package over HTTP(S) with resume and timeouts.
//!
//! XML is parsed with `roxmltree`, which never expands entities beyond the
//! predefined ones and rejects DTD entity bombs.
//!
//! URLs, UUIDs and the package format are described in `docs/vmnetx.md`.

pub mod bus;
pub mod domain;
pub mod fetch;
pub mod limits;
pub mod package;
pub mod reference;
pub mod shown;
pub mod url;
