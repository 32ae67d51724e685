//! VMs under the real QEMU (`qemu-system-x86`, Debian 7.2): a boot sector
//! made here prints a message through the BIOS; it boots on every bus, its
//! screen is read over VNC (RFB 3.8, loopback only) and in VGA text memory,
//! the cached disk never changes, stop and cleanup leave nothing behind.
//! A missing tool fails the test with the Debian package to install.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use vmnetx::bus::KubevirtBus;
use vmrunner::{Accel, RunningVm, VmError, VmSpec, cleanup_leftovers, start};

const MESSAGE: &str = "olive2022 vmrunner boot OK";

/// Fails unless `program` runs, naming its Debian package.
fn require(program: &str, package: &str) {
    let status = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        panic!("cannot run `{program}` ({e}): install the Debian package {package}");
    }
}

fn require_tools() {
    require("qemu-system-x86_64", "qemu-system-x86 (scripts/setup.sh)");
    require("qemu-img", "qemu-utils");
}

/// A real-mode boot sector: prints [`MESSAGE`] with `int 0x10` (teletype),
/// then halts.
fn boot_sector() -> Vec<u8> {
    #[rustfmt::skip]
    let code: [u8; 26] = [
        0x31, 0xC0,             // xor ax, ax
        0x8E, 0xD8,             // mov ds, ax
        0xBE, 0x1A, 0x7C,       // mov si, 0x7c1a (the message)
        0xFC,                   // cld
        0xAC,                   // next: lodsb
        0x08, 0xC0,             // or al, al
        0x74, 0x09,             // jz done
        0xB4, 0x0E,             // mov ah, 0x0e
        0xBB, 0x07, 0x00,       // mov bx, 7 (page 0, grey)
        0xCD, 0x10,             // int 0x10
        0xEB, 0xF2,             // jmp next
        0xFA,                   // done: cli
        0xF4,                   // hlt
        0xEB, 0xFC,             // jmp done
    ];
    let mut sector = code.to_vec();
    sector.extend_from_slice(MESSAGE.as_bytes());
    sector.push(0);
    sector.resize(510, 0);
    sector.extend_from_slice(&[0x55, 0xAA]);
    sector
}

/// A 4 MiB qcow2 disk that boots the boot sector, made by `qemu-img`.
fn boot_disk(dir: &Path) -> PathBuf {
    let raw = dir.join("boot.raw");
    let mut bytes = boot_sector();
    bytes.resize(4 << 20, 0);
    std::fs::write(&raw, bytes).unwrap();
    let disk = dir.join("boot.qcow2");
    testkit::run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            disk.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(raw).unwrap();
    disk
}

fn spec(disk: &Path, work_dir: &Path, bus: &str) -> VmSpec {
    VmSpec {
        memory_mib: 64,
        bus: KubevirtBus::parse(bus).unwrap(),
        ..VmSpec::new(disk, work_dir)
    }
}

/// The text on the VGA text screen (80x25), from guest memory at 0xb8000.
fn screen_text(vm: &RunningVm, scratch: &Path) -> String {
    let dump = scratch.join(format!("vga-{}.bin", vm.pid()));
    vm.qmp(
        "pmemsave",
        Some(json!({ "val": 0xb8000, "size": 4000, "filename": dump })),
    )
    .unwrap();
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::remove_file(&dump).unwrap();
    bytes.iter().step_by(2).map(|&b| b as char).collect()
}

