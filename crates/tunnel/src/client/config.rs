//! A client tunnel's settings, as a cloudlet's deployment answer gives
//! them.

use std::net::{Ipv4Addr, SocketAddr};

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

/// Never prints the private key.
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
