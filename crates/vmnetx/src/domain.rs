//! The few facts of a libvirt `domain.xml` that conversion needs.
//!
//! A VMNetX package describes its virtual machine with a libvirt domain
//! document. KubeVirt cannot use it directly, and most of it (emulator path,
//! PCI addresses, graphics, …) is irrelevant once the disk is inside a
//! containerDisk. What matters is what the recipe and the Helm chart must
//! reproduce: the number of vCPUs, the amount of memory, the bus and format
//! of the first hard disk, the architecture and machine type, and whether
//! the VM had a network interface.
//!
//! The original Python tool read only `<vcpu>` and `<memory>`, ignored the
//! `unit` attribute of `<memory>` (so `256` MiB became `0Mi`) and always used
//! the `sata` bus. Here every libvirt memory unit is honoured, with the same
//! rules as libvirt's `virScaleInteger`, and the disk bus is mapped to the
//! closest KubeVirt bus.
//!
//! The document comes from an untrusted download, so parsing is strict and
//! bounded: DTDs are refused (no entity expansion, so no "billion laughs"),
//! the number of XML nodes and attributes is limited, and every number is
//! range-checked without overflow. Whether vCPUs and memory are within
//! [`crate::limits`] (the one set of bounds every crate down to the VM
//! runner applies) is a separate question, [`Domain::check_limits`]: a
//! package is still read when they are not, so `convert` can warn.

use std::fmt;

use crate::bus::DiskBus;
use crate::limits::{LimitError, VmSize};
use crate::shown::Shown;

/// The memory of a domain without `<memory>`: 65536 KiB, as in the original.
pub const DEFAULT_MEMORY_BYTES: u64 = 65536 * 1024;

/// The most XML nodes accepted in one document (a real `domain.xml` has a
/// few hundred).
pub(crate) const XML_NODES_LIMIT: u32 = 100_000;
/// Most `=` signs (an upper bound on attributes) in an XML document read;
/// real ones have a few hundred.
pub(crate) const XML_ATTRIBUTES_LIMIT: usize = 10_000;

/// Parses untrusted XML: no DTD (hence no custom entities) and a bounded
/// number of nodes.
pub(crate) fn parse_xml(xml: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    // The parser compares each attribute with the others of its element,
    // so 100,000 attributes on one element cost seconds of CPU. Every
    // attribute has an `=`; counting them first bounds that work.
    if xml.bytes().filter(|b| *b == b'=').count() > XML_ATTRIBUTES_LIMIT {
        return Err(roxmltree::Error::NodesLimitReached);
    }
    roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: XML_NODES_LIMIT,
            ..roxmltree::ParsingOptions::default()
        },
    )
}

/// The format of a disk image, as named in `driver/@type` of libvirt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    /// QEMU copy-on-write v2 (`qcow2`).
    Qcow2,
    /// A raw disk image (`raw`).
    Raw,
}

impl DiskFormat {
    /// Parses a libvirt format name (`qcow2`, `raw`).
    pub fn from_libvirt(name: &str) -> Option<DiskFormat> {
        match name {
            "qcow2" => Some(DiskFormat::Qcow2),
            "raw" => Some(DiskFormat::Raw),
            _ => None,
        }
    }

    /// The libvirt name of this format.
    pub fn libvirt(&self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.libvirt())
    }
}

