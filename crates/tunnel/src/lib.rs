//! A WireGuard tunnel in user space, with its own TCP/IP stack.
//!
//! The original olive2022 needs a network namespace, a bundled
//! `wireguard-go` and sometimes `sudo` to reach a VM on a cloudlet. Here the
//! whole tunnel lives in our process, as in onetun: boringtun speaks the
//! WireGuard protocol over one UDP socket, smoltcp runs TCP/IP on the tunnel
//! address, DNS queries go through the tunnel to the cloudlet's servers with
//! its search domains, and local TCP connections are forwarded to a service
//! inside the tunnel. No root, no helper binaries, no system configuration.
//!
//! - [`Tunnel`]: start it from a [`TunnelConfig`]; [`TunnelHandle`] resolves
//!   names and opens [`TunnelStream`]s, from any task;
//! - [`forward()`]: accept local connections and relay each through the
//!   tunnel;
//! - the stack itself (one task owning boringtun, smoltcp and the socket) is
//!   private, in `stack`.
//!
//! The other side, for a cloudlet that terminates its clients' tunnels
//! itself: [`TunnelServer`] (in [`server`]) speaks WireGuard with many
//! peers on one UDP socket, answers each client's service names over DNS
//! and relays each client's TCP connections to its own services only.
//!
//! The tunnel settings Sinfonia hands out (keep-alive, addresses, DNS,
//! `ndots:5`) are described in `docs/sinfonia.md`.

mod device;
mod dns_responder;
mod forward;
mod pipe;
mod resolve;
pub mod server;
mod server_stack;
mod stack;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

pub use forward::forward;
pub use resolve::search_order;
pub use server::{
    PeerConfig, PeerStatus, ServerConfig, ServerHandle, Service, TunnelServer, public_key,
};

/// WireGuard's usual MTU inside the tunnel.
pub const DEFAULT_MTU: usize = 1420;
/// The client keep-alive of the Sinfonia tier-3 client.
pub const DEFAULT_KEEPALIVE: u16 = 30;

/// Everything needed to bring a tunnel up.
#[derive(Clone)]
pub struct TunnelConfig {
    /// Our private key.
    pub private_key: [u8; 32],
    /// The cloudlet's public key.
    pub peer_public_key: [u8; 32],
    /// The cloudlet's UDP endpoint.
    pub endpoint: SocketAddr,
    /// Our address inside the tunnel.
    pub address: Ipv4Addr,
    /// Name servers inside the tunnel.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Search domains, tried as resolv.conf does with `ndots:5`.
    pub search_domains: Vec<String>,
    /// Persistent keep-alive in seconds.
    pub keepalive: Option<u16>,
    /// MTU of the tunnel.
    pub mtu: usize,
}

impl std::fmt::Debug for TunnelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelConfig")
            .field("private_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("address", &self.address)
            .field("dns_servers", &self.dns_servers)
            .field("search_domains", &self.search_domains)
            .finish_non_exhaustive()
    }
}

/// What can go wrong in the tunnel.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The local UDP socket could not be set up.
    #[error("cannot open the tunnel's UDP socket: {0}")]
    Socket(#[source] std::io::Error),
    /// No handshake completed with the cloudlet in time.
    #[error(
        "the cloudlet's WireGuard endpoint {endpoint} did not answer the handshake within {seconds} s"
    )]
    Handshake {
        /// Where we sent the handshake.
        endpoint: SocketAddr,
        /// How long we waited.
        seconds: u64,
    },
    /// A name did not resolve through the tunnel.
    #[error("cannot resolve {name} through the tunnel (tried {tried})")]
    Resolve {
        /// The name asked for.
        name: String,
        /// The fully qualified names tried.
        tried: String,
    },
    /// The tunnel has no name server to ask.
    #[error("the tunnel has no DNS server to resolve {0}")]
    NoDnsServer(String),
    /// A TCP connection through the tunnel failed.
    #[error("cannot connect to {0} through the tunnel: {1}")]
    Connect(SocketAddrV4, &'static str),
    /// The tunnel stopped.
    #[error("the tunnel is closed")]
    Closed,
    /// A tunnel server's settings or a peer's are not acceptable.
    #[error("invalid tunnel settings: {0}")]
    Invalid(String),
}

/// A running tunnel. Dropping it (or [`Tunnel::shutdown`]) stops it.
pub struct Tunnel {
    handle: TunnelHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A cheap, cloneable way to use a running tunnel from any task.
#[derive(Clone)]
pub struct TunnelHandle {
    commands: mpsc::Sender<stack::Command>,
    shared: Arc<Shared>,
    endpoint: SocketAddr,
}

/// State the stack publishes to handles.
#[derive(Default)]
struct Shared {
    /// Wakes the stack: a stream has data to send or room to receive.
    wake: Notify,
    /// Set once a handshake completed.
    handshake_done: AtomicBool,
    /// Signalled when the handshake completes.
    handshake: Notify,
    /// Bytes received from and sent to the cloudlet over UDP.
    rx_bytes: AtomicU64,
    tx_bytes: AtomicU64,
}

/// Traffic counters of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// UDP bytes received from the cloudlet.
    pub rx_bytes: u64,
    /// UDP bytes sent to the cloudlet.
    pub tx_bytes: u64,
}

