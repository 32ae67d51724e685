//! Why a VM could not be started, queried or stopped: [`VmError`] and the
//! small helpers every room builds it with (an I/O error named by what was
//! being done, a missing program named with its Debian package, the end of
//! QEMU's log). One home, so every failure reads the same way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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
    /// The NBD server of a served disk could not start.
    #[error(transparent)]
    Nbd(#[from] crate::nbd::NbdError),
}

fn log_suffix(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(": {log}")
    }
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> VmError {
    let what = what.into();
    move |source| VmError::Io { what, source }
}

pub(crate) fn missing_or_io(
    program: &'static str,
    package: &'static str,
    error: io::Error,
) -> VmError {
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
pub(crate) fn read_log(path: &Path) -> String {
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