/// Why a `domain.xml` was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The document is not well-formed XML, has a DTD, or is too big.
    #[error("malformed domain XML: {0}")]
    Xml(roxmltree::Error),
    /// The root element is not `<domain>`.
    #[error("not a libvirt domain: root element is <{}>, expected <domain>", Shown(.0))]
    NotDomain(String),
    /// `<vcpu>` is not a positive whole number that fits in 32 bits.
    #[error("invalid <vcpu> `{}`: expected a whole number from 1 to {}", Shown(.0), u32::MAX)]
    Vcpu(String),
    /// `<memory>` is not a non-negative whole number.
    #[error("invalid <memory> value `{}`: expected a whole number", Shown(.0))]
    MemoryValue(String),
    /// The `unit` of `<memory>` is not a libvirt unit.
    #[error("invalid <memory> unit `{}`", Shown(.0))]
    MemoryUnit(String),
    /// The memory is zero or does not fit in 64 bits of bytes.
    #[error("<memory> of {value} {} is not a size in bytes from 1 to 2^64 - 1", Shown(.unit))]
    MemoryRange {
        /// The number as written.
        value: String,
        /// The unit as written (or `KiB`, the default).
        unit: String,
    },
    /// The disk's `driver/@type` is neither `qcow2` nor `raw`.
    #[error("unsupported disk format `{}` (expected qcow2 or raw)", Shown(.0))]
    DiskFormat(String),
    /// The disk's `target/@bus` is not a bus we can map.
    #[error("unsupported disk bus `{}` (expected ide, sata, virtio, scsi or usb)", Shown(.0))]
    DiskBus(String),
}

/// What conversion needs from a libvirt domain description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Number of virtual CPUs (`/domain/vcpu`, default 1).
    pub vcpus: u32,
    /// Memory in bytes (`/domain/memory` with its `unit`, default 65536 KiB).
    pub memory_bytes: u64,
    /// Bus of the first hard disk (`target/@bus`; default from the target
    /// device name as libvirt does, else IDE); [`DiskBus::kubevirt`] gives
    /// the recipe's.
    pub disk_bus: DiskBus,
    /// Format of the first hard disk (`driver/@type`), if stated.
    pub disk_format: Option<DiskFormat>,
    /// Guest architecture (`/domain/os/type/@arch`), if stated.
    pub arch: Option<String>,
    /// Machine type (`/domain/os/type/@machine`), if stated.
    pub machine: Option<String>,
    /// Whether the domain has any `/domain/devices/interface`.
    pub has_network: bool,
}

impl Domain {
    /// The VM's size, for [`crate::limits`].
    pub fn size(&self) -> VmSize {
        VmSize {
            vcpus: self.vcpus,
            memory_bytes: self.memory_bytes,
        }
    }

    /// Whether a cloudlet will run the VM: its size within
    /// [`crate::limits`]. A package outside them still converts (an
    /// operator may lower the recipe's request), with a warning.
    pub fn check_limits(&self) -> Result<(), LimitError> {
        self.size().check()
    }

    /// Parses a libvirt domain document.
    ///
    /// Absent elements take libvirt's (or the original tool's) defaults:
    /// 1 vCPU, 65536 KiB of memory, an IDE disk of unstated format, no
    /// architecture, no machine type, no network. A domain without any hard
    /// disk gets the same disk defaults: the disk image comes from the
    /// package, not from `domain.xml`.
    pub fn parse(xml: &str) -> Result<Domain, DomainError> {
        let doc = parse_xml(xml).map_err(DomainError::Xml)?;
        let root = doc.root_element();
        if root.tag_name().name() != "domain" || root.tag_name().namespace().is_some() {
            return Err(DomainError::NotDomain(qualified_name(root)));
        }

        let vcpus = match child(root, "vcpu") {
            None => 1,
            Some(node) => parse_vcpus(node.text().unwrap_or(""))?,
        };

        let memory_bytes = match child(root, "memory") {
            None => DEFAULT_MEMORY_BYTES,
            Some(node) => parse_memory(node.text().unwrap_or(""), node.attribute("unit"))?,
        };

        let (arch, machine) = match child(root, "os").and_then(|os| child(os, "type")) {
            None => (None, None),
            Some(ty) => (
                ty.attribute("arch").map(str::to_owned),
                ty.attribute("machine").map(str::to_owned),
            ),
        };

        let devices = child(root, "devices");
        let has_network = devices.is_some_and(|d| children(d, "interface").next().is_some());
        let disk = devices.and_then(|d| {
            children(d, "disk").find(|disk| disk.attribute("device").unwrap_or("disk") == "disk")
        });

        let (disk_bus, disk_format) = match disk {
            None => (DiskBus::Ide, None),
            Some(disk) => {
                let format = match child(disk, "driver").and_then(|d| d.attribute("type")) {
                    None => None,
                    Some(name) => Some(
                        DiskFormat::from_libvirt(name)
                            .ok_or_else(|| DomainError::DiskFormat(name.to_owned()))?,
                    ),
                };
                let target = child(disk, "target");
                let bus = match target.and_then(|t| t.attribute("bus")) {
                    Some(name) => DiskBus::from_libvirt(name)
                        .ok_or_else(|| DomainError::DiskBus(name.to_owned()))?,
                    None => bus_from_target_dev(target.and_then(|t| t.attribute("dev"))),
                };
                (bus, format)
            }
        };

        Ok(Domain {
            vcpus,
            memory_bytes,
            disk_bus,
            disk_format,
            arch,
            machine,
            has_network,
        })
    }

