//! The two XML documents a package writer produces: the manifest
//! (`vmnetx-package.xml`) and a minimal libvirt `domain.xml`.
//!
//! Both are the inverse of what this crate reads: [`manifest_xml`] of a
//! [`Manifest`] parses back ([`Manifest::parse`]) to the same manifest, and
//! [`DomainSpec::xml`] parses back ([`crate::domain::Domain::parse`]) to
//! the facts it was made from. Every value is XML-escaped.

use std::fmt::Write as _;

use super::{Manifest, NAMESPACE};
use crate::bus::DiskBus;
use crate::domain::DiskFormat;

/// The manifest document for `manifest`.
pub fn manifest_xml(manifest: &Manifest) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <image xmlns=\"{NAMESPACE}\" name=\"{}\">\n  \
         <domain path=\"{}\"/>\n  <disk path=\"{}\"/>\n",
        escape(&manifest.name),
        escape(&manifest.domain_path),
        escape(&manifest.disk_path),
    );
    if let Some(memory) = &manifest.memory_path {
        // Writing to a String cannot fail.
        let _ = writeln!(xml, "  <memory path=\"{}\"/>", escape(memory));
    }
    xml.push_str("</image>\n");
    xml
}

/// The facts of a VM a minimal `domain.xml` states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// The libvirt domain name.
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Guest architecture (`i686` for the archive's PCs).
    pub arch: String,
    /// Machine type (`pc`, `pc-1.0`, …).
    pub machine: String,
    /// The disk image's format.
    pub disk_format: DiskFormat,
    /// The bus the disk is on.
    pub disk_bus: DiskBus,
    /// Whether the VM has a (user-mode) network interface.
    pub network: bool,
}

impl DomainSpec {
    /// The `domain.xml` document: the disk at `/disk.img` on its bus, a
    /// VNC display, and a user-mode interface when asked.
    pub fn xml(&self) -> String {
        let interface = if self.network {
            "    <interface type=\"user\"/>\n"
        } else {
            ""
        };
        format!(
            "<domain type=\"kvm\">\n  \
             <name>{name}</name>\n  \
             <memory unit=\"MiB\">{memory}</memory>\n  \
             <vcpu>{vcpus}</vcpu>\n  \
             <os><type arch=\"{arch}\" machine=\"{machine}\">hvm</type></os>\n  \
             <devices>\n    \
             <disk type=\"file\" device=\"disk\">\n      \
             <driver name=\"qemu\" type=\"{format}\"/>\n      \
             <source file=\"/disk.img\"/>\n      \
             <target dev=\"{dev}\" bus=\"{bus}\"/>\n    \
             </disk>\n\
             {interface}    \
             <graphics type=\"vnc\"/>\n  \
             </devices>\n\
             </domain>\n",
            name = escape(&self.name),
            memory = self.memory_mib,
            vcpus = self.vcpus,
            arch = escape(&self.arch),
            machine = escape(&self.machine),
            format = self.disk_format.libvirt(),
            dev = target_dev(self.disk_bus),
            bus = self.disk_bus.libvirt(),
        )
    }
}

/// The first disk's device name as libvirt names it on `bus`.
fn target_dev(bus: DiskBus) -> &'static str {
    match bus {
        DiskBus::Ide => "hda",
        DiskBus::Virtio => "vda",
        DiskBus::Sata | DiskBus::Scsi | DiskBus::Usb => "sda",
    }
}

/// `text` safe inside an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // In an attribute a raw newline, CR or tab would be normalised
            // to a space by every reader: character references keep them.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::Domain;

    #[test]
    fn a_manifest_parses_back_to_itself() {
        for memory_path in [None, Some("memory.img".to_owned())] {
            let manifest = Manifest {
                name: "Tom & Jerry's <\"VM\">".to_owned(),
                domain_path: "domain.xml".to_owned(),
                disk_path: "disks/disk.img".to_owned(),
                memory_path,
            };
            assert_eq!(Manifest::parse(&manifest_xml(&manifest)).unwrap(), manifest);
        }
    }

    #[test]
    fn a_domain_parses_back_to_its_facts() {
        for (disk_bus, disk_format, network) in [
            (DiskBus::Ide, DiskFormat::Qcow2, false),
            (DiskBus::Virtio, DiskFormat::Raw, true),
            (DiskBus::Usb, DiskFormat::Qcow2, true),
        ] {
            let spec = DomainSpec {
                name: "a<b".to_owned(),
                vcpus: 3,
                memory_mib: 96,
                arch: "i686".to_owned(),
                machine: "pc-1.0".to_owned(),
                disk_format,
                disk_bus,
                network,
            };
            let domain = Domain::parse(&spec.xml()).unwrap();
            assert_eq!(
                domain,
                Domain {
                    vcpus: 3,
                    memory_bytes: 96 << 20,
                    disk_bus,
                    disk_format: Some(disk_format),
                    arch: Some("i686".to_owned()),
                    machine: Some("pc-1.0".to_owned()),
                    has_network: network,
                }
            );
        }
    }
}
