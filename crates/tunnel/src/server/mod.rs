//! The server side of the tunnel, for a cloudlet that terminates its
//! clients' WireGuard tunnels itself, in user space.
//!
//! One [`TunnelServer`] owns one UDP socket and speaks WireGuard with every
//! admitted client (one boringtun session per client key, packets routed as
//! boringtun's own `device` does: handshake initiations by the static key
//! they carry, everything else by receiver index; each client's endpoint
//! follows where its authenticated packets come from). Behind them, every
//! client *address* (a /32, e.g. `10.5.0.23`) gets its own small TCP/IP
//! stack (smoltcp) that knows only that client's services:
//!
//! - a DNS responder on UDP port 53 of the server address (e.g.
//!   `10.5.0.1`): `<service>.<search domain>` → the service address, for
//!   the asking client's own names only; anything else NXDOMAIN;
//! - a TCP listener on each service address and port, relayed to the
//!   service's target (e.g. QEMU's VNC on `127.0.0.1:5901`) with a Tokio
//!   `TcpStream`; any other address or port is refused (RST).
//!
//! Isolation: a decrypted packet enters the stack of its source address
//! only if the client key owns that address (anything else is dropped, as
//! WireGuard's allowed IPs would), and packets leave a stack only to the
//! key owning its address. Two clients may so be shown the same service
//! address; each reaches its own target, and never the other's.
//!
//! Activity (any authenticated packet from a client, keep-alives
//! included) is published for lease expiry: [`ServerHandle::last_activity`],
//! [`ServerHandle::peers`], and a callback ([`ServerHandle::on_activity`]).
//!
//! The room:
//!
//! - `mod` (here): [`TunnelServer`], starting and stopping the task;
//! - `handle`: [`ServerHandle`], [`PeerStatus`] and the commands handles
//!   send to the task;
//! - `config`: [`ServerConfig`], [`PeerConfig`], [`Service`],
//!   [`public_key`] and the checks of a client's settings;
//! - `shared`: what the task publishes to handles (counters, callback);
//! - `engine`: the task itself, its loop, admitting and removing clients;
//! - `demux`: one WireGuard session per client key, and which session a
//!   datagram belongs to;
//! - `admission`: which packets may enter and leave a client's stack;
//! - `client_stack`: the TCP/IP stack of one client address (DNS,
//!   listeners, connections);
//! - `dns_responder`: the DNS messages of that stack, by hand (its parser
//!   is reachable from outside through [`answer_for_one_name`], for fuzzing);
//! - `relay`: a relayed connection and its task towards the target;
//! - `congestion`: the congestion control of relayed connections.
//!
//! Imports run one way: `mod` → `engine` → `demux`, `client_stack` →
//! `relay` → `congestion`; `handle`, `config`, `shared` and `admission`
//! are used from above and use nothing above them.

mod admission;
mod client_stack;
mod config;
mod congestion;
mod demux;
mod dns_responder;
mod engine;
mod handle;
mod relay;
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{PeerConfig, ServerConfig, Service, public_key};
pub use dns_responder::answer_for_one_name;
pub use handle::{PeerStatus, ServerHandle};

use crate::error::TunnelError;
use crate::worker::{Mailbox, Worker};
use config::is_unicast;
use handle::Command;
use shared::ServerShared;

/// The MTUs a server accepts: IPv4's minimum, up to what fits a UDP
/// datagram with WireGuard's overhead.
const MTU_RANGE: std::ops::RangeInclusive<usize> = 576..=65535 - 80;

/// A running tunnel server. Dropping it (or [`TunnelServer::shutdown`])
/// stops it, closing every relayed connection.
pub struct TunnelServer {
    worker: Worker<Command, ServerShared>,
}

impl TunnelServer {
    /// Binds the UDP socket and starts the server on the current Tokio
    /// runtime, with no client admitted yet.
    pub async fn start(config: ServerConfig) -> Result<TunnelServer, TunnelError> {
        if !MTU_RANGE.contains(&config.mtu) {
            return Err(TunnelError::Invalid(format!(
                "MTU {} is out of range (576 to 65455)",
                config.mtu
            )));
        }
        if !is_unicast(config.address) {
            return Err(TunnelError::Invalid(format!(
                "{} cannot be the server's tunnel address",
                config.address
            )));
        }
        let udp = crate::pipe::udp_socket(config.listen).map_err(TunnelError::Socket)?;
        let local_addr = udp.local_addr().map_err(TunnelError::Socket)?;
        let shared = ServerShared::new(local_addr, public_key(&config.private_key));
        let (mailbox, commands) = Mailbox::new(Arc::new(shared));
        let server = engine::Server::new(config, udp, Arc::clone(mailbox.shared()), commands);
        Ok(TunnelServer {
            worker: Worker::spawn(mailbox, server.run()),
        })
    }

    /// A handle to manage the server from other tasks.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(self.worker.mailbox().clone())
    }

    /// The UDP address the server listens on (its port, when asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.worker.mailbox().shared().local_addr
    }

    /// Stops the server and waits for its task; every relayed connection
    /// is closed.
    pub async fn shutdown(self) {
        self.worker.shutdown().await;
    }
}
