//! Runs a VM under QEMU for the embedded cloudlet.
//!
//! [`start`] boots a cached qcow2 disk (a containerDisk pulled into a
//! cache) behind a throw-away copy-on-write overlay, so the cached image
//! never changes and many VMs can share it:
//!
//! - the disk is checked first with `qemu-img info` and `qemu-img check`
//!   ([`check_disk`]): a qcow2 image, without a backing file or an external
//!   data file of its own (a pulled image must not make QEMU open host
//!   files), without corruption;
//! - `qemu-img create -f qcow2 -F qcow2 -b DISK WORK_DIR/overlay.qcow2`
//!   makes the overlay; QEMU opens the cached image read-only, through an
//!   explicit `-blockdev` graph (its own backing link cut);
//! - `qemu-system-x86_64` runs as a child process we own (no `-daemonize`),
//!   started from one long-lived thread with a parent-death signal
//!   ([`spawner`]), so it ends with us even if we are killed outright,
//!   with KVM when `/dev/kvm` can be opened, else TCG; VNC listens on the
//!   first free display of `127.0.0.1:0` to `:99` (QEMU picks it, so two
//!   VMs never race for a port; QMP `query-vnc` tells which), loopback
//!   only; no NIC unless asked, then an e1000 on user-mode NAT without host
//!   forwards; `-sandbox on` (seccomp) with everything it can deny denied;
//! - a QMP socket in the work directory: [`RunningVm::stop`] sends `quit`
//!   and kills QEMU if it has not ended after a timeout, then deletes the
//!   overlay and the other files the VM left in its work directory.
//!   Dropping a [`RunningVm`] does the same.
//!
//! The spec's disk bus is the recipe's ([`vmnetx::bus::KubevirtBus`]) and
//! its vCPUs and memory are checked against [`vmnetx::limits`], the bounds
//! every crate from `domain.xml` on applies.
//!
//! Commands are built from argument lists, never from shell strings.
//! [`cleanup_leftovers`] ends the QEMU processes and removes the overlays
//! that a previous run of the cloudlet left under its data directory.
//!
//! The disk checks are explained in `docs/qcow2.md`, the choice between KVM
//! and TCG in `docs/test-environment.md`.

mod qmp;
pub mod spawner;

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vmnetx::bus::KubevirtBus;
use vmnetx::limits::{check_memory_mib, check_vcpus};

use self::qmp::Qmp;

/// The overlay's file name in the work directory.
pub const OVERLAY: &str = "overlay.qcow2";
/// QEMU's pidfile in the work directory ([`cleanup_leftovers`] looks for it).
pub const PIDFILE: &str = "qemu.pid";
/// The QMP socket in the work directory.
pub const QMP_SOCKET: &str = "qmp.sock";
/// QEMU's standard error, kept to explain a failed start.
pub const LOG: &str = "qemu.log";

