//! What `launch` and `stage2` would do (`--dry-run`), as records:
//! `olive2022 launch --dry-run --json` and `olive2022 stage2 --dry-run
//! --json` print them.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sinfonia::deploy::Tier1;
use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};
use uuid::Uuid;

use crate::viewer::Viewer;

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

/// What `stage2` would wait for, and the viewer it would then run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage2Plan {
    /// The VM's VNC service, `vmi-vnc:5900`, found with the system
    /// resolver.
    pub vnc: String,
    /// The viewer's program.
    pub viewer: PathBuf,
    /// The viewer's command line, program first (each word its own
    /// argument, never a shell string).
    pub command: Vec<String>,
}

impl Stage2Plan {
    /// The plan to wait for the VNC service, then run `viewer` on it.
    pub fn new(viewer: &Viewer) -> Stage2Plan {
        let program = viewer.program();
        let words = std::iter::once(program.as_os_str().to_owned())
            .chain(viewer.args(VNC_SERVICE, VNC_PORT));
        Stage2Plan {
            vnc: format!("{VNC_SERVICE}:{VNC_PORT}"),
            viewer: program.to_owned(),
            command: words
                .map(|word| word.to_string_lossy().into_owned())
                .collect(),
        }
    }
}

/// The sentence `stage2 --dry-run` prints without `--json`.
impl fmt::Display for Stage2Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Would wait for {}, then run {}",
            self.vnc,
            self.command.join(" ")
        )
    }
}