/// Waits until the screen shows `text`.
fn wait_for_text(vm: &RunningVm, scratch: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let screen = screen_text(vm, scratch);
        if screen.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the guest did not show {text:?}; its screen: {:?}",
            screen.trim_end()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One full screen over RFB 3.8 (Raw only), by the `rfb` crate: the
/// banner, the size, how many distinct colours the screen has and the
/// fraction of pixels that differ from the most common one (the
/// background).
fn rfb_screen(address: SocketAddr) -> Value {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("cannot connect to VNC at {address}: {e}"));
    let mut client =
        rfb::Client::connect(stream).unwrap_or_else(|e| panic!("RFB handshake failed: {e}"));
    client.use_raw().unwrap();
    client.request_update(false).unwrap();
    let update = client
        .wait_for_update(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("RFB client failed: {e}"));
    let mut counts: HashMap<[u8; 3], u64> = HashMap::new();
    for pixel in client.screen().pixels() {
        *counts.entry(pixel).or_default() += 1;
    }
    let total: u64 = counts.values().sum();
    let background = counts.values().copied().max().unwrap_or(0);
    let server = client.server();
    json!({
        "banner": server.banner,
        "width": server.width,
        "height": server.height,
        "name": server.name,
        "rects": update.rectangles.len(),
        "covered": update.covered(),
        "distinct": counts.len(),
        "foreground_fraction": (total - background) as f64 / total.max(1) as f64,
    })
}

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn pci_class_codes(vm: &RunningVm) -> Vec<(u64, u64, u64)> {
    let buses = vm.qmp("query-pci", None).unwrap();
    let mut found = Vec::new();
    for bus in buses.as_array().unwrap() {
        for device in bus["devices"].as_array().unwrap() {
            found.push((
                device["class_info"]["class"].as_u64().unwrap(),
                device["id"]["vendor"].as_u64().unwrap(),
                device["id"]["device"].as_u64().unwrap(),
            ));
        }
    }
    found
}

/// The open flags QEMU holds `path` with (from `/proc/PID/fdinfo`).
fn open_flags(pid: u32, path: &Path) -> Vec<u32> {
    let mut flags = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        if std::fs::read_link(entry.path()).ok().as_deref() == Some(path) {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                entry.file_name().to_string_lossy()
            ))
            .unwrap();
            let line = info.lines().find(|l| l.starts_with("flags:")).unwrap();
            flags.push(u32::from_str_radix(line["flags:".len()..].trim(), 8).unwrap());
        }
    }
    flags
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn boots_on_every_bus_with_vnc_on_loopback() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let disk = boot_disk(dir.path());
    let hash = sha256(&disk);
    // All four at once, from one cached disk.
    let mut vms: Vec<(&str, RunningVm)> = ["virtio", "sata", "scsi", "usb"]
        .into_iter()
        .map(|bus| {
            let vm = start(&spec(&disk, &dir.path().join(bus), bus))
                .unwrap_or_else(|e| panic!("{bus}: {e}"));
            (bus, vm)
        })
        .collect();
    let mut ports: Vec<u16> = vms.iter().map(|(_, vm)| vm.vnc().port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "one VNC port per VM");
    for (bus, vm) in &vms {
        assert_eq!(vm.bus(), KubevirtBus::parse(bus).unwrap());
        if vmrunner::kvm_usable() {
            assert_eq!(vm.accel(), Accel::Kvm, "{bus}: KVM works here");
        }
        assert_eq!(vm.vnc().ip(), IpAddr::from([127, 0, 0, 1]), "{bus}");
        assert!(
            (5900..6000).contains(&vm.vnc().port()),
            "{bus}: {}",
            vm.vnc()
        );
        wait_for_text(vm, dir.path(), MESSAGE);
        let screen = rfb_screen(vm.vnc());
        assert_eq!(screen["banner"], "RFB 003.008\n", "{bus}");
        let (width, height) = (
            screen["width"].as_u64().unwrap(),
            screen["height"].as_u64().unwrap(),
        );
        assert!(width >= 640 && height >= 400, "{bus}: {screen}");
        assert_eq!(screen["covered"].as_u64().unwrap(), width * height, "{bus}");
        assert!(
            screen["distinct"].as_u64().unwrap() >= 2,
            "{bus}: a uniform screen: {screen}"
        );
        let text = screen["foreground_fraction"].as_f64().unwrap();
        assert!(text > 0.001 && text < 0.5, "{bus}: {screen}");
        // Nothing on other addresses: another loopback address, IPv6
        // loopback, the host's own addresses.
        for ip in other_addresses() {
            let address = SocketAddr::new(ip, vm.vnc().port());
            assert!(
                TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err(),
                "{bus}: VNC answers on {address}"
            );
        }
        // No NIC without network.
        assert!(
            !pci_class_codes(vm)
                .iter()
                .any(|(class, _, _)| class >> 8 == 2),
            "{bus}: a network controller: {:?}",
            pci_class_codes(vm)
        );
        let network = vm.human_monitor_command("info network").unwrap();
        assert!(network.trim().is_empty(), "{bus}: {network}");
    }
    for (_, vm) in &mut vms {
        let pid = vm.pid();
        vm.stop().unwrap();
        assert!(!process_exists(pid));
        assert!(!vm.is_running());
    }
    assert_eq!(sha256(&disk), hash);
}

