//! QEMU's command line for a spec, as an argument list (never a shell
//! string), with paths escaped for QEMU's own option syntax. Apart from
//! starting so the exact arguments can be tested without running QEMU.

use std::ffi::OsString;
use std::path::Path;

use serde_json::json;
use vmnetx::bus::KubevirtBus;

use crate::spec::{Accel, VmSpec};
use crate::workdir::{NBD_EXPORT, OVERLAY, PIDFILE, QMP_SOCKET};

/// Where QEMU reads the base disk's bytes.
#[derive(Debug, Clone, Copy)]
pub enum BaseFile<'a> {
    /// A qcow2 file (canonical path).
    File(&'a Path),
    /// Our NBD server's socket (a served disk).
    Nbd(&'a Path),
}

/// VNC displays QEMU may take (ports 5900 to 5999).
const VNC_DISPLAYS: (u16, u16) = (0, 99);

/// QEMU's arguments for `spec` (paths absolute, the work directory
/// canonical), its base disk read from `base`.
pub fn qemu_args(spec: &VmSpec, accel: Accel, base: BaseFile, work_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-name", "olive2022-vm", "-nodefaults", "-no-user-config"]);
    if let Some(machine) = &spec.machine {
        push(&["-machine", &format!("type={machine}")]);
    }
    push(&["-accel", accel.name()]);
    push(&["-m", &format!("{}M", spec.memory_mib)]);
    push(&["-smp", &spec.vcpus.to_string()]);
    push(&["-vga", "std", "-display", "none"]);
    push(&[
        "-vnc",
        &format!("127.0.0.1:{},to={}", VNC_DISPLAYS.0, VNC_DISPLAYS.1),
    ]);
    // A tablet gives VNC an absolute pointer; the controller also takes a
    // USB disk.
    push(&["-device", "qemu-xhci,id=xhci0"]);
    push(&["-device", "usb-tablet,bus=xhci0.0"]);
    // The cached image read-only, its own backing link cut; the overlay on
    // top takes every write.
    let base_file = match base {
        BaseFile::File(disk) => json!({ "driver": "file", "filename": disk, "read-only": true }),
        BaseFile::Nbd(socket) => json!({
            "driver": "nbd",
            "server": { "type": "unix", "path": socket },
            "export": NBD_EXPORT,
            "read-only": true,
        }),
    };
    let blockdev = json!({
        "driver": "qcow2",
        "node-name": "disk0",
        "file": { "driver": "file", "filename": work_dir.join(OVERLAY) },
        "backing": {
            "driver": "qcow2",
            "node-name": "base0",
            "read-only": true,
            "backing": null,
            "file": base_file,
        },
    });
    push(&["-blockdev", &blockdev.to_string()]);
    // A served disk's read fails while its bytes cannot be fetched: the
    // guest is paused rather than shown an I/O error, and resumed once
    // they flow (the default, `report`, broke guests and hung `quit`).
    let device = match base {
        BaseFile::File(_) => "drive=disk0,id=vmdisk,bootindex=1".to_owned(),
        BaseFile::Nbd(_) => "drive=disk0,id=vmdisk,bootindex=1,rerror=stop,werror=stop".to_owned(),
    };
    let device = device.as_str();
    match spec.bus {
        KubevirtBus::Virtio => push(&["-device", &format!("virtio-blk-pci,{device}")]),
        KubevirtBus::Sata => push(&[
            "-device",
            "ich9-ahci,id=ahci0",
            "-device",
            &format!("ide-hd,bus=ahci0.0,{device}"),
        ]),
        KubevirtBus::Scsi => push(&[
            "-device",
            "virtio-scsi-pci,id=scsi0",
            "-device",
            &format!("scsi-hd,bus=scsi0.0,{device}"),
        ]),
        KubevirtBus::Usb => push(&["-device", &format!("usb-storage,bus=xhci0.0,{device}")]),
    }
    if spec.network {
        push(&["-nic", "user,model=e1000"]);
    } else {
        push(&["-nic", "none"]);
    }
    push(&["-boot", "strict=on"]);
    let socket = escape_commas(&work_dir.join(QMP_SOCKET).to_string_lossy());
    push(&["-qmp", &format!("unix:{socket},server=on,wait=off")]);
    args.push("-pidfile".into());
    args.push(work_dir.join(PIDFILE).into_os_string());
    args.extend(
        [
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        ]
        .map(OsString::from),
    );
    args
}

/// Doubles commas: QEMU's option syntax reads `,,` as a literal comma.
fn escape_commas(text: &str) -> String {
    text.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::Value;

    use super::*;

    fn args_of(spec: &VmSpec, bus: KubevirtBus) -> Vec<String> {
        let spec = VmSpec {
            bus,
            ..spec.clone()
        };
        qemu_args(
            &spec,
            Accel::Tcg,
            BaseFile::File(Path::new("/cache/a,b/disk.qcow2")),
            Path::new("/run/vm,1"),
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect()
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|pair| pair[0] == flag)
            .map(|pair| pair[1].as_str())
            .collect()
    }

    #[test]
    fn command_line_per_bus() {
        let spec = VmSpec::new("/d", "/w");
        let cases = [
            (KubevirtBus::Virtio, vec!["virtio-blk-pci,drive=disk0"]),
            (
                KubevirtBus::Sata,
                vec!["ich9-ahci,id=ahci0", "ide-hd,bus=ahci0.0"],
            ),
            (
                KubevirtBus::Scsi,
                vec!["virtio-scsi-pci,id=scsi0", "scsi-hd,bus=scsi0.0"],
            ),
            (KubevirtBus::Usb, vec!["usb-storage,bus=xhci0.0"]),
        ];
        for (bus, wanted) in cases {
            let args = args_of(&spec, bus);
            let devices = value_after(&args, "-device");
            for want in wanted {
                assert!(
                    devices.iter().any(|d| d.starts_with(want)),
                    "{bus:?}: {devices:?}"
                );
            }
            assert_eq!(value_after(&args, "-nic"), ["none"]);
            assert_eq!(value_after(&args, "-vnc"), ["127.0.0.1:0,to=99"]);
            assert_eq!(value_after(&args, "-accel"), ["tcg"]);
        }
    }

    #[test]
    fn paths_are_quoted_for_qemu() {
        let mut spec = VmSpec::new("/d", "/w");
        spec.network = true;
        spec.machine = Some("q35".into());
        let args = args_of(&spec, KubevirtBus::Virtio);
        assert_eq!(
            value_after(&args, "-qmp"),
            ["unix:/run/vm,,1/qmp.sock,server=on,wait=off"]
        );
        assert_eq!(value_after(&args, "-pidfile"), ["/run/vm,1/qemu.pid"]);
        assert_eq!(value_after(&args, "-nic"), ["user,model=e1000"]);
        assert_eq!(value_after(&args, "-machine"), ["type=q35"]);
        let blockdev: Value = serde_json::from_str(value_after(&args, "-blockdev")[0]).unwrap();
        assert_eq!(blockdev["file"]["filename"], "/run/vm,1/overlay.qcow2");
        assert_eq!(
            blockdev["backing"]["file"]["filename"],
            "/cache/a,b/disk.qcow2"
        );
        assert_eq!(blockdev["backing"]["read-only"], true);
        assert_eq!(blockdev["backing"]["backing"], Value::Null);
        assert!(
            value_after(&args, "-device")
                .iter()
                .all(|d| !d.contains("rerror"))
        );
    }

    #[test]
    fn a_served_disk_is_read_over_nbd_and_pauses_the_guest_on_errors() {
        let spec = VmSpec::new("/d", "/w");
        let args: Vec<String> = qemu_args(
            &spec,
            Accel::Tcg,
            BaseFile::Nbd(Path::new("/run/vm,1/disk.sock")),
            Path::new("/run/vm,1"),
        )
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        let blockdev: Value = serde_json::from_str(value_after(&args, "-blockdev")[0]).unwrap();
        let file = &blockdev["backing"]["file"];
        assert_eq!(file["driver"], "nbd");
        assert_eq!(file["server"]["path"], "/run/vm,1/disk.sock");
        assert_eq!(file["export"], NBD_EXPORT);
        let devices = value_after(&args, "-device");
        assert!(
            devices
                .iter()
                .any(|d| d.starts_with("virtio-blk-pci") && d.ends_with("rerror=stop,werror=stop")),
            "{devices:?}"
        );
    }
}
