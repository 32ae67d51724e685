//! Reading and atomically replacing the small text files we edit.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file operation that failed: what, where, and the system's error.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", .path.display())]
pub struct FileError {
    /// The operation, such as "cannot replace".
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

fn failed(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError { what, path, source }
}

/// The text of `path`, or an empty text when it does not exist.
pub fn read_optional(path: &Path) -> Result<String, FileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(failed("cannot read", path)(error)),
    }
}

/// Replaces `path` with `contents` through a temporary file in the same
/// directory and a rename; a symlink's target is what gets replaced, and an
/// existing file keeps its permissions (a new one gets `mode`).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    let path = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    };
    let dir = path.parent().ok_or_else(|| FileError {
        what: "no parent directory for",
        path: path.clone(),
        source: ErrorKind::InvalidInput.into(),
    })?;
    std::fs::create_dir_all(dir).map_err(failed("cannot create", dir))?;
    let mode = std::fs::metadata(&path).map_or(mode, |meta| meta.permissions().mode() & 0o7777);
    let mut file = tempfile::Builder::new()
        .prefix(".olive2022-")
        .tempfile_in(dir)
        .map_err(failed("cannot create a temporary file in", dir))?;
    let write = |file: &mut tempfile::NamedTempFile| -> std::io::Result<()> {
        file.write_all(contents)?;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.as_file().sync_all()
    };
    write(&mut file).map_err(failed("cannot write", &path))?;
    file.persist(&path)
        .map_err(|error| failed("cannot replace", &path)(error.error))?;
    Ok(())
}