/// Addresses other than 127.0.0.1 the VNC port must not answer on.
fn other_addresses() -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = vec![[127, 0, 0, 2].into(), "::1".parse().unwrap()];
    let output = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip ({e}): install the Debian package iproute2"));
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if (word == "inet" || word == "inet6")
                && let Some(address) = words.next()
                && let Ok(ip) = address.split('/').next().unwrap().parse::<IpAddr>()
                && !ip.is_loopback()
                && !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
            {
                addresses.push(ip);
            }
        }
    }
    addresses
}

#[test]
fn the_cached_disk_never_changes_and_stop_leaves_nothing() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let disk = boot_disk(dir.path());
    let (hash, modified) = (sha256(&disk), mtime(&disk));
    let work_dir = dir.path().join("vm");
    // SATA: `qemu-io -d` reaches the disk through its device id.
    let mut vm = start(&spec(&disk, &work_dir, "sata")).unwrap();
    let pid = vm.pid();
    assert_eq!(
        std::fs::read_to_string(work_dir.join(vmrunner::PIDFILE))
            .unwrap()
            .trim(),
        pid.to_string()
    );
    wait_for_text(&vm, dir.path(), MESSAGE);
    // QEMU holds the cached disk read-only, the overlay read-write.
    let disk_flags = open_flags(pid, &std::fs::canonicalize(&disk).unwrap());
    assert!(!disk_flags.is_empty(), "QEMU does not hold the cached disk");
    assert!(disk_flags.iter().all(|f| f & 3 == 0), "{disk_flags:?}");
    let overlay_flags = open_flags(pid, &vm.overlay());
    assert!(
        overlay_flags.iter().any(|f| f & 3 == 2),
        "{overlay_flags:?}"
    );
    // The guest's disk takes writes (over the boot sector too).
    let before = std::fs::metadata(vm.overlay()).unwrap().len();
    for command in [
        r#"qemu-io -d vmdisk "write -P 0xab 0 1M""#,
        r#"qemu-io -d vmdisk "read -P 0xab 0 1M""#,
        r#"qemu-io -d vmdisk "flush""#,
    ] {
        let out = vm.human_monitor_command(command).unwrap();
        assert!(
            !out.contains("fail") && !out.contains("rror"),
            "{command}: {out}"
        );
    }
    let after = std::fs::metadata(vm.overlay()).unwrap().len();
    assert!(after >= before + (1 << 20), "{before} -> {after}");
    // A second VM of the same disk sees the original boot sector.
    let mut other = start(&spec(&disk, &dir.path().join("other"), "virtio")).unwrap();
    wait_for_text(&other, dir.path(), MESSAGE);
    other.stop().unwrap();
    vm.stop().unwrap();
    vm.stop().unwrap(); // stopping twice is fine
    assert!(!process_exists(pid), "QEMU still runs");
    let left: Vec<_> = std::fs::read_dir(&work_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the work directory: {left:?}");
    assert_eq!(sha256(&disk), hash, "the cached disk changed");
    assert_eq!(mtime(&disk), modified, "the cached disk was written");
    assert!(vm.qmp("query-status", None).is_err());
}

