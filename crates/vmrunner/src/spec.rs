//! What to run: [`VmSpec`] and [`Accel`], and the checks a spec passes
//! before anything is started (vCPUs and memory within [`vmnetx::limits`]
//! and the host's memory, a machine type QEMU cannot misread as more
//! options). Kept apart from starting so a spec can be built and checked
//! without touching QEMU.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

use vmnetx::bus::KubevirtBus;
use vmnetx::limits::{check_memory_mib, check_vcpus};

use crate::error::VmError;
use crate::nbd::BlockSource;

/// The base disk a VM starts from; never modified (an overlay takes the
/// guest's writes).
#[derive(Clone)]
pub enum DiskImage {
    /// A qcow2 file (a cached containerDisk), checked in full before QEMU
    /// starts.
    File(PathBuf),
    /// A qcow2 image this process serves, such as a disk still
    /// downloading: QEMU reads it over NBD from a socket in the work
    /// directory, and pauses the guest when a read fails (`rerror=stop`)
    /// until [`RunningVm::resume`](crate::RunningVm::resume).
    Served(Arc<dyn BlockSource>),
}

impl fmt::Debug for DiskImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskImage::File(path) => f.debug_tuple("File").field(path).finish(),
            DiskImage::Served(source) => write!(f, "Served({} bytes)", source.size()),
        }
    }
}

impl PartialEq for DiskImage {
    fn eq(&self, other: &DiskImage) -> bool {
        match (self, other) {
            (DiskImage::File(a), DiskImage::File(b)) => a == b,
            (DiskImage::Served(a), DiskImage::Served(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for DiskImage {}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The base disk.
    pub disk: DiskImage,
    /// vCPUs (within [`vmnetx::limits`]).
    pub vcpus: u32,
    /// Memory in MiB (within [`vmnetx::limits`], and no more than the
    /// host's memory).
    pub memory_mib: u64,
    /// The disk bus, as the recipe names it.
    pub bus: KubevirtBus,
    /// QEMU machine type (`pc`, `q35`, `pc-i440fx-7.2`, …); QEMU's default
    /// (`pc`) when `None`.
    pub machine: Option<String>,
    /// Give the guest a NIC on user-mode NAT (no host forwards).
    pub network: bool,
    /// Where the overlay, pidfile, QMP socket and log go; created (mode
    /// 0700) if missing. One VM per directory.
    pub work_dir: PathBuf,
    /// The accelerator.
    pub accel: Accel,
}

impl VmSpec {
    /// A VM of `disk` in `work_dir`: 1 vCPU, 256 MiB, virtio, no network.
    pub fn new(disk: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> VmSpec {
        VmSpec {
            disk: DiskImage::File(disk.into()),
            vcpus: 1,
            memory_mib: 256,
            bus: KubevirtBus::Virtio,
            machine: None,
            network: false,
            work_dir: work_dir.into(),
            accel: Accel::Auto,
        }
    }
}

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when `/dev/kvm` can be opened, else TCG.
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// Emulation.
    Tcg,
}

impl Accel {
    /// The name QEMU's `-accel` takes (`Auto` resolved).
    pub fn name(self) -> &'static str {
        match self.resolve() {
            Accel::Kvm => "kvm",
            _ => "tcg",
        }
    }

    pub(crate) fn resolve(self) -> Accel {
        match self {
            Accel::Auto if kvm_usable() => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }
}

/// Whether `/dev/kvm` can be opened for reading and writing.
pub fn kvm_usable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Refuses a spec QEMU must not be started with; see the module docs.
pub(crate) fn check_spec(spec: &VmSpec) -> Result<(), VmError> {
    let invalid = |message: String| Err(VmError::InvalidSpec(message));
    check_vcpus(spec.vcpus).map_err(|e| VmError::InvalidSpec(e.to_string()))?;
    check_memory_mib(spec.memory_mib).map_err(|e| VmError::InvalidSpec(e.to_string()))?;
    if let Some(host) = host_memory_mib()
        && spec.memory_mib > host
    {
        return invalid(format!(
            "{} MiB of memory: more than the host's {host} MiB",
            spec.memory_mib
        ));
    }
    if let Some(machine) = &spec.machine {
        let valid = !machine.is_empty()
            && machine.len() <= 64
            && machine
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !valid {
            return invalid(format!("invalid machine type {machine:?}"));
        }
    }
    Ok(())
}

/// The host's memory in MiB (`MemTotal` of `/proc/meminfo`).
fn host_memory_mib() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_specs_are_refused() {
        let base = VmSpec::new("/d", "/w");
        type Change = Box<dyn Fn(&mut VmSpec)>;
        let cases: Vec<(&str, Change)> = vec![
            ("vCPUs", Box::new(|s| s.vcpus = 0)),
            ("vCPUs", Box::new(|s| s.vcpus = 1000)),
            ("memory", Box::new(|s| s.memory_mib = 1)),
            ("memory", Box::new(|s| s.memory_mib = u64::MAX / 2)),
            (
                "machine",
                Box::new(|s| s.machine = Some("pc,accel=xen".into())),
            ),
            ("machine", Box::new(|s| s.machine = Some(String::new()))),
        ];
        for (what, change) in cases {
            let mut spec = base.clone();
            change(&mut spec);
            let error = check_spec(&spec).unwrap_err().to_string();
            assert!(error.contains(what), "{what}: {error}");
        }
        check_spec(&base).unwrap();
        // A bus outside KubeVirt's four cannot even be named in a spec.
        assert_eq!(KubevirtBus::parse("ide"), None);
    }
}
