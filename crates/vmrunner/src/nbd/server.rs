//! [`NbdServer`]: the listening socket, the thread that accepts clients,
//! the register of open connections, and the stop that ends them all.
//!
//! Every connection has a thread of its own (the handshake, then the
//! request loop), at most [`MAX_CONNECTIONS`] at once. Stopping sets a
//! flag the accept loop sees within a tick, shuts every connection's
//! socket down (which wakes its thread wherever it waits), joins those
//! threads and removes the socket. Reads blocked in the source are left to
//! finish on their detached threads; nothing waits for them.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::connection::{Connection, serve_client};
use super::handshake::Export;
use super::protocol::MAX_OPTION_LENGTH;
use super::socket::{self, FileId};
use super::{BlockSource, NbdError};

/// How many clients may be connected at once (QEMU needs one per disk).
const MAX_CONNECTIONS: usize = 16;
/// The pause after a failed `accept` (e.g. out of descriptors), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// An NBD server on a Unix socket serving one export until stopped or
/// dropped.
pub struct NbdServer {
    socket: PathBuf,
    socket_id: FileId,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the accept loop and the connection threads share.
struct Shared {
    stopping: AtomicBool,
    clients: Mutex<Clients>,
    export: Export,
    source: Arc<dyn BlockSource>,
}

/// The open connections, by an id of ours (for the logs).
#[derive(Default)]
struct Clients {
    next_id: u64,
    open: HashMap<u64, Client>,
}

struct Client {
    connection: Arc<Connection>,
    /// `None` for the moment between registering and spawning.
    thread: Option<JoinHandle<()>>,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, Clients> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl NbdServer {
    /// Listens on `socket` (created with mode 0600; an existing file there
    /// is an error) and serves `source` under the export name `export`.
    pub fn serve(
        socket: &Path,
        export: &str,
        source: Arc<dyn BlockSource>,
    ) -> Result<NbdServer, NbdError> {
        // NBD_OPT_GO carries the name with 6 more bytes, within our bound.
        if export.len() > MAX_OPTION_LENGTH as usize - 6 {
            return Err(NbdError::ExportName(export.to_owned()));
        }
        let (listener, socket_id) = socket::listen(socket)?;
        let size = source.size();
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            clients: Mutex::new(Clients::default()),
            export: Export {
                name: export.to_owned(),
                size,
            },
            source,
        });
        let acceptor = thread::Builder::new().name("nbd-accept".into()).spawn({
            let shared = Arc::clone(&shared);
            move || accept_loop(&listener, &shared)
        });
        let acceptor = match acceptor {
            Ok(acceptor) => acceptor,
            Err(source) => {
                socket::remove(socket, socket_id);
                let path = socket.to_path_buf();
                return Err(NbdError::Thread { path, source });
            }
        };
        tracing::debug!(socket = %socket.display(), export, size, "NBD server listening");
        Ok(NbdServer {
            socket: socket.to_path_buf(),
            socket_id,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops accepting, closes every connection, joins the threads,
    /// removes the socket. Bounded in time even when a read is blocked in
    /// the source: such reads are not waited for, their replies dropped.
    pub fn stop(self) {
        drop(self);
    }

    fn shut_down(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Sees the flag within one accept tick.
        let _ = acceptor.join();
        let clients: Vec<Client> = self.shared.clients().open.drain().map(|(_, c)| c).collect();
        for client in &clients {
            client.connection.close();
        }
        for thread in clients.into_iter().filter_map(|client| client.thread) {
            let _ = thread.join();
        }
        socket::remove(&self.socket, self.socket_id);
        tracing::debug!(socket = %self.socket.display(), "NBD server stopped");
    }
}

impl fmt::Debug for NbdServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NbdServer")
            .field("socket", &self.socket)
            .field("export", &self.shared.export.name)
            .finish_non_exhaustive()
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => admit(stream, shared),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => {
                tracing::warn!(%error, "NBD server cannot accept a client");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Registers a new client and starts its thread.
fn admit(stream: UnixStream, shared: &Arc<Shared>) {
    let connection = match Connection::new(&stream) {
        Ok(connection) => Arc::new(connection),
        Err(error) => {
            tracing::warn!(%error, "NBD server cannot set up a connection");
            return;
        }
    };
    let id = {
        let mut clients = shared.clients();
        if clients.open.len() >= MAX_CONNECTIONS {
            tracing::warn!("NBD server has {MAX_CONNECTIONS} clients already; refusing one more");
            return;
        }
        clients.next_id += 1;
        let id = clients.next_id;
        let connection = Arc::clone(&connection);
        clients.open.insert(
            id,
            Client {
                connection,
                thread: None,
            },
        );
        id
    };
    tracing::debug!(connection = id, "NBD connection opened");
    let spawned = thread::Builder::new().name("nbd-connection".into()).spawn({
        let shared = Arc::clone(shared);
        move || {
            serve_client(stream, &connection, &shared.export, &shared.source);
            shared.clients().open.remove(&id);
            tracing::debug!(connection = id, "NBD connection closed");
        }
    });
    let mut clients = shared.clients();
    match spawned {
        // Already gone from the register if the client was quick: the
        // thread has ended and its handle can go.
        Ok(thread) => {
            if let Some(client) = clients.open.get_mut(&id) {
                client.thread = Some(thread);
            }
        }
        Err(error) => {
            tracing::warn!(%error, "NBD server cannot start a connection thread");
            clients.open.remove(&id);
        }
    }
}
