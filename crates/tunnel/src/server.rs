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

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::TunnelError;
use crate::server_stack::{self, Command};

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

/// What the server knows of one client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The client's public key.
    pub public_key: [u8; 32],
    /// Its addresses inside the tunnel.
    pub addresses: Vec<Ipv4Addr>,
    /// Where its last authenticated packet came from.
    pub endpoint: Option<SocketAddr>,
    /// When its last handshake completed.
    pub last_handshake: Option<Instant>,
    /// When its last authenticated packet came (handshakes and keep-alives
    /// included): the client's tunnel is up.
    pub last_activity: Option<Instant>,
    /// When its last IP packet came (keep-alives excluded): the client
    /// used the tunnel.
    pub last_data: Option<Instant>,
    /// UDP bytes received from it (authenticated packets only).
    pub rx_bytes: u64,
    /// UDP bytes sent to it.
    pub tx_bytes: u64,
}

/// The public key of a private key.
pub fn public_key(private_key: &[u8; 32]) -> [u8; 32] {
    let secret = boringtun::x25519::StaticSecret::from(*private_key);
    boringtun::x25519::PublicKey::from(&secret).to_bytes()
}

/// A running tunnel server. Dropping it (or [`TunnelServer::shutdown`])
/// stops it, closing every relayed connection.
pub struct TunnelServer {
    handle: ServerHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A cheap, cloneable way to manage a running server from any task.
#[derive(Clone)]
pub struct ServerHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<ServerShared>,
}

/// Called with a client address when its key shows activity.
pub(crate) type ActivityCallback = Arc<dyn Fn(Ipv4Addr) + Send + Sync>;

/// What the server task publishes to handles.
pub(crate) struct ServerShared {
    /// Wakes the server: a relay moved data or made room.
    pub wake: Notify,
    /// Times below are microseconds since this instant, plus one (0: never).
    pub started: Instant,
    pub local_addr: SocketAddr,
    pub public_key: [u8; 32],
    pub peers: Mutex<HashMap<[u8; 32], Arc<PeerCounters>>>,
    pub on_activity: Mutex<Option<ActivityCallback>>,
}

/// One client key's published state.
#[derive(Default)]
pub(crate) struct PeerCounters {
    pub addresses: Mutex<Vec<Ipv4Addr>>,
    pub endpoint: Mutex<Option<SocketAddr>>,
    pub last_handshake: AtomicU64,
    pub last_activity: AtomicU64,
    pub last_data: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
}

impl ServerShared {
    /// `instant` as stored in [`PeerCounters`].
    pub fn stamp(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.started).as_micros() as u64 + 1
    }

    fn instant(&self, stamp: u64) -> Option<Instant> {
        (stamp > 0).then(|| self.started + std::time::Duration::from_micros(stamp - 1))
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TunnelServer {
    /// Binds the UDP socket and starts the server on the current Tokio
    /// runtime, with no client admitted yet.
    pub async fn start(config: ServerConfig) -> Result<TunnelServer, TunnelError> {
        if !(576..=65535 - 80).contains(&config.mtu) {
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
        let shared = Arc::new(ServerShared {
            wake: Notify::new(),
            started: Instant::now(),
            local_addr,
            public_key: public_key(&config.private_key),
            peers: Mutex::new(HashMap::new()),
            on_activity: Mutex::new(None),
        });
        let (commands, receiver) = mpsc::channel(64);
        let server = server_stack::Server::new(config, udp, Arc::clone(&shared), receiver);
        let task = tokio::spawn(server.run());
        Ok(TunnelServer {
            handle: ServerHandle { commands, shared },
            task: Some(task),
        })
    }

    /// A handle to manage the server from other tasks.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The UDP address the server listens on (its port, when asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Stops the server and waits for its task; every relayed connection
    /// is closed.
    pub async fn shutdown(mut self) {
        let _ = self.handle.commands.send(Command::Shutdown).await;
        self.handle.shared.wake.notify_one();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TunnelServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl ServerHandle {
    /// Admits a client: its key, its address inside the tunnel and what it
    /// may reach from there. Again for a known key and address: the search
    /// domain and services are replaced (open connections stay); a known
    /// key with another address gets that address too. Fails when the
    /// address belongs to another key or the settings make no sense.
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::AddPeer { peer, reply }).await?;
        answer.await.map_err(|_| TunnelError::Closed)?
    }

    /// Removes a client key with all its addresses: its tunnel and every
    /// connection it has are gone at once. Unknown keys are ignored.
    pub async fn remove_peer(&self, public_key: [u8; 32]) {
        let (reply, answer) = oneshot::channel();
        if self
            .send(Command::RemovePeer {
                public_key,
                address: None,
                reply,
            })
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
    }

    /// Removes one address of a client key (its services and connections);
    /// the key goes too when it has no address left.
    pub async fn remove_address(&self, public_key: [u8; 32], address: Ipv4Addr) {
        let (reply, answer) = oneshot::channel();
        if self
            .send(Command::RemovePeer {
                public_key,
                address: Some(address),
                reply,
            })
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
    }

    /// When the client key last showed activity (any authenticated packet,
    /// keep-alives included); `None` if never or unknown.
    pub fn last_activity(&self, public_key: &[u8; 32]) -> Option<Instant> {
        let counters = lock(&self.shared.peers).get(public_key).cloned()?;
        self.shared
            .instant(counters.last_activity.load(Ordering::Relaxed))
    }

    /// Every admitted client key and what is known of it.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let peers: Vec<_> = lock(&self.shared.peers)
            .iter()
            .map(|(key, counters)| (*key, Arc::clone(counters)))
            .collect();
        peers
            .into_iter()
            .map(|(public_key, c)| PeerStatus {
                public_key,
                addresses: lock(&c.addresses).clone(),
                endpoint: *lock(&c.endpoint),
                last_handshake: self
                    .shared
                    .instant(c.last_handshake.load(Ordering::Relaxed)),
                last_activity: self.shared.instant(c.last_activity.load(Ordering::Relaxed)),
                last_data: self.shared.instant(c.last_data.load(Ordering::Relaxed)),
                rx_bytes: c.rx_bytes.load(Ordering::Relaxed),
                tx_bytes: c.tx_bytes.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Calls `callback` with each address of a client key when that key
    /// shows activity, at most once a second per key. It runs on the
    /// server's task: it must be quick and must not block. Replaces any
    /// earlier callback.
    pub fn on_activity(&self, callback: impl Fn(Ipv4Addr) + Send + Sync + 'static) {
        *lock(&self.shared.on_activity) = Some(Arc::new(callback));
    }

    /// The UDP address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The server's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.shared.public_key
    }

    async fn send(&self, command: Command) -> Result<(), TunnelError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| TunnelError::Closed)?;
        self.shared.wake.notify_one();
        Ok(())
    }
}

/// Whether `ip` can be a host's address inside the tunnel.
pub(crate) fn is_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// Checks a peer's settings; returns its search domain normalised
/// (lower case, without outer dots).
pub(crate) fn check_peer(peer: &PeerConfig, server: Ipv4Addr) -> Result<String, TunnelError> {
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
