//! What an earlier run left behind: [`cleanup_leftovers`] finds the work
//! directories under a root, ends the QEMU processes their pidfiles name
//! (after making sure through `/proc` that the pid is still that QEMU) and
//! removes their files. Apart from `running` because it
//! deals with processes this process never started.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::qmp::Qmp;
use crate::running::{QUIT_TIMEOUT, STOP_TIMEOUT};
use crate::workdir::{OVERLAY, PIDFILE, QMP_SOCKET, remove_vm_files};

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
