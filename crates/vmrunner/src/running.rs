//! A VM's life: [`start`] checks the spec and the disk, makes the overlay
//! and spawns QEMU, [`RunningVm`] answers for it (its VNC address, QMP
//! commands) and [`RunningVm::stop`] (or dropping it) ends QEMU and removes
//! its files. The other rooms each do one step; this one orders them and
//! owns the QEMU process.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vmnetx::bus::KubevirtBus;

use crate::args::{BaseFile, qemu_args};
use crate::disk::{create_overlay, create_sized_overlay, inspect_served, verify_disk};
use crate::error::{VmError, io_error, missing_or_io, read_log};
use crate::nbd::{self, NbdServer};
use crate::qmp::Qmp;
use crate::spawner;
use crate::spec::{Accel, DiskImage, VmSpec, check_spec};
use crate::workdir::{
    LOG, NBD_EXPORT, NBD_SOCKET, OVERLAY, PIDFILE, QMP_SOCKET, prepare_work_dir, remove_if_present,
    remove_vm_files,
};

/// The QEMU binary.
const QEMU: &str = "qemu-system-x86_64";
/// The Debian package of [`QEMU`].
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// How long QEMU may take to open its QMP socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QEMU may take to end after `quit` before it is killed.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a QMP command may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long QEMU may take to answer `quit`.
pub(crate) const QUIT_TIMEOUT: Duration = Duration::from_secs(2);
/// A Unix socket path must fit `sun_path` (108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;

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
    /// The server of a served disk, stopped once QEMU has ended.
    nbd: Option<NbdServer>,
}

/// Checks `spec` and starts its VM; see the crate documentation.
pub fn start(spec: &VmSpec) -> Result<RunningVm, VmError> {
    check_spec(spec)?;
    let accel = spec.accel.resolve();
    // A bad file is refused before anything is made.
    let checked = match &spec.disk {
        DiskImage::File(path) => Ok(verify_disk(path)?),
        DiskImage::Served(source) => Err(source),
    };
    let work_dir = prepare_work_dir(&spec.work_dir)?;
    let overlay = work_dir.join(OVERLAY);
    let socket = work_dir.join(QMP_SOCKET);
    let nbd_socket = work_dir.join(NBD_SOCKET);
    if socket.as_os_str().len().max(nbd_socket.as_os_str().len()) > SOCKET_PATH_MAX {
        return Err(VmError::InvalidSpec(format!(
            "work directory {} is too long for a Unix socket path (at most {} bytes with `/{NBD_SOCKET}`)",
            work_dir.display(),
            SOCKET_PATH_MAX
        )));
    }
    for leftover in [OVERLAY, PIDFILE, QMP_SOCKET, LOG, NBD_SOCKET] {
        remove_if_present(&work_dir.join(leftover))?;
    }
    // A served disk's server runs before QEMU, which connects at start,
    // and lives in the RunningVm until QEMU has ended.
    let (disk, nbd) = match checked {
        Ok(disk) => {
            create_overlay(&disk, &overlay)?;
            (disk, None)
        }
        Err(source) => {
            let server = NbdServer::serve(&nbd_socket, NBD_EXPORT, Arc::clone(source))?;
            let size = inspect_served(&nbd::uri(&nbd_socket, NBD_EXPORT), &nbd_socket)?;
            create_sized_overlay(&overlay, size)?;
            (nbd_socket.clone(), Some(server))
        }
    };
    let base = match nbd {
        None => BaseFile::File(&disk),
        Some(_) => BaseFile::Nbd(&disk),
    };
    let log = File::create(work_dir.join(LOG)).map_err(io_error("creating the QEMU log"))?;
    let args = qemu_args(spec, accel, base, &work_dir);
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
        nbd,
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

    /// QEMU's run state (`query-status`): `running`, `paused`, `io-error`
    /// (paused by a failed read of a served disk), …
    pub fn run_state(&self) -> Result<String, VmError> {
        let status = self.qmp("query-status", None)?;
        Ok(status
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Resumes a paused guest (QMP `cont`); QEMU retries the request that
    /// failed.
    pub fn resume(&self) -> Result<(), VmError> {
        self.qmp("cont", None).map(drop)
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
        if let Some(server) = self.nbd.take() {
            server.stop();
        }
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

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

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
}