impl Tunnel {
    /// Binds a UDP socket and starts the tunnel on the current Tokio
    /// runtime; the handshake starts at once.
    pub async fn start(config: TunnelConfig) -> Result<Tunnel, TunnelError> {
        let endpoint = config.endpoint;
        let shared = Arc::new(Shared::default());
        let (commands, receiver) = mpsc::channel(64);
        let stack = stack::Stack::new(config, Arc::clone(&shared), receiver).await?;
        let task = tokio::spawn(stack.run());
        Ok(Tunnel {
            handle: TunnelHandle {
                commands,
                shared,
                endpoint,
            },
            task: Some(task),
        })
    }

    /// A handle to use the tunnel from other tasks.
    pub fn handle(&self) -> TunnelHandle {
        self.handle.clone()
    }

    /// Stops the tunnel and waits for its task.
    pub async fn shutdown(mut self) {
        let _ = self.handle.commands.send(stack::Command::Shutdown).await;
        self.handle.shared.wake.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl TunnelHandle {
    /// Waits until a handshake with the cloudlet completed.
    pub async fn wait_handshake(&self, timeout: Duration) -> Result<(), TunnelError> {
        let done = async {
            loop {
                let notified = self.shared.handshake.notified();
                if self.shared.handshake_done.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, done)
            .await
            .map_err(|_| TunnelError::Handshake {
                endpoint: self.endpoint,
                seconds: timeout.as_secs(),
            })
    }

    /// Resolves `name` through the tunnel, trying the search domains as
    /// resolv.conf with `ndots:5` would.
    pub async fn resolve(&self, name: &str) -> Result<Ipv4Addr, TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.send(stack::Command::Resolve {
            name: name.to_owned(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| TunnelError::Closed)?
    }

    /// Opens a TCP connection to `address` through the tunnel.
    pub async fn connect(&self, address: SocketAddrV4) -> Result<TunnelStream, TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.send(stack::Command::Connect { address, reply })
            .await?;
        answer.await.map_err(|_| TunnelError::Closed)?
    }

    /// Traffic so far.
    pub fn stats(&self) -> Stats {
        Stats {
            rx_bytes: self.shared.rx_bytes.load(Ordering::Relaxed),
            tx_bytes: self.shared.tx_bytes.load(Ordering::Relaxed),
        }
    }

    async fn send(&self, command: stack::Command) -> Result<(), TunnelError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| TunnelError::Closed)?;
        self.shared.wake.notify_one();
        Ok(())
    }
}

/// A TCP connection through the tunnel: byte chunks in, byte chunks out.
/// Dropping the sending half (or the whole stream) closes the connection
/// in that direction, as a FIN.
pub struct TunnelStream {
    reader: TunnelReader,
    writer: TunnelWriter,
}

/// The sending half of a [`TunnelStream`].
pub struct TunnelWriter {
    to_stack: mpsc::Sender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// The receiving half of a [`TunnelStream`].
pub struct TunnelReader {
    from_stack: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
}

impl TunnelStream {
    fn new(
        to_stack: mpsc::Sender<Vec<u8>>,
        from_stack: mpsc::Receiver<Vec<u8>>,
        shared: Arc<Shared>,
    ) -> Self {
        TunnelStream {
            reader: TunnelReader {
                from_stack,
                shared: Arc::clone(&shared),
            },
            writer: TunnelWriter { to_stack, shared },
        }
    }

    /// Sends bytes; waits while the connection's buffers are full.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), TunnelError> {
        self.writer.send(data).await
    }

    /// The next bytes received, or `None` once the peer closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.reader.recv().await
    }

    /// Splits into halves that can be used from two tasks.
    pub fn split(self) -> (TunnelReader, TunnelWriter) {
        (self.reader, self.writer)
    }
}

impl TunnelWriter {
    /// Sends bytes; waits while the connection's buffers are full.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), TunnelError> {
        self.to_stack
            .send(data)
            .await
            .map_err(|_| TunnelError::Closed)?;
        self.shared.wake.notify_one();
        Ok(())
    }
}

impl TunnelReader {
    /// The next bytes received, or `None` once the peer closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let chunk = self.from_stack.recv().await;
        // Room freed in the channel: the stack may move more data.
        self.shared.wake.notify_one();
        chunk
    }
}

/// Either half going away is news for the stack (FIN, or data to discard).
impl Drop for TunnelWriter {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}

impl Drop for TunnelReader {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}
