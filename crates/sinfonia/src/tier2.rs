//! What a Sinfonia tier 2 promises its clients inside the tunnel.
//!
//! Sinfonia's tier 2 (Kubernetes with the Kilo WireGuard mesh) gives every
//! client one /32 from `10.5.0.0/16`, keeps the first host address for
//! itself, and keeps the tunnel alive from its side every 10 s. Our
//! embedded cloudlet and the test stand-in of a real one both follow these
//! numbers, so they are defined here, once.

use std::net::Ipv4Addr;

/// The client network: every client gets a /32 in it.
pub const CLIENT_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 0);
/// The prefix length of [`CLIENT_NETWORK`].
pub const CLIENT_PREFIX: u8 = 16;
/// The cloudlet's own address in the client network: the tunnel server's
/// address, where its DNS answers.
pub const TUNNEL_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 1);
/// The persistent keep-alive, in seconds, the cloudlet sets towards each
/// client (the client's own is 30 s).
pub const SERVER_KEEPALIVE_SECS: u16 = 10;
