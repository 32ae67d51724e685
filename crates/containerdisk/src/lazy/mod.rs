//! Lazy pulls: a VM starts from a containerDisk whose layer is still
//! downloading, reading its disk through a local range cache.
//!
//! A containerDisk layer is an uncompressed tar whose disk file sits at an
//! offset the tar headers give. [`LazyPool::start`] resolves the image as
//! a full pull does (`pull`), reads just the layer's headers to find where
//! the disk lies, and hands back a [`LazyDisk`]: a read-only view of those
//! bytes whose reads block until the bytes are present. Meanwhile:
//!
//! - the layer is copied into a sparse file in the cache's temporary
//!   directory, with a map of the ranges present (`blob`); reads of
//!   missing bytes are fetched first, aligned and coalesced; the rest of
//!   the blob comes in large sequential ranged `GET`s at full bandwidth;
//! - the registry client does every request (authentication, a token
//!   refreshed on a 401, redirects, TLS); QEMU never talks to the registry;
//! - once the copy is complete, the layer's sha256 is checked against the
//!   manifest and the disk untarred by the full pull's code (`finish`):
//!   the result is an ordinary cache entry, later VMs start from it with
//!   nothing lazy in the path, and reads of running VMs move to it;
//! - a copy that fails its check is discarded; its [`LazyDisk`] answers
//!   every read with an error from then on (the caller stops its VMs), and
//!   the next [`LazyPool::start`] of the image says why once;
//! - two VMs of one image share one [`LazyDisk`]: one download, one copy.
//!   Images download in parallel, each on its own connections, which TCP
//!   shares fairly.
//!
//! Layouts (`oci:`), cached disks, gzip layers, sparse tar entries and,
//! in [`LazyMode::Auto`], images below [`LazyOptions::threshold`] take the
//! full pull: there is nothing to gain, or no way to read in place.
//!
//! The rooms: `ranges` (the map of present bytes), `blob` (the sparse copy
//! and its fetchers), `locate` (the disk's place from the tar headers),
//! `finish` (verification and the cache entry), `disk` ([`LazyDisk`]),
//! `pool` ([`LazyPool`]).

mod blob;
mod disk;
mod finish;
mod locate;
mod pool;
mod ranges;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use self::disk::{LazyDisk, LazyProgress, LazyState};
pub use self::pool::{LazyPool, Started};

/// When a cloudlet starts VMs before their disk is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LazyMode {
    /// For registry images of at least [`LazyOptions::threshold`] bytes.
    #[default]
    Auto,
    /// For every registry image.
    Always,
    /// Never: the disk is downloaded and verified before QEMU starts.
    Never,
}

impl LazyMode {
    /// The names, as flags and configuration files spell them.
    pub const NAMES: [&'static str; 3] = ["auto", "always", "never"];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            LazyMode::Auto => "auto",
            LazyMode::Always => "always",
            LazyMode::Never => "never",
        }
    }
}

impl fmt::Display for LazyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LazyMode {
    type Err = String;

    fn from_str(text: &str) -> Result<LazyMode, String> {
        match text {
            "auto" => Ok(LazyMode::Auto),
            "always" => Ok(LazyMode::Always),
            "never" => Ok(LazyMode::Never),
            other => Err(format!(
                "{other:?} is not a lazy-pull mode (expected one of {})",
                LazyMode::NAMES.join(", ")
            )),
        }
    }
}

/// How lazy pulls fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazyOptions {
    /// In [`LazyMode::Auto`], the smallest layer pulled lazily.
    pub threshold: u64,
    /// A read's missing bytes are fetched in whole granules (aligned).
    pub granule: u64,
    /// The size of one background `GET`.
    pub chunk: u64,
    /// How long a VM's read waits for missing bytes before it fails (the
    /// VM is then paused by QEMU's `rerror=stop` until data flows again).
    pub read_timeout: Duration,
    /// How long a deploy waits for the layer's headers before it fails.
    pub start_timeout: Duration,
}

impl Default for LazyOptions {
    fn default() -> Self {
        LazyOptions {
            threshold: DEFAULT_THRESHOLD,
            granule: 1 << 20,
            chunk: 64 << 20,
            read_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// [`LazyOptions::threshold`] by default: 256 MiB, about 20 s at 100 Mbit/s.
pub const DEFAULT_THRESHOLD: u64 = 256 << 20;

#[cfg(test)]
mod tests {
    use super::LazyMode;

    #[test]
    fn modes_parse_and_print() {
        for name in LazyMode::NAMES {
            let mode: LazyMode = name.parse().unwrap_or_default();
            assert_eq!(mode.to_string(), name);
        }
        assert!("sometimes".parse::<LazyMode>().is_err());
    }
}