#[test]
fn dropping_a_vm_stops_it() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let disk = boot_disk(dir.path());
    let work_dir = dir.path().join("vm");
    let vm = start(&spec(&disk, &work_dir, "sata")).unwrap();
    let pid = vm.pid();
    let vnc = vm.vnc();
    assert!(TcpStream::connect(vnc).is_ok());
    drop(vm);
    assert!(!process_exists(pid));
    assert!(!work_dir.join(vmrunner::OVERLAY).exists());
    assert!(TcpStream::connect(vnc).is_err());
}

#[test]
fn network_gives_one_e1000_on_user_mode_nat() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let disk = boot_disk(dir.path());
    let vm = start(&VmSpec {
        network: true,
        machine: Some("q35".into()),
        ..spec(&disk, &dir.path().join("vm"), "scsi")
    })
    .unwrap();
    let nics: Vec<_> = pci_class_codes(&vm)
        .into_iter()
        .filter(|(class, _, _)| class >> 8 == 2)
        .collect();
    // Intel 82540EM, the e1000.
    assert_eq!(nics, [(0x0200, 0x8086, 0x100e)]);
    let network = vm.human_monitor_command("info network").unwrap();
    assert!(
        network.contains("e1000") && network.contains("user"),
        "{network}"
    );
    assert!(!network.contains("hostfwd"), "{network}");
    let forwards = vm.human_monitor_command("info usernet").unwrap_or_default();
    assert!(!forwards.contains("HOST_FORWARD"), "{forwards}");
    wait_for_text(&vm, dir.path(), MESSAGE);
}

#[test]
fn tcg_boots_too() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let disk = boot_disk(dir.path());
    let vm = start(&VmSpec {
        accel: Accel::Tcg,
        ..spec(&disk, &dir.path().join("vm"), "usb")
    })
    .unwrap();
    assert_eq!(vm.accel(), Accel::Tcg);
    let accel = vm.human_monitor_command("info kvm").unwrap();
    assert!(accel.contains("disabled"), "{accel}");
    wait_for_text(&vm, dir.path(), MESSAGE);
}

#[test]
fn bad_disks_and_specs_are_clear_errors() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let good = boot_disk(dir.path());
    let garbage = dir.path().join("garbage.qcow2");
    std::fs::write(&garbage, vec![0x5a; 65536]).unwrap();
    let truncated = dir.path().join("truncated.qcow2");
    let mut header = std::fs::read(&good).unwrap();
    header.truncate(100);
    std::fs::write(&truncated, &header).unwrap();
    // A qcow2 header whose tables lie far beyond the end of the file:
    // `qemu-img info` reads it, `qemu-img check` does not pass it.
    let broken = dir.path().join("broken.qcow2");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.truncate(512);
    bytes[40..48].copy_from_slice(&(1u64 << 40).to_be_bytes()); // l1_table_offset
    bytes[48..56].copy_from_slice(&(1u64 << 40).to_be_bytes()); // refcount_table_offset
    std::fs::write(&broken, bytes).unwrap();
    let with_backing = dir.path().join("backed.qcow2");
    testkit::run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/hostname",
            with_backing.to_str().unwrap(),
        ],
    );
    let with_data_file = dir.path().join("data-file.qcow2");
    testkit::run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", dir.path().join("data.raw").display()),
            with_data_file.to_str().unwrap(),
            "1M",
        ],
    );
    let cases: Vec<(PathBuf, &str)> = vec![
        (dir.path().join("missing.qcow2"), "cannot read it"),
        (dir.path().to_owned(), "not a regular file"),
        (garbage, "a raw image, not qcow2"),
        (truncated, "qcow2 header too short"),
        (broken, "qemu-img check found 3 corruptions"),
        (with_backing, "has a backing file"),
        (with_data_file, "has an external data file"),
    ];
    for (disk, expected) in cases {
        let work_dir = dir.path().join("vm");
        let error = start(&spec(&disk, &work_dir, "virtio")).unwrap_err();
        assert!(matches!(error, VmError::Disk { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(expected), "{}: {message}", disk.display());
        assert!(message.contains(&*disk.to_string_lossy()), "{message}");
        assert!(!work_dir.join(vmrunner::OVERLAY).exists());
    }
    // A bus KubeVirt does not know cannot be put in a spec at all.
    assert_eq!(KubevirtBus::parse("floppy"), None);
    // QEMU's own refusal comes back with its explanation.
    let machine = start(&VmSpec {
        machine: Some("no-such-machine".into()),
        ..spec(&good, &dir.path().join("vm"), "virtio")
    })
    .unwrap_err();
    let message = machine.to_string();
    assert!(
        matches!(machine, VmError::Qemu { .. }) && message.contains("unsupported machine type"),
        "{message}"
    );
    assert!(!dir.path().join("vm").join(vmrunner::OVERLAY).exists());
}

#[test]
fn a_hung_qemu_is_killed() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let disk = boot_disk(dir.path());
    let mut vm = start(&spec(&disk, &dir.path().join("vm"), "virtio")).unwrap();
    let pid = vm.pid();
    testkit::run("kill", &["-STOP", &pid.to_string()]);
    let started = Instant::now();
    vm.stop().unwrap();
    assert!(!process_exists(pid));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!vm.overlay().exists());
}

