//! The one error type of the crate, shared by the client and the server.

use std::net::{SocketAddr, SocketAddrV4};

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
