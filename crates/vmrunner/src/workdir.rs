//! The work directory a VM keeps its files in: their names, the one home
//! of that layout (QEMU's arguments, starting, stopping and the cleanup of
//! leftovers all use it), the directory's creation (mode 0700) and the
//! removal of those files.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{VmError, io_error};

/// The overlay's file name in the work directory.
pub const OVERLAY: &str = "overlay.qcow2";
/// QEMU's pidfile in the work directory ([`cleanup_leftovers`](crate::cleanup_leftovers) looks for it).
pub const PIDFILE: &str = "qemu.pid";
/// The QMP socket in the work directory.
pub const QMP_SOCKET: &str = "qmp.sock";
/// QEMU's standard error, kept to explain a failed start.
pub const LOG: &str = "qemu.log";
/// The socket a served disk's NBD server listens on.
pub const NBD_SOCKET: &str = "disk.sock";
/// The export name of a served disk.
pub const NBD_EXPORT: &str = "disk";

pub(crate) fn prepare_work_dir(dir: &Path) -> Result<PathBuf, VmError> {
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

pub(crate) fn remove_if_present(path: &Path) -> Result<(), VmError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("removing {}", path.display()))(e)),
    }
}

/// Removes the files a VM keeps in its work directory.
pub(crate) fn remove_vm_files(work_dir: &Path) -> Result<(), VmError> {
    let mut first = Ok(());
    for name in [OVERLAY, PIDFILE, QMP_SOCKET, LOG, NBD_SOCKET] {
        if let Err(error) = remove_if_present(&work_dir.join(name))
            && first.is_ok()
        {
            first = Err(error);
        }
    }
    first
}
