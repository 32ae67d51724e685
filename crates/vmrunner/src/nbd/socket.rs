//! The listening socket's file: made with mode 0600 from the start, never
//! over an existing file, and removed at the end only if it is still ours.
//!
//! `bind(2)` creates the file with the process's umask, so for a moment
//! anyone might connect. Hence the socket is bound inside a fresh staging
//! directory of mode 0700 beside the final path, set to 0600 there, and
//! only then hard-linked to the final path (`link(2)` fails if a file is
//! there, with no window for a race); the staging name goes at once.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::NbdError;

/// How long `accept` waits before the accept loop looks at its stop flag.
const ACCEPT_TICK: Duration = Duration::from_millis(100);

/// Staging directories made by this process, for unique names.
static STAGED: AtomicU64 = AtomicU64::new(0);

/// Which file a path named when we made it (device, inode).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId(u64, u64);

/// A listening socket at `path`, mode 0600, whose `accept` returns
/// [`io::ErrorKind::WouldBlock`] after [`ACCEPT_TICK`] without a client.
pub(crate) fn listen(path: &Path) -> Result<(UnixListener, FileId), NbdError> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(NbdError::SocketExists(path.to_path_buf()));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staging = parent.join(format!(
        ".nbd-{}-{}",
        std::process::id(),
        STAGED.fetch_add(1, Ordering::Relaxed)
    ));
    DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(socket_error(
            path,
            "cannot create a staging directory beside it",
        ))?;
    let listener = bind_staged(&staging.join("s"), path);
    // The staging name is only a way in; the final path keeps the socket.
    let _ = fs::remove_file(staging.join("s"));
    let _ = fs::remove_dir(&staging);
    let listener = listener?;
    let finished = fs::symlink_metadata(path)
        .map_err(socket_error(path, "cannot stat it"))
        .and_then(|metadata| {
            let listener =
                with_accept_tick(listener).map_err(socket_error(path, "cannot set its timeout"))?;
            Ok((listener, FileId(metadata.dev(), metadata.ino())))
        });
    if finished.is_err() {
        // Linked, then failed: the file at `path` is ours and useless.
        let _ = fs::remove_file(path);
    }
    finished
}

fn bind_staged(staged: &Path, path: &Path) -> Result<UnixListener, NbdError> {
    let listener = UnixListener::bind(staged).map_err(socket_error(path, "cannot listen"))?;
    fs::set_permissions(staged, Permissions::from_mode(0o600))
        .map_err(socket_error(path, "cannot set its mode"))?;
    fs::hard_link(staged, path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            NbdError::SocketExists(path.to_path_buf())
        } else {
            socket_error(path, "cannot link it into place")(source)
        }
    })?;
    Ok(listener)
}

/// std has no accept timeout, but Linux's `accept(2)` honours the
/// socket's receive timeout, which std sets through [`UnixStream`]: the
/// descriptor passes through that type and back.
fn with_accept_tick(listener: UnixListener) -> io::Result<UnixListener> {
    let as_stream = UnixStream::from(OwnedFd::from(listener));
    as_stream.set_read_timeout(Some(ACCEPT_TICK))?;
    Ok(UnixListener::from(OwnedFd::from(as_stream)))
}

/// Removes the socket file at `path` if it is still the one we made.
pub(crate) fn remove(path: &Path, id: FileId) {
    let ours = fs::symlink_metadata(path).is_ok_and(|m| FileId(m.dev(), m.ino()) == id);
    if !ours {
        tracing::warn!(path = %path.display(), "NBD socket replaced or gone; not removed");
        return;
    }
    if let Err(error) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "cannot remove the NBD socket");
    }
}

/// Makes the error for `what` failing on the socket at `path`.
fn socket_error(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> NbdError {
    let path = path.to_path_buf();
    move |source| NbdError::Socket { path, what, source }
}