    /// The memory in MiB, rounded up (what a Kubernetes `Mi` request needs).
    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes.div_ceil(1 << 20)
    }
}

/// The element name with its namespace, for error messages.
fn qualified_name(node: roxmltree::Node<'_, '_>) -> String {
    match node.tag_name().namespace() {
        Some(ns) => format!("{{{ns}}}{}", node.tag_name().name()),
        None => node.tag_name().name().to_owned(),
    }
}

/// The child elements of `node` named `name` (in no namespace).
fn children<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children().filter(move |c| {
        c.is_element() && c.tag_name().name() == name && c.tag_name().namespace().is_none()
    })
}

/// The first child element of `node` named `name` (in no namespace).
fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'static str,
) -> Option<roxmltree::Node<'a, 'input>> {
    children(node, name).next()
}

/// The bus libvirt infers from a target device name when `bus` is absent.
fn bus_from_target_dev(dev: Option<&str>) -> DiskBus {
    match dev {
        Some(dev) if dev.starts_with("vd") => DiskBus::Virtio,
        Some(dev) if dev.starts_with("sd") => DiskBus::Scsi,
        _ => DiskBus::Ide,
    }
}

/// Parses a whole number made of ASCII digits only (no sign, no spaces
/// inside), returning `None` on anything else or on overflow.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_vcpus(text: &str) -> Result<u32, DomainError> {
    let text = text.trim();
    parse_digits(text)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| DomainError::Vcpu(text.to_owned()))
}

/// The number of bytes in one `unit`, with libvirt's rules
/// (`virScaleInteger`): case-insensitive; `b`, `byte`, `bytes` are 1; a
/// letter `k`, `m`, `g`, `t`, `p`, `e` alone or followed by `iB` is a power
/// of 1024, followed by `B` a power of 1000.
fn unit_scale(unit: &str) -> Option<u64> {
    let lower = unit.to_ascii_lowercase();
    if matches!(lower.as_str(), "b" | "byte" | "bytes") {
        return Some(1);
    }
    let mut chars = lower.chars();
    let letter = chars.next()?;
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    let power = match letter {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    base.checked_pow(power)
}

fn parse_memory(text: &str, unit: Option<&str>) -> Result<u64, DomainError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::MemoryValue(text.to_owned()));
    }
    let unit_name = unit.unwrap_or("KiB");
    let scale =
        unit_scale(unit_name).ok_or_else(|| DomainError::MemoryUnit(unit_name.to_owned()))?;
    // All digits: a parse failure can only be an overflow, i.e. out of range.
    parse_digits(text)
        .and_then(|value| value.checked_mul(scale))
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| DomainError::MemoryRange {
            value: text.to_owned(),
            unit: unit_name.to_owned(),
        })
}
