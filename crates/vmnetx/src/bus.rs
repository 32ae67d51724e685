//! Disk buses: the one a package's libvirt domain names, and the one a
//! recipe (KubeVirt's `disk.bus`) names, with the mapping between them.
//!
//! A package's disk bus travels a long way: `domain.xml` ([`DiskBus`]) →
//! `convert` writes the recipe's `values.containerDisk.bus`
//! ([`KubevirtBus`], the `vmi` chart's field, in `sinfonia::vmi`) → a
//! cloudlet reads it back → the VM runner attaches the disk with it. The
//! recipe's bus is that one enum all the way, so every crate accepts and
//! spells the same four names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The bus a disk is attached to, as named in `target/@bus` of libvirt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskBus {
    /// IDE (`ide`); libvirt's default for `hd*` targets on x86.
    Ide,
    /// SATA (`sata`).
    Sata,
    /// Paravirtualised virtio-blk (`virtio`).
    Virtio,
    /// SCSI (`scsi`).
    Scsi,
    /// USB mass storage (`usb`).
    Usb,
}

impl DiskBus {
    /// Parses a libvirt bus name (`ide`, `sata`, `virtio`, `scsi`, `usb`).
    pub fn from_libvirt(name: &str) -> Option<DiskBus> {
        match name {
            "ide" => Some(DiskBus::Ide),
            "sata" => Some(DiskBus::Sata),
            "virtio" => Some(DiskBus::Virtio),
            "scsi" => Some(DiskBus::Scsi),
            "usb" => Some(DiskBus::Usb),
            _ => None,
        }
    }

    /// The libvirt name of this bus.
    pub fn libvirt(&self) -> &'static str {
        match self {
            DiskBus::Ide => "ide",
            DiskBus::Sata => "sata",
            DiskBus::Virtio => "virtio",
            DiskBus::Scsi => "scsi",
            DiskBus::Usb => "usb",
        }
    }

    /// The KubeVirt disk bus to use for this bus.
    ///
    /// KubeVirt offers `virtio`, `sata`, `scsi` and `usb` but no IDE: an IDE
    /// disk becomes `sata`, which guests of the IDE era handle through AHCI's
    /// legacy mode or their own drivers far more often than virtio.
    pub fn kubevirt(&self) -> KubevirtBus {
        match self {
            DiskBus::Ide | DiskBus::Sata => KubevirtBus::Sata,
            DiskBus::Virtio => KubevirtBus::Virtio,
            DiskBus::Scsi => KubevirtBus::Scsi,
            DiskBus::Usb => KubevirtBus::Usb,
        }
    }
}

impl fmt::Display for DiskBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.libvirt())
    }
}

/// A recipe's disk bus: KubeVirt's `disk.bus`, written in lower case
/// (`virtio`, `sata`, `scsi`, `usb`) in recipes and accepted by the VM
/// runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubevirtBus {
    /// Paravirtualised virtio-blk.
    Virtio,
    /// SATA (AHCI).
    Sata,
    /// SCSI (virtio-scsi).
    Scsi,
    /// USB mass storage.
    Usb,
}

impl KubevirtBus {
    /// Every bus, in the order messages list them.
    pub const ALL: [KubevirtBus; 4] = [
        KubevirtBus::Virtio,
        KubevirtBus::Sata,
        KubevirtBus::Scsi,
        KubevirtBus::Usb,
    ];

    /// Parses a recipe's bus name (exactly, in lower case).
    pub fn parse(name: &str) -> Option<KubevirtBus> {
        KubevirtBus::ALL.into_iter().find(|bus| bus.name() == name)
    }

    /// The recipe's name of the bus.
    pub fn name(self) -> &'static str {
        match self {
            KubevirtBus::Virtio => "virtio",
            KubevirtBus::Sata => "sata",
            KubevirtBus::Scsi => "scsi",
            KubevirtBus::Usb => "usb",
        }
    }
}

impl fmt::Display for KubevirtBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bus compares equal to its recipe name (`bus == "sata"`).
impl PartialEq<&str> for KubevirtBus {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}
