//! TCP connections inside the client's stack: each a smoltcp socket and
//! the stack's ends ([`Pipe`]) of its [`TunnelStream`]'s channels. A
//! connection is handed to the application once established; it goes when
//! its socket is closed.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use tokio::sync::{mpsc, oneshot};

use super::shared::Shared;
use super::stream::TunnelStream;
use crate::error::TunnelError;
use crate::pipe::{Pipe, random_u64, smoltcp_duration};

/// Receive and send buffers of each TCP connection: large enough for a
/// scaled window at tens of MiB/s over a few milliseconds of latency.
const TCP_RX_BUFFER: usize = 1 << 20;
const TCP_TX_BUFFER: usize = 512 << 10;
/// Chunks buffered per direction of a stream.
const CHANNEL_CHUNKS: usize = 16;
/// A connection attempt fails after this long without an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An established connection fails after this long without an ACK.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Local ports are taken in turn from this range.
const FIRST_PORT: u16 = 40000;
const LAST_PORT: u16 = 59999;

/// Where a connection is answered from, and the connection.
type Reply = oneshot::Sender<Result<TunnelStream, TunnelError>>;

/// A TCP connection and the stack's ends of its channels.
struct Connection {
    handle: SocketHandle,
    address: SocketAddrV4,
    /// Until established: where to hand the stream, and the stream itself.
    connecting: Option<(Reply, TunnelStream)>,
    /// The stack's ends of the stream's channels.
    pipe: Pipe,
}

/// Every connection of the stack.
pub(super) struct Connections {
    open: Vec<Connection>,
    next_port: u16,
}

impl Connections {
    /// No connection yet; local ports start at a random one.
    pub fn new() -> Connections {
        Connections {
            open: Vec::new(),
            next_port: FIRST_PORT + (random_u64() % u64::from(LAST_PORT - FIRST_PORT + 1)) as u16,
        }
    }

    /// Sends the SYN for a connection to `address`; `reply` gets the
    /// stream once established, or the failure.
    pub fn start(
        &mut self,
        address: SocketAddrV4,
        reply: Reply,
        shared: &Arc<Shared>,
        sockets: &mut SocketSet<'static>,
        iface: &mut Interface,
    ) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_TX_BUFFER]),
        );
        socket.set_nagle_enabled(false); // VNC is interactive
        // ACK when the stack runs: the stack's loop already batches inbound
        // segments (see its BATCH_SEGMENTS), and a delayed-ACK timer on top
        // would only slow the sender's window down.
        socket.set_ack_delay(None);
        socket.set_timeout(Some(smoltcp_duration(CONNECT_TIMEOUT)));
        let remote = (IpAddress::Ipv4(*address.ip()), address.port());
        let local_port = self.take_port();
        if socket.connect(iface.context(), remote, local_port).is_err() {
            let _ = reply.send(Err(TunnelError::Connect(address, "invalid address")));
            return;
        }
        let handle = sockets.add(socket);
        let (to_app, from_stack) = mpsc::channel(CHANNEL_CHUNKS);
        let (to_stack, from_app) = mpsc::channel(CHANNEL_CHUNKS);
        let stream = TunnelStream::new(to_stack, from_stack, Arc::clone(shared));
        self.open.push(Connection {
            handle,
            address,
            connecting: Some((reply, stream)),
            pipe: Pipe::new(to_app, from_app),
        });
    }

    fn take_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port >= LAST_PORT {
            FIRST_PORT
        } else {
            port + 1
        };
        port
    }

    /// Moves bytes and state for every connection; returns whether
    /// anything changed.
    pub fn service(&mut self, sockets: &mut SocketSet<'_>) -> bool {
        let mut changed = false;
        let mut index = 0;
        while index < self.open.len() {
            let connection = &mut self.open[index];
            let socket = sockets.get_mut::<tcp::Socket>(connection.handle);
            changed |= service_connection(connection, socket);
            if socket.state() == tcp::State::Closed && connection.connecting.is_none() {
                let connection = self.open.swap_remove(index);
                sockets.remove(connection.handle);
                changed = true;
            } else {
                index += 1;
            }
        }
        changed
    }

    /// Resets every connection (the stack is stopping).
    pub fn abort_all(&self, sockets: &mut SocketSet<'_>) {
        for connection in &self.open {
            sockets.get_mut::<tcp::Socket>(connection.handle).abort();
        }
    }
}

/// One connection's step; returns whether anything changed.
fn service_connection(connection: &mut Connection, socket: &mut tcp::Socket<'_>) -> bool {
    if let Some((reply, stream)) = connection.connecting.take() {
        match socket.state() {
            tcp::State::SynSent | tcp::State::SynReceived if !reply.is_closed() => {
                connection.connecting = Some((reply, stream));
                return false;
            }
            tcp::State::Closed
            | tcp::State::TimeWait
            | tcp::State::SynSent
            | tcp::State::SynReceived => {
                let _ = reply.send(Err(TunnelError::Connect(
                    connection.address,
                    "refused or timed out",
                )));
                socket.abort();
                connection.pipe.to_app = None;
                return true;
            }
            _ => {
                socket.set_timeout(Some(smoltcp_duration(IDLE_TIMEOUT)));
                if reply.send(Ok(stream)).is_err() {
                    socket.abort();
                }
            }
        }
    }
    connection.pipe.deliver_inbound(socket) | connection.pipe.accept_outbound(socket, usize::MAX)
}
