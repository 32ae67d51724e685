//! A read-only NBD server inside our process, so QEMU can read a VM's base
//! disk from us while the cloudlet is still downloading it: reads of bytes
//! already there are answered at once, reads of bytes still on their way
//! wait for them (in the [`BlockSource`]) without holding up the others.
//!
//! [`NbdServer::serve`] listens on a Unix socket (mode 0600) and serves one
//! export; [`uri`] names it for QEMU (`nbd+unix:///EXPORT?socket=PATH`).
//! The protocol is the NBD project's `doc/proto.md`, a subset of it:
//!
//! - the fixed newstyle handshake only, with `NBD_OPT_GO`, `NBD_OPT_INFO`,
//!   `NBD_OPT_EXPORT_NAME`, `NBD_OPT_LIST` and `NBD_OPT_ABORT`; every
//!   other option (structured replies, metadata contexts, TLS, ...) is
//!   answered `NBD_REP_ERR_UNSUP`;
//! - simple replies only; `NBD_CMD_READ` within the export and at most
//!   32 MiB (else `NBD_EINVAL`, and the connection goes on), `NBD_CMD_FLUSH`
//!   (nothing to do), `NBD_CMD_DISC`; writes, trims and write-zeroes are
//!   refused with `NBD_EPERM` (the export is read-only), anything else
//!   with `NBD_EINVAL`;
//! - hostile clients are bounded: option data of at most 4 KiB, at most 32
//!   options before transmission, 30 s per handshake step, 16 reads in
//!   flight per connection, 16 connections; breaking the protocol closes
//!   the connection with a warning in the log (never the data).
//!
//! The rooms, one concern each:
//!
//! - `protocol.rs`: the wire format (magics, flags, codes, messages) and
//!   the limits on what a client may send;
//! - `handshake.rs`: option haggling, up to the start of transmission;
//! - `connection.rs`: one client, its request loop and the threads that
//!   answer its reads;
//! - `socket.rs`: the socket file, made 0600 and removed if still ours;
//! - `server.rs`: [`NbdServer`], the accept loop, the open connections and
//!   the stop.

mod connection;
mod handshake;
mod protocol;
mod server;
mod socket;

use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

pub use server::NbdServer;

/// A read-only disk an NBD export serves; reads may block (bytes still
/// downloading).
pub trait BlockSource: Send + Sync + 'static {
    /// The export's size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (`offset + buf.len() <=
    /// size`, checked by the server before calling). May block; an error
    /// is answered to the client as `EIO`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// Why an NBD server could not start.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// A file is already at the socket path.
    #[error("NBD socket {}: a file is already there", .0.display())]
    SocketExists(PathBuf),
    /// The socket could not be made.
    #[error("NBD socket {}: {what}: {source}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The export name does not fit in an NBD option.
    #[error("NBD export name of {} bytes is too long", .0.len())]
    ExportName(String),
    /// The accept thread could not be started.
    #[error("NBD socket {}: cannot start the accept thread: {source}", path.display())]
    Thread {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// `nbd+unix:///EXPORT?socket=PATH`, the URI qemu-img takes (both parts
/// percent-encoded where a URI needs it).
pub fn uri(socket: &Path, export: &str) -> String {
    format!(
        "nbd+unix:///{}?socket={}",
        percent_encode(export.as_bytes()),
        percent_encode(socket.as_os_str().as_bytes())
    )
}

/// Keeps RFC 3986's unreserved characters and `/`, encodes every other
/// byte (QEMU decodes both the path and the query).
fn percent_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
