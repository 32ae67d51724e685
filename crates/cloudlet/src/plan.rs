//! What `olive2022 cloudlet --dry-run` would serve, as a record:
//! `--dry-run --json` prints it (`--print-config` is the settings file,
//! TOML, and separate).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::standalone::LocalCloudletConfig;

/// The addresses and directories a cloudlet would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudletPlan {
    /// Where the Sinfonia API (tier 1 and tier 2) would listen.
    pub api: SocketAddr,
    /// The recipe directory (`<uuid>.yaml`).
    pub recipes: PathBuf,
    /// The WireGuard endpoint's UDP address.
    pub wireguard: SocketAddr,
    /// The endpoint clients would be told to use.
    pub public_endpoint: String,
    /// Where the key and the VMs would be kept.
    pub data_dir: PathBuf,
    /// Where the pulled disk images would be kept.
    pub cache_dir: PathBuf,
    /// The tier 1s it would report to every 15 s.
    pub report_to: Vec<String>,
    /// The mDNS name it would announce (`--zeroconf`), if any.
    pub zeroconf: Option<String>,
}

impl CloudletPlan {
    /// The plan of a cloudlet started with `config`.
    pub fn new(config: &LocalCloudletConfig) -> CloudletPlan {
        CloudletPlan {
            api: config.listen,
            recipes: config.recipes_dir.clone(),
            wireguard: config.wg_listen,
            public_endpoint: config.public_endpoint(),
            data_dir: config.data_dir.clone(),
            cache_dir: config.cache_dir.clone(),
            report_to: config.reporting.tier1_urls.clone(),
            zeroconf: config.zeroconf.then(sinfonia::zeroconf::instance_full_name),
        }
    }
}
