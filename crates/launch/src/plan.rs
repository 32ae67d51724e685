//! What `launch` would do (`--dry-run`), as a record: `olive2022 launch
//! --dry-run --json` prints it.

use serde::{Deserialize, Serialize};
use sinfonia::deploy::Tier1;
use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};
use uuid::Uuid;

/// The deployment a launch would ask for, and what it would reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// The canonical VMNetX URL.
    pub url: String,
    /// The VM's Sinfonia UUID, which the deploy request names.
    pub uuid: String,
    /// The tier-1 service's origin (`https://host[:port]`).
    pub tier1: String,
    /// The VM's VNC service inside the tunnel, `vmi-vnc:5900`.
    pub vnc: String,
}

impl LaunchPlan {
    /// The plan to deploy `uuid` (of the VM at `url`) through `tier1`.
    pub fn new(url: &str, uuid: Uuid, tier1: &Tier1) -> LaunchPlan {
        LaunchPlan {
            url: url.to_owned(),
            uuid: uuid.to_string(),
            tier1: tier1.origin(),
            vnc: format!("{VNC_SERVICE}:{VNC_PORT}"),
        }
    }
}
