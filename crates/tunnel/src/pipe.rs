//! What the client and the server stacks share: moving bytes between a
//! smoltcp TCP socket and the bounded channels of the task on the other
//! side, the tunnel's UDP socket, seeds, and smoltcp's durations.
//!
//! Flow control comes from the bounds: bytes leave a socket only when the
//! reader's channel has room, and enter it only when its send buffer (and,
//! on the server, the congestion window) has room. A closed channel is a
//! FIN in that direction.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};

use smoltcp::socket::tcp;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

/// Largest chunk handed to the other side at once.
pub(crate) const CHUNK: usize = 64 << 10;

/// Receive and send buffers asked for the UDP socket: at tens of MiB/s the
/// default (about 200 KiB) overflows within milliseconds, and every
/// datagram lost there is a TCP segment to retransmit. Unprivileged
/// processes get up to `net.core.rmem_max`.
const UDP_BUFFER: usize = 4 << 20;

/// The stack's ends of one connection's channels.
pub(crate) struct Pipe {
    pub to_app: Option<mpsc::Sender<Vec<u8>>>,
    pub from_app: mpsc::Receiver<Vec<u8>>,
    /// A chunk partly written into the socket.
    pub pending: Option<(Vec<u8>, usize)>,
    pub fin_sent: bool,
}

impl Pipe {
    /// The stack's ends of a connection.
    pub fn new(to_app: mpsc::Sender<Vec<u8>>, from_app: mpsc::Receiver<Vec<u8>>) -> Pipe {
        Pipe {
            to_app: Some(to_app),
            from_app,
            pending: None,
            fin_sent: false,
        }
    }

    /// Socket → channel, while the channel has room; returns whether
    /// anything changed. When the peer closed and everything was
    /// delivered, the channel is closed (end of stream).
    pub fn deliver_inbound(&mut self, socket: &mut tcp::Socket<'_>) -> bool {
        let mut changed = false;
        while socket.can_recv() {
            let reader_gone = match &self.to_app {
                None => true,
                Some(to_app) => match to_app.try_reserve() {
                    Ok(permit) => {
                        if let Ok(chunk) = socket.recv(|bytes| {
                            let n = bytes.len().min(CHUNK);
                            (n, bytes[..n].to_vec())
                        }) {
                            permit.send(chunk);
                            changed = true;
                        }
                        false
                    }
                    Err(TrySendError::Full(())) => break,
                    Err(TrySendError::Closed(())) => true,
                },
            };
            if reader_gone {
                // Nobody reads any more: drop what arrives.
                self.to_app = None;
                changed |= socket.recv(|bytes| (bytes.len(), ())).is_ok();
            }
        }
        if !socket.may_recv() && !socket.can_recv() && self.to_app.take().is_some() {
            changed = true;
        }
        changed
    }

    /// Channel → socket, while the socket holds less than `window` bytes;
    /// a closed channel sends FIN. Returns whether anything changed.
    pub fn accept_outbound(&mut self, socket: &mut tcp::Socket<'_>, window: usize) -> bool {
        let mut changed = false;
        loop {
            let room = window.saturating_sub(socket.send_queue());
            if let Some((data, offset)) = &mut self.pending {
                let end = data.len().min(offset.saturating_add(room));
                let written = socket.send_slice(&data[*offset..end]).unwrap_or(0);
                *offset += written;
                changed |= written > 0;
                if *offset < data.len() {
                    return changed;
                }
                self.pending = None;
            }
            if !socket.can_send() || socket.send_queue() >= window {
                return changed;
            }
            match self.from_app.try_recv() {
                Ok(data) => self.pending = Some((data, 0)),
                Err(TryRecvError::Empty) => return changed,
                Err(TryRecvError::Disconnected) => {
                    if !self.fin_sent {
                        socket.close();
                        self.fin_sent = true;
                        changed = true;
                    }
                    return changed;
                }
            }
        }
    }
}

/// A non-blocking UDP socket bound to `address`, with large buffers.
pub(crate) fn udp_socket(address: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let domain = match address {
        SocketAddr::V4(_) => Domain::IPV4,
        SocketAddr::V6(_) => Domain::IPV6,
    };
    let socket = Socket::new(domain, Type::DGRAM, None)?;
    // Best effort: smaller buffers only cost throughput.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// The unspecified address of `endpoint`'s family, any port: where a
/// client binds.
pub(crate) fn any_address_for(endpoint: SocketAddr) -> SocketAddr {
    match endpoint {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// A seed for smoltcp and boringtun indexes (not for keys).
pub(crate) fn random_u64() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A Tokio-side duration as smoltcp's.
pub(crate) fn smoltcp_duration(duration: std::time::Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_millis(duration.as_millis() as u64)
}