#[test]
fn leftovers_of_an_earlier_run_are_cleaned_up() {
    require_tools();
    let root = tempfile::tempdir().unwrap();
    let disk = boot_disk(root.path());
    // A VM "the crashed cloudlet" left running, two levels down.
    let work_dir = root.path().join("vms").join("happy-otter");
    let vm = start(&spec(&disk, &work_dir, "virtio")).unwrap();
    let pid = vm.pid();
    std::mem::forget(vm); // its QMP connection stays open: killed
    // One whose QMP socket is free (its parent gone): asked to quit. Its
    // command line is vmrunner's own.
    let quitting = root.path().join("vms").join("brave-heron");
    std::fs::create_dir_all(&quitting).unwrap();
    let quitting = std::fs::canonicalize(quitting).unwrap();
    let disk = std::fs::canonicalize(&disk).unwrap();
    testkit::run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            disk.to_str().unwrap(),
            quitting.join(vmrunner::OVERLAY).to_str().unwrap(),
        ],
    );
    let args = vmrunner::qemu_args(
        &spec(&disk, &quitting, "virtio"),
        Accel::Tcg,
        vmrunner::BaseFile::File(&disk),
        &quitting,
    );
    let mut orphan = Command::new("qemu-system-x86_64")
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !quitting.join(vmrunner::QMP_SOCKET).exists()
        || !quitting.join(vmrunner::PIDFILE).exists()
    {
        assert!(Instant::now() < deadline, "QEMU did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A stale directory whose pidfile names a live process that is not
    // QEMU: it must survive.
    let stale = root.path().join("vms").join("sleepy-badger");
    std::fs::create_dir_all(&stale).unwrap();
    let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(stale.join(vmrunner::PIDFILE), bystander.id().to_string()).unwrap();
    std::fs::write(stale.join(vmrunner::OVERLAY), b"stale").unwrap();
    std::fs::write(stale.join("keep.txt"), b"not ours").unwrap();

    let cleanup = cleanup_leftovers(root.path());
    assert!(cleanup.errors.is_empty(), "{:?}", cleanup.errors);
    let mut killed = cleanup.killed.clone();
    killed.sort_unstable();
    let mut expected = vec![pid, orphan.id()];
    expected.sort_unstable();
    assert_eq!(killed, expected);
    // It quit cleanly rather than being killed.
    let status = orphan.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    let mut cleaned = cleanup.cleaned.clone();
    cleaned.sort();
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap();
    assert_eq!(
        cleaned,
        [quitting.clone(), canonical(&work_dir), canonical(&stale)]
    );
    assert!(tree_is_empty(&quitting));
    // Killed (a zombie of this test process until reaped, never running).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "{stat}");
    assert!(!work_dir.join(vmrunner::OVERLAY).exists());
    assert!(!work_dir.join(vmrunner::QMP_SOCKET).exists());
    assert!(!stale.join(vmrunner::OVERLAY).exists());
    assert!(stale.join("keep.txt").exists());
    assert!(
        matches!(bystander.try_wait(), Ok(None)),
        "a process that is not QEMU was killed"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    // A second pass finds nothing; a missing root is no error.
    let again = cleanup_leftovers(root.path());
    assert!(again.killed.is_empty() && again.cleaned.is_empty());
    assert_eq!(
        cleanup_leftovers(&root.path().join("absent")),
        vmrunner::Cleanup::default()
    );
}

#[test]
fn check_disk_accepts_a_good_disk_and_names_a_missing_one() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let good = boot_disk(dir.path());
    vmrunner::check_disk(&good).unwrap();
    let missing = vmrunner::check_disk(&dir.path().join("absent")).unwrap_err();
    assert!(missing.to_string().contains("cannot read it"), "{missing}");
}

fn tree_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// A disk served from memory whose reads of the boot sector's bytes fail
/// while `failing` is set, as a lazily pulled disk's do while its registry
/// is away.
struct FlakyDisk {
    bytes: Vec<u8>,
    boot_sector_at: u64,
    failing: std::sync::atomic::AtomicBool,
    failed_reads: std::sync::atomic::AtomicU64,
}

impl vmrunner::nbd::BlockSource for FlakyDisk {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let end = offset + buf.len() as u64;
        let covers_boot_sector = offset <= self.boot_sector_at && self.boot_sector_at < end;
        if covers_boot_sector && self.failing.load(Ordering::SeqCst) {
            self.failed_reads.fetch_add(1, Ordering::SeqCst);
            return Err(std::io::Error::other("the registry is away"));
        }
        buf.copy_from_slice(&self.bytes[offset as usize..end as usize]);
        Ok(())
    }
}

