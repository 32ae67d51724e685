//! The cached disk, before QEMU sees it: `qemu-img info` and `qemu-img
//! check` make sure it is a qcow2 image standing alone and not corrupt
//! ([`check_disk`]), and `qemu-img create` puts the throw-away overlay on
//! top of it. Apart from starting because a pulled image is untrusted input
//! and its checks are explained on their own in `docs/qcow2.md`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::{VmError, missing_or_io};

/// `qemu-img` and its Debian package.
const QEMU_IMG: &str = "qemu-img";
const QEMU_IMG_PACKAGE: &str = "qemu-utils";

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
    let info = image_info(&[disk.as_os_str()]).map_err(bad)?;
    check_standalone(&info).map_err(bad)?;
    Ok(disk)
}

/// Checks a served disk as [`check_disk`] checks a file, from its header
/// only (`qemu-img check` would read all its metadata over the network
/// before the VM starts); returns its virtual size. The cache entry it
/// becomes is checked in full when a VM next starts from it.
pub(crate) fn inspect_served(uri: &str, socket: &Path) -> Result<u64, VmError> {
    let bad = |reason: String| VmError::Disk {
        path: socket.to_owned(),
        reason,
    };
    let info = image_info(&["-f".as_ref(), "qcow2".as_ref(), uri.as_ref()]).map_err(bad)?;
    check_standalone(&info).map_err(bad)?;
    info.get("virtual-size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("qemu-img info gave no virtual size".into()))
}

/// `qemu-img info -U --output=json ARGS`, parsed.
fn image_info(args: &[&std::ffi::OsStr]) -> Result<Value, String> {
    let output = Command::new(QEMU_IMG)
        .args(["info", "-U", "--output=json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_or_io(QEMU_IMG, QEMU_IMG_PACKAGE, e).to_string())?;
    if !output.status.success() {
        return Err(format!(
            "not a readable disk image: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("qemu-img info gave no JSON: {e}"))
}

/// A qcow2 image standing alone (no backing file, no external data file:
/// a pulled image must not make QEMU open host files), not marked corrupt.
fn check_standalone(info: &Value) -> Result<(), String> {
    let format = info.get("format").and_then(Value::as_str).unwrap_or("?");
    if format != "qcow2" {
        return Err(format!("a {format} image, not qcow2"));
    }
    if let Some(backing) = info.get("backing-filename").and_then(Value::as_str) {
        return Err(format!(
            "has a backing file ({backing:?}); a cached disk must stand alone"
        ));
    }
    let data = &info["format-specific"]["data"];
    if let Some(file) = data.get("data-file").and_then(Value::as_str) {
        return Err(format!(
            "has an external data file ({file:?}); a cached disk must stand alone"
        ));
    }
    if data.get("corrupt").and_then(Value::as_bool) == Some(true) {
        return Err("marked corrupt".into());
    }
    Ok(())
}

/// Checks a disk as [`start`](crate::start) does: `qemu-img info` (a qcow2 image
/// standing alone, without backing file or external data file, not marked
/// corrupt), then `qemu-img check` (no corruption; leaked clusters, harmless
/// to an image only read, are accepted). About 15 ms for the 3 GiB
/// benchmark disk: `check` reads only metadata.
pub fn check_disk(disk: &Path) -> Result<(), VmError> {
    verify_disk(disk).map(drop)
}

/// [`check_disk`]; returns the disk's canonical path.
pub(crate) fn verify_disk(disk: &Path) -> Result<PathBuf, VmError> {
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

/// `qemu-img create` of the overlay on the cached `disk`.
pub(crate) fn create_overlay(disk: &Path, overlay: &Path) -> Result<(), VmError> {
    let mut args: Vec<&std::ffi::OsStr> = ["-F", "qcow2", "-b"].map(AsRef::as_ref).to_vec();
    args.push(disk.as_os_str());
    args.push(overlay.as_os_str());
    run_create(&args, overlay)
}

/// `qemu-img create` of an overlay of `size` bytes without a backing file
/// in its header: QEMU's `-blockdev` graph gives it its base (a served
/// disk has no path to name).
pub(crate) fn create_sized_overlay(overlay: &Path, size: u64) -> Result<(), VmError> {
    let size = size.to_string();
    run_create(&[overlay.as_os_str(), size.as_ref()], overlay)
}

fn run_create(args: &[&std::ffi::OsStr], overlay: &Path) -> Result<(), VmError> {
    let output = Command::new(QEMU_IMG)
        .args(["create", "-q", "-f", "qcow2"])
        .args(args)
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
