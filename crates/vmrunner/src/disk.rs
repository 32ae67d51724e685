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

pub(crate) fn create_overlay(disk: &Path, overlay: &Path) -> Result<(), VmError> {
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
