//! Managing a running server from any task: [`ServerHandle`] admits and
//! removes clients through [`Command`]s to the server's task, and reads
//! what the task publishes ([`PeerStatus`], activity).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::oneshot;

use super::config::PeerConfig;
use super::shared::{ServerShared, lock};
use crate::error::TunnelError;
use crate::worker::{Mailbox, Stop};

/// What handles ask of the server.
pub(crate) enum Command {
    AddPeer {
        peer: PeerConfig,
        reply: oneshot::Sender<Result<(), TunnelError>>,
    },
    RemovePeer {
        public_key: [u8; 32],
        address: Option<Ipv4Addr>,
        reply: oneshot::Sender<()>,
    },
    Shutdown,
}

impl Stop for Command {
    fn stop() -> Self {
        Command::Shutdown
    }
}

/// A cheap, cloneable way to manage a running server from any task.
#[derive(Clone)]
pub struct ServerHandle {
    mailbox: Mailbox<Command, ServerShared>,
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

impl ServerHandle {
    /// A handle on the task behind `mailbox`.
    pub(super) fn new(mailbox: Mailbox<Command, ServerShared>) -> Self {
        ServerHandle { mailbox }
    }

    /// Admits a client: its key, its address inside the tunnel and what it
    /// may reach from there. Again for a known key and address: the search
    /// domain and services are replaced (open connections stay); a known
    /// key with another address gets that address too. Fails when the
    /// address belongs to another key or the settings make no sense.
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), TunnelError> {
        self.mailbox
            .ask(|reply| Command::AddPeer { peer, reply })
            .await?
    }

    /// Removes a client key with all its addresses: its tunnel and every
    /// connection it has are gone at once. Unknown keys are ignored.
    pub async fn remove_peer(&self, public_key: [u8; 32]) {
        let _ = self
            .mailbox
            .ask(|reply| Command::RemovePeer {
                public_key,
                address: None,
                reply,
            })
            .await;
    }

    /// Removes one address of a client key (its services and connections);
    /// the key goes too when it has no address left.
    pub async fn remove_address(&self, public_key: [u8; 32], address: Ipv4Addr) {
        let _ = self
            .mailbox
            .ask(|reply| Command::RemovePeer {
                public_key,
                address: Some(address),
                reply,
            })
            .await;
    }

    /// When the client key last showed activity (any authenticated packet,
    /// keep-alives included); `None` if never or unknown.
    pub fn last_activity(&self, public_key: &[u8; 32]) -> Option<Instant> {
        let shared = self.mailbox.shared();
        let counters = lock(&shared.peers).get(public_key).cloned()?;
        shared.instant(counters.last_activity.load(Ordering::Relaxed))
    }

    /// Every admitted client key and what is known of it.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let shared = self.mailbox.shared();
        let peers: Vec<_> = lock(&shared.peers)
            .iter()
            .map(|(key, counters)| (*key, Arc::clone(counters)))
            .collect();
        peers
            .into_iter()
            .map(|(public_key, c)| PeerStatus {
                public_key,
                addresses: lock(&c.addresses).clone(),
                endpoint: *lock(&c.endpoint),
                last_handshake: shared.instant(c.last_handshake.load(Ordering::Relaxed)),
                last_activity: shared.instant(c.last_activity.load(Ordering::Relaxed)),
                last_data: shared.instant(c.last_data.load(Ordering::Relaxed)),
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
        *lock(&self.mailbox.shared().on_activity) = Some(Arc::new(callback));
    }

    /// The UDP address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.mailbox.shared().local_addr
    }

    /// The server's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.mailbox.shared().public_key
    }
}