fn wait_for_state(vm: &RunningVm, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = vm.run_state().unwrap();
        if now == state {
            return;
        }
        assert!(Instant::now() < deadline, "run state {now}, not {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_served_disk_boots_over_nbd_and_a_failed_read_pauses_the_guest_until_resumed() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(boot_disk(dir.path())).unwrap();
    let code = &boot_sector()[..8];
    let boot_sector_at = bytes.windows(code.len()).position(|w| w == code).unwrap() as u64;
    let disk = Arc::new(FlakyDisk {
        bytes,
        boot_sector_at,
        failing: true.into(),
        failed_reads: 0.into(),
    });
    let work_dir = dir.path().join("vm");
    let spec = VmSpec {
        disk: vmrunner::DiskImage::Served(disk.clone()),
        ..spec(Path::new("/unused"), &work_dir, "virtio")
    };
    let mut vm = start(&spec).unwrap();
    // The firmware's read of the boot sector fails: the guest is paused,
    // not shown an error.
    wait_for_state(&vm, "io-error");
    assert!(disk.failed_reads.load(Ordering::SeqCst) >= 1);
    assert!(!screen_text(&vm, dir.path()).contains(MESSAGE));

    disk.failing.store(false, Ordering::SeqCst);
    vm.resume().unwrap();
    wait_for_text(&vm, dir.path(), MESSAGE);
    assert_eq!(vm.run_state().unwrap(), "running");
    // The socket is QEMU's and ours alone.
    let socket = work_dir.join(vmrunner::NBD_SOCKET);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    vm.stop().unwrap();
    assert!(!socket.exists(), "the NBD socket outlived the VM");
    assert!(
        tree_is_empty(&work_dir),
        "files left in {}",
        work_dir.display()
    );
}
