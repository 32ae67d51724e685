//! A tunnel server's settings and its clients': what they are, and which
//! are acceptable (addresses, names, services), checked before anything
//! is admitted.

use std::net::{Ipv4Addr, SocketAddr};

use crate::error::TunnelError;

/// Everything needed to start a tunnel server.
#[derive(Clone)]
pub struct ServerConfig {
    /// The server's private key.
    pub private_key: [u8; 32],
    /// The UDP address to listen on, e.g. `0.0.0.0:51820` (port 0: any).
    pub listen: SocketAddr,
    /// The server's address inside the tunnel (e.g. `10.5.0.1`), where the
    /// DNS responder answers.
    pub address: Ipv4Addr,
    /// MTU of the tunnel (e.g. [`crate::DEFAULT_MTU`]).
    pub mtu: usize,
    /// Persistent keep-alive towards the clients, in seconds (Sinfonia's
    /// tier 2 uses 10).
    pub keepalive: Option<u16>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("private_key", &"<redacted>")
            .field("listen", &self.listen)
            .field("address", &self.address)
            .field("mtu", &self.mtu)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

/// A client admitted into the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The client's public key.
    pub public_key: [u8; 32],
    /// The client's address inside the tunnel (its /32, e.g. `10.5.0.23`).
    pub address: Ipv4Addr,
    /// The search domain its names live under, e.g.
    /// `bold-tesla.svc.cluster.local`.
    pub search_domain: String,
    /// What this client (from this address) may reach.
    pub services: Vec<Service>,
}

/// A service shown to one client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// Its name under the client's search domain, e.g. `vmi-vnc`.
    pub name: String,
    /// The address the client sees it at, e.g. `10.43.0.1`.
    pub ip: Ipv4Addr,
    /// The TCP port the client connects to, e.g. 5900.
    pub port: u16,
    /// Where connections are relayed, e.g. `127.0.0.1:<QEMU VNC port>`.
    pub target: SocketAddr,
}

/// The public key of a private key.
pub fn public_key(private_key: &[u8; 32]) -> [u8; 32] {
    let secret = boringtun::x25519::StaticSecret::from(*private_key);
    boringtun::x25519::PublicKey::from(&secret).to_bytes()
}

/// Whether `ip` can be a host's address inside the tunnel.
pub(super) fn is_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// Checks a peer's settings; returns its search domain normalised
/// (lower case, without outer dots).
pub(super) fn check_peer(peer: &PeerConfig, server: Ipv4Addr) -> Result<String, TunnelError> {
    let invalid = |why: String| Err(TunnelError::Invalid(why));
    if !is_unicast(peer.address) || peer.address == server {
        return invalid(format!("{} cannot be a client's address", peer.address));
    }
    let domain = peer.search_domain.trim_matches('.').to_ascii_lowercase();
    if !is_dns_name(&domain) {
        return invalid(format!(
            "{:?} is not a valid search domain",
            peer.search_domain
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for service in &peer.services {
        let full = format!("{}.{domain}", service.name);
        if service.name.contains('.') || !is_dns_name(&full) {
            return invalid(format!("{:?} is not a valid service name", service.name));
        }
        if !is_unicast(service.ip) || service.ip == peer.address {
            return invalid(format!("{} cannot be a service address", service.ip));
        }
        if service.port == 0 {
            return invalid(format!("service {} has port 0", service.name));
        }
        if !seen.insert((service.ip, service.port)) {
            return invalid(format!("two services on {}:{}", service.ip, service.port));
        }
    }
    Ok(domain)
}

/// A DNS name of letters, digits, `-` and `_`, labels of 1 to 63 octets,
/// at most 253 in all.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer() -> PeerConfig {
        PeerConfig {
            public_key: [1; 32],
            address: Ipv4Addr::new(10, 5, 0, 2),
            search_domain: "Bold-Tesla.svc.cluster.local.".into(),
            services: vec![Service {
                name: "vmi-vnc".into(),
                ip: Ipv4Addr::new(10, 43, 0, 1),
                port: 5900,
                target: "127.0.0.1:5901"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0; 4], 0))),
            }],
        }
    }

    #[test]
    fn peer_settings_are_checked() {
        let server = Ipv4Addr::new(10, 5, 0, 1);
        assert_eq!(
            check_peer(&peer(), server).ok().as_deref(),
            Some("bold-tesla.svc.cluster.local")
        );
        let mut bad = peer();
        bad.address = server;
        assert!(check_peer(&bad, server).is_err());
        let mut bad = peer();
        bad.search_domain = "a..b".into();
        assert!(check_peer(&bad, server).is_err());
        let mut bad = peer();
        bad.services[0].name = "vmi.vnc".into();
        assert!(check_peer(&bad, server).is_err());
        let mut bad = peer();
        bad.services.push(bad.services[0].clone());
        assert!(check_peer(&bad, server).is_err());
        let mut bad = peer();
        bad.services[0].ip = Ipv4Addr::BROADCAST;
        assert!(check_peer(&bad, server).is_err());
    }

    #[test]
    fn public_keys_are_derived() {
        // RFC 7748, section 6.1: Alice's keys.
        let hex = |text: &str| -> [u8; 32] {
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            bytes.try_into().unwrap()
        };
        let private = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(public_key(&private), public);
    }
}
