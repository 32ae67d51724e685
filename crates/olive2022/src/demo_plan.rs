//! What `olive2022 demo --dry-run` would do, as a record: `--json` prints
//! it. The demo lives in this binary alone, so its plan does too; the
//! tests read the JSON into this very type by including this file
//! (`#[path]`), which is why it needs nothing but `std` and `serde`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The demo a run would build, serve and show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoPlan {
    /// The work directory, kept afterwards; `null` for a temporary one,
    /// removed at the end.
    pub work_dir: Option<PathBuf>,
    /// The demo VM's (made-up) VMNetX URL.
    pub url: String,
    /// Its Sinfonia UUID, which names the recipe and the deployment.
    pub uuid: String,
    /// The VM's name in its package.
    pub name: String,
    /// How QEMU would run the VM: `auto`, `kvm` or `tcg`.
    pub accel: String,
    /// How the VM's screen would be shown.
    pub show: DemoShow,
    /// Whether the cloudlet, the VM and the tunnel would keep running
    /// until Ctrl-C.
    pub keep_running: bool,
}

/// Where the demo VM's screen goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "with", rename_all = "snake_case")]
pub enum DemoShow {
    /// A VNC viewer on the display.
    Viewer {
        /// The viewer's program.
        program: PathBuf,
    },
    /// noVNC in the web browser, until the page is closed.
    Browser,
    /// A PNG screenshot (no display, or `--headless`).
    Screenshot {
        /// Where the PNG would be saved.
        path: PathBuf,
    },
}
