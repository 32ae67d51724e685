//! The values of the olive2022 `vmi` Helm chart.
//!
//! `convert` writes them into recipes; a cloudlet (KubeVirt through Helm, or
//! the embedded one) reads them back. Field names are the chart's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vmnetx::bus::KubevirtBus;

/// The chart the original olive2022 recipes point at.
pub const ORIGINAL_CHART: &str = "https://cmusatyalab.github.io/olive2022/vmi";
/// The chart version the original olive2022 recipes use.
pub const ORIGINAL_CHART_VERSION: &str = "0.1.4";

/// The VNC service of every deployment: the chart's `virtvnc` side-car,
/// named `<fullname>-vnc` with `fullnameOverride: vmi`. Clients resolve it
/// through the deployment's search domain; cloudlets must answer to it.
pub const VNC_SERVICE: &str = "vmi-vnc";
/// The port of [`VNC_SERVICE`]: plain RFB.
pub const VNC_PORT: u16 = 5900;

/// Values of the `vmi` chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmiValues {
    /// The disk image.
    pub container_disk: ContainerDisk,
    /// What the VM asks of the cloudlet.
    pub resources: Resources,
    /// The VNC side-car; `fullnameOverride: vmi` names the service `vmi-vnc`.
    pub virtvnc: VirtVnc,
    /// Pull credentials for a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_disk_credentials: Option<PullCredentials>,
    /// Machine settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
}

/// Where the containerDisk image is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDisk {
    /// Registry and path, e.g. `registry.example.org/olive2022`.
    pub repository: String,
    /// Image name: the backend UUID.
    pub name: String,
    /// Image tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Manifest digest; when set, the image is pulled by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// KubeVirt disk bus: `virtio`, `sata`, `scsi` or `usb` (anything else
    /// is refused when the values are read).
    pub bus: KubevirtBus,
}

/// Resource requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// The requests.
    pub requests: Requests,
}

/// CPU and memory requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    /// vCPUs.
    pub cpu: u32,
    /// Memory in Kubernetes notation, e.g. `256Mi`.
    pub memory: String,
}

/// The VNC side-car chart's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtVnc {
    /// Base name of its objects.
    pub fullname_override: String,
}

/// Credentials the cloudlet uses to pull a private image.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullCredentials {
    /// Registry host, port included.
    pub registry: String,
    /// User name.
    pub username: String,
    /// Access token or password.
    pub password: String,
}

impl std::fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullCredentials")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Machine settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Give the guest a (NATed) network interface.
    #[serde(default)]
    pub network: bool,
    /// QEMU machine type, e.g. `pc`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
}

impl VmiValues {
    /// Memory in MiB as the chart writes it.
    pub fn memory_request(mib: u64) -> String {
        format!("{mib}Mi")
    }

    /// As a values mapping for a recipe.
    pub fn to_values(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Reads the values of a recipe.
    pub fn from_values(values: &Map<String, Value>) -> Result<VmiValues, serde_json::Error> {
        serde_json::from_value(Value::Object(values.clone()))
    }
}