/// The QEMU binary.
const QEMU: &str = "qemu-system-x86_64";
/// The Debian package of [`QEMU`].
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// `qemu-img` and its Debian package.
const QEMU_IMG: &str = "qemu-img";
const QEMU_IMG_PACKAGE: &str = "qemu-utils";
/// VNC displays QEMU may take (ports 5900 to 5999).
const VNC_DISPLAYS: (u16, u16) = (0, 99);
/// How long QEMU may take to open its QMP socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QEMU may take to end after `quit` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a QMP command may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU may take to answer `quit`.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);
/// A Unix socket path must fit `sun_path` (108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The cached qcow2 disk; opened read-only, never modified.
    pub disk: PathBuf,
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
            disk: disk.into(),
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

    fn resolve(self) -> Accel {
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

/// Why a VM could not be started, queried or stopped.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The spec asks for something we do not run.
    #[error("invalid VM spec: {0}")]
    InvalidSpec(String),
    /// A program is missing.
    #[error("cannot run `{program}` ({detail}): install the Debian package {package}")]
    MissingTool {
        /// The program.
        program: &'static str,
        /// Its Debian package.
        package: &'static str,
        /// The error starting it.
        detail: String,
    },
    /// The disk is missing or not a usable qcow2 image.
    #[error("disk {}: {reason}", path.display())]
    Disk {
        /// The disk.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// QEMU (or `qemu-img`) failed.
    #[error("{what}{}", log_suffix(log))]
    Qemu {
        /// What failed.
        what: String,
        /// The end of QEMU's standard error.
        log: String,
    },
    /// A QMP exchange failed.
    #[error("QMP: {0}")]
    Qmp(String),
}

fn log_suffix(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(": {log}")
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

/// A running VM; stopped (and its overlay deleted) when dropped.
#[derive(Debug)]
pub struct RunningVm {
    child: Option<Child>,
    pid: u32,
    vnc: SocketAddr,
    accel: Accel,
    bus: KubevirtBus,
    work_dir: PathBuf,
    qmp: Mutex<Option<Qmp>>,
}

/// Checks `spec` and starts its VM; see the crate documentation.
pub fn start(spec: &VmSpec) -> Result<RunningVm, VmError> {
    check_spec(spec)?;
    let accel = spec.accel.resolve();
    let disk = verify_disk(&spec.disk)?;
    let work_dir = prepare_work_dir(&spec.work_dir)?;
    let overlay = work_dir.join(OVERLAY);
    let socket = work_dir.join(QMP_SOCKET);
    if socket.as_os_str().len() > SOCKET_PATH_MAX {
        return Err(VmError::InvalidSpec(format!(
            "work directory {} is too long for a Unix socket path (at most {} bytes with `/{QMP_SOCKET}`)",
            work_dir.display(),
            SOCKET_PATH_MAX
        )));
    }
    for leftover in [OVERLAY, PIDFILE, QMP_SOCKET, LOG] {
        remove_if_present(&work_dir.join(leftover))?;
    }
    create_overlay(&disk, &overlay)?;
    let log = File::create(work_dir.join(LOG)).map_err(io_error("creating the QEMU log"))?;
    let args = qemu_args(spec, accel, &disk, &work_dir);
    let spawned = spawner::spawn_bound_to_us(QEMU, &args, |command| {
        command
            .current_dir(&work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
    });
    let child = match spawned {
        Ok(child) => child,
        Err(error) => {
            let _ = remove_vm_files(&work_dir);
            return Err(missing_or_io(QEMU, QEMU_PACKAGE, error));
        }
    };
    let mut vm = RunningVm {
        pid: child.id(),
        child: Some(child),
        vnc: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        accel,
        bus: spec.bus,
        work_dir,
        qmp: Mutex::new(None),
    };
    // From here on, dropping `vm` ends QEMU and removes its files.
    let qmp = vm.connect_qmp(&socket)?;
    *lock(&vm.qmp) = Some(qmp);
    vm.vnc = vm.query_vnc()?;
    tracing::info!(
        pid = vm.pid,
        accel = accel.name(),
        vcpus = spec.vcpus,
        memory_mib = spec.memory_mib,
        vnc = %vm.vnc,
        work_dir = %vm.work_dir.display(),
        "QEMU started"
    );
    Ok(vm)
}

impl RunningVm {
    /// The VNC server's address (on 127.0.0.1).
    pub fn vnc(&self) -> SocketAddr {
        self.vnc
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The accelerator in use.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The disk bus.
    pub fn bus(&self) -> KubevirtBus {
        self.bus
    }

    /// The work directory (absolute).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The overlay the guest writes to.
    pub fn overlay(&self) -> PathBuf {
        self.work_dir.join(OVERLAY)
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Runs a QMP command; returns its `return` value.
    pub fn qmp(&self, command: &str, arguments: Option<Value>) -> Result<Value, VmError> {
        let mut guard = lock(&self.qmp);
        let qmp = guard
            .as_mut()
            .ok_or_else(|| VmError::Qmp("the VM is stopped".into()))?;
        qmp.execute(command, arguments).map_err(VmError::Qmp)
    }

    /// Runs a human monitor command through QMP; returns its output.
    pub fn human_monitor_command(&self, command: &str) -> Result<String, VmError> {
        let value = self.qmp(
            "human-monitor-command",
            Some(json!({ "command-line": command })),
        )?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Stops the VM: QMP `quit`, QEMU killed if it has not ended after a
    /// few seconds; then deletes the overlay, pidfile, socket and log.
    /// Stopping a stopped VM does nothing.
    pub fn stop(&mut self) -> Result<(), VmError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(mut qmp) = lock(&self.qmp).take() {
            // QEMU may close the connection before it answers; a hung one
            // does not answer at all.
            qmp.set_timeout(QUIT_TIMEOUT);
            let _ = qmp.execute("quit", None);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let exited = loop {
            match child.try_wait() {
                Ok(Some(_)) => break true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break false,
            }
        };
        if !exited {
            tracing::warn!(
                pid = self.pid,
                timeout_seconds = STOP_TIMEOUT.as_secs(),
                "QEMU did not end after quit; killing it"
            );
            let _ = child.kill();
            child
                .wait()
                .map_err(io_error(format!("waiting for QEMU (pid {})", self.pid)))?;
        }
        tracing::info!(pid = self.pid, killed = !exited, "QEMU stopped");
        remove_vm_files(&self.work_dir)
    }

    fn connect_qmp(&mut self, socket: &Path) -> Result<Qmp, VmError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = read_log(&self.work_dir.join(LOG));
                self.child = None;
                let _ = remove_vm_files(&self.work_dir);
                return Err(VmError::Qemu {
                    what: format!("QEMU exited at start ({status})"),
                    log,
                });
            }
            if socket.exists() {
                match Qmp::connect(socket, QMP_TIMEOUT) {
                    Ok(qmp) => return Ok(qmp),
                    Err(error) if Instant::now() >= deadline => return Err(VmError::Qmp(error)),
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(VmError::Qemu {
                    what: format!(
                        "QEMU did not open its QMP socket within {}s",
                        START_TIMEOUT.as_secs()
                    ),
                    log: read_log(&self.work_dir.join(LOG)),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn query_vnc(&self) -> Result<SocketAddr, VmError> {
        let info = self.qmp("query-vnc", None)?;
        let host = info.get("host").and_then(Value::as_str).unwrap_or("");
        let port = info
            .get("service")
            .and_then(Value::as_str)
            .and_then(|service| service.parse::<u16>().ok());
        match (host.parse::<IpAddr>(), port) {
            (Ok(ip), Some(port)) if ip.is_loopback() => Ok(SocketAddr::new(ip, port)),
            _ => Err(VmError::Qmp(format!(
                "query-vnc gave no loopback VNC address: {info}"
            ))),
        }
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn lock(qmp: &Mutex<Option<Qmp>>) -> std::sync::MutexGuard<'_, Option<Qmp>> {
    qmp.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn check_spec(spec: &VmSpec) -> Result<(), VmError> {
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

/// Checks the cached disk; returns its canonical path.
fn inspect_disk(disk: &Path) -> Result<PathBuf, VmError> {
    let bad = |reason: String| VmError::Disk {
        path: disk.to_owned(),
        reason,
    };
    let meta = fs::metadata(disk).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let disk = fs::canonicalize(disk).map_err(|e| bad(format!("cannot resolve it: {e}")))?;
    let output = Command::new(QEMU_IMG)
        .args(["info", "-U", "--output=json"])
        .arg(&disk)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_or_io(QEMU_IMG, QEMU_IMG_PACKAGE, e))?;
    if !output.status.success() {
        return Err(bad(format!(
            "not a readable disk image: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let info: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| bad(format!("qemu-img info gave no JSON: {e}")))?;
    let format = info.get("format").and_then(Value::as_str).unwrap_or("?");
    if format != "qcow2" {
        return Err(bad(format!("a {format} image, not qcow2")));
    }
    if let Some(backing) = info.get("backing-filename").and_then(Value::as_str) {
        return Err(bad(format!(
            "has a backing file ({backing:?}); a cached disk must stand alone"
        )));
    }
    let data = &info["format-specific"]["data"];
    if let Some(file) = data.get("data-file").and_then(Value::as_str) {
        return Err(bad(format!(
            "has an external data file ({file:?}); a cached disk must stand alone"
        )));
    }
    if data.get("corrupt").and_then(Value::as_bool) == Some(true) {
        return Err(bad("marked corrupt".into()));
    }
    Ok(disk)
}

/// Checks a disk as [`start`] does: `qemu-img info` (a qcow2 image
/// standing alone, without backing file or external data file, not marked
/// corrupt), then `qemu-img check` (no corruption; leaked clusters, harmless
/// to an image only read, are accepted). About 15 ms for the 3 GiB
/// benchmark disk: `check` reads only metadata.
pub fn check_disk(disk: &Path) -> Result<(), VmError> {
    verify_disk(disk).map(drop)
}

/// [`check_disk`]; returns the disk's canonical path.
fn verify_disk(disk: &Path) -> Result<PathBuf, VmError> {
    let canonical = inspect_disk(disk)?;
    let output = Command::new(QEMU_IMG)
        .args(["check", "-U", "-f", "qcow2", "--output=json"])
        .arg(&canonical)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_or_io(QEMU_IMG, QEMU_IMG_PACKAGE, e))?;
    // Exit status 3: leaked clusters only, harmless to a read-only image.
    if output.status.success() || output.status.code() == Some(3) {
        return Ok(canonical);
    }
    // Exit status 2: corruptions; 1 and others: no check was possible.
    let report: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    let count = |key: &str| {
        report
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let reason = match output.status.code() {
        Some(2) => format!("qemu-img check found {} corruptions", count("corruptions")),
        _ => format!(
            "qemu-img check could not check it: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    };
    Err(VmError::Disk {
        path: disk.to_owned(),
        reason,
    })
}

fn prepare_work_dir(dir: &Path) -> Result<PathBuf, VmError> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(io_error(format!("creating {}", dir.display()))(e)),
    }
    fs::canonicalize(dir).map_err(io_error(format!("resolving {}", dir.display())))
}

fn create_overlay(disk: &Path, overlay: &Path) -> Result<(), VmError> {
    let output = Command::new(QEMU_IMG)
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(disk)
        .arg(overlay)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_or_io(QEMU_IMG, QEMU_IMG_PACKAGE, e))?;
    if !output.status.success() {
        let _ = fs::remove_file(overlay);
        return Err(VmError::Qemu {
            what: format!(
                "qemu-img could not create the overlay {}",
                overlay.display()
            ),
            log: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// QEMU's arguments for `spec` (paths absolute, the work directory
/// canonical).
pub fn qemu_args(spec: &VmSpec, accel: Accel, disk: &Path, work_dir: &Path) -> Vec<OsString> {
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
    let blockdev = json!({
        "driver": "qcow2",
        "node-name": "disk0",
        "file": { "driver": "file", "filename": work_dir.join(OVERLAY) },
        "backing": {
            "driver": "qcow2",
            "node-name": "base0",
            "read-only": true,
            "backing": null,
            "file": { "driver": "file", "filename": disk, "read-only": true },
        },
    });
    push(&["-blockdev", &blockdev.to_string()]);
    let device = "drive=disk0,id=vmdisk,bootindex=1";
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

fn missing_or_io(program: &'static str, package: &'static str, error: io::Error) -> VmError {
    if error.kind() == io::ErrorKind::NotFound {
        VmError::MissingTool {
            program,
            package,
            detail: error.to_string(),
        }
    } else {
        VmError::Io {
            what: format!("starting {program}"),
            source: error,
        }
    }
}

/// The end of QEMU's log, without the noise of modules Debian splits off.
fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text.lines()
        .filter(|line| !line.contains("module ui-ui-") && !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn remove_if_present(path: &Path) -> Result<(), VmError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("removing {}", path.display()))(e)),
    }
}

/// Removes the files a VM keeps in its work directory.
fn remove_vm_files(work_dir: &Path) -> Result<(), VmError> {
    let mut first = Ok(());
    for name in [OVERLAY, PIDFILE, QMP_SOCKET, LOG] {
        if let Err(error) = remove_if_present(&work_dir.join(name))
            && first.is_ok()
        {
            first = Err(error);
        }
    }
    first
}

/// What [`cleanup_leftovers`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// QEMU processes ended (pids).
    pub killed: Vec<u32>,
    /// Work directories whose VM files were removed.
    pub cleaned: Vec<PathBuf>,
    /// What could not be done.
    pub errors: Vec<String>,
}

/// How deep under the root work directories are looked for.
const CLEANUP_DEPTH: usize = 4;

/// Ends the QEMU processes whose pidfile ([`PIDFILE`]) lies under `root`
/// (a process counts only if it is a `qemu-system-*` started with exactly
/// that pidfile, so a reused pid is never killed) and removes the overlays
/// and other VM files left in those work directories, up to four levels
/// down, without following symbolic links. Meant for a cloudlet starting
/// again over the data directory of an earlier run: VMs of this process
/// under `root` are ended too.
pub fn cleanup_leftovers(root: &Path) -> Cleanup {
    let mut cleanup = Cleanup::default();
    let root = match fs::canonicalize(root) {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return cleanup,
        Err(e) => {
            cleanup.errors.push(format!("{}: {e}", root.display()));
            return cleanup;
        }
    };
    let mut dirs = Vec::new();
    find_work_dirs(&root, 0, &mut dirs, &mut cleanup.errors);
    for dir in dirs {
        let pidfile = dir.join(PIDFILE);
        if let Some(pid) = fs::read_to_string(&pidfile)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            && is_our_qemu(pid, &pidfile)
        {
            match end_process(pid, &dir.join(QMP_SOCKET)) {
                Ok(()) => {
                    tracing::warn!(pid, work_dir = %dir.display(), "ended a QEMU left by an earlier run");
                    cleanup.killed.push(pid);
                }
                Err(error) => {
                    tracing::error!(pid, work_dir = %dir.display(), %error, "cannot end a QEMU left by an earlier run");
                    cleanup.errors.push(format!("QEMU pid {pid}: {error}"));
                    continue;
                }
            }
        }
        match remove_vm_files(&dir) {
            Ok(()) => cleanup.cleaned.push(dir),
            Err(error) => cleanup.errors.push(error.to_string()),
        }
    }
    cleanup
}

fn find_work_dirs(dir: &Path, depth: usize, found: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    let mut is_work_dir = false;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        if kind.is_dir() {
            if depth < CLEANUP_DEPTH {
                find_work_dirs(&entry.path(), depth + 1, found, errors);
            }
        } else if name == PIDFILE || name == OVERLAY || name == QMP_SOCKET {
            is_work_dir = true;
        }
    }
    if is_work_dir {
        found.push(dir.to_owned());
    }
}

/// Whether `pid` is a QEMU started with `-pidfile PIDFILE` (and not a zombie).
fn is_our_qemu(pid: u32, pidfile: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let is_qemu = args.first().is_some_and(|argv0| {
        let name = argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0);
        name.starts_with(b"qemu-system-")
    });
    let pidfile = pidfile.as_os_str().as_encoded_bytes();
    is_qemu
        && args
            .windows(2)
            .any(|pair| pair[0] == b"-pidfile" && pair[1] == pidfile)
        && is_alive(pid)
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some()
}

/// The start time (in clock ticks after boot) of `pid`, if it exists and is
/// not a zombie: with the pid, it names one process for good.
fn proc_stat(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in parentheses): state is the
    // 3rd field of the line, starttime the 22nd.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn end_process(pid: u32, socket: &Path) -> Result<(), String> {
    let Some(started) = proc_stat(pid) else {
        return Ok(());
    };
    // A clean quit when QMP answers; else (hung, or its one QMP connection
    // still held) straight to SIGKILL.
    let quit = Qmp::connect(socket, QUIT_TIMEOUT).and_then(|mut qmp| qmp.execute("quit", None));
    if quit.is_ok() && wait_gone(pid, started, STOP_TIMEOUT) {
        return Ok(());
    }
    let raw = i32::try_from(pid).map_err(|_| "pid out of range".to_owned())?;
    let target = rustix::process::Pid::from_raw(raw).ok_or("pid 0")?;
    if proc_stat(pid) == Some(started) {
        rustix::process::kill_process(target, rustix::process::Signal::KILL)
            .map_err(|e| format!("kill: {e}"))?;
    }
    if wait_gone(pid, started, STOP_TIMEOUT) {
        Ok(())
    } else {
        Err("still running after SIGKILL".into())
    }
}

/// Waits until the process `pid` that started at `started` has ended (or
/// is a zombie).
fn wait_gone(pid: u32, started: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while proc_stat(pid) == Some(started) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args_of(spec: &VmSpec, bus: KubevirtBus) -> Vec<String> {
        let spec = VmSpec {
            bus,
            ..spec.clone()
        };
        qemu_args(
            &spec,
            Accel::Tcg,
            Path::new("/cache/a,b/disk.qcow2"),
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
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let error = missing_or_io(QEMU, QEMU_PACKAGE, io::ErrorKind::NotFound.into());
        assert!(
            error
                .to_string()
                .contains("install the Debian package qemu-system-x86"),
            "{error}"
        );
    }

    #[test]
    fn a_running_vm_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<RunningVm>();
    }

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
