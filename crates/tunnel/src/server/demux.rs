//! The WireGuard demultiplexer: one boringtun session (`Tunn`) per client
//! key on one UDP socket, and which session a datagram belongs to, as
//! boringtun's own `device` routes them: handshake initiations by the
//! static key they carry (after the MAC check of the rate limiter, which
//! asks for cookies under load), everything else by receiver index.
//!
//! Each session also publishes its client's state ([`PeerCounters`]): where
//! it speaks from (it may roam), its traffic and its activity, the latter
//! reported to the activity callback at most once per
//! [`ACTIVITY_INTERVAL`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};

use super::shared::{PeerCounters, ServerShared, lock};
use crate::pipe::random_u64;

/// Handshake messages per second (all clients together) beyond which
/// WireGuard's cookies are required, as in boringtun's device.
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// The activity callback runs at most this often per client key.
const ACTIVITY_INTERVAL: Duration = Duration::from_secs(1);
/// Session indices are 24 bits: boringtun keeps the low 8 bits.
const INDEX_MASK: u32 = 0xff_ffff;

/// One client key: its WireGuard session and where it is.
pub(super) struct Peer {
    /// The session.
    pub tunn: Tunn,
    index: u32,
    /// Where its last authenticated packet came from.
    pub endpoint: Option<SocketAddr>,
    addresses: Vec<Ipv4Addr>,
    counters: Arc<PeerCounters>,
    last_callback: Option<Instant>,
}

impl Peer {
    /// Its addresses inside the tunnel.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// Gives it `address` too (published).
    pub fn add_address(&mut self, address: Ipv4Addr) {
        if !self.addresses.contains(&address) {
            self.addresses.push(address);
            *lock(&self.counters.addresses) = self.addresses.clone();
        }
    }

    /// Takes `addresses` from it (published).
    pub fn remove_addresses(&mut self, addresses: &[Ipv4Addr]) {
        self.addresses.retain(|a| !addresses.contains(a));
        *lock(&self.counters.addresses) = self.addresses.clone();
    }

    /// Counts a datagram sent to it.
    pub fn count_sent(&self, bytes: usize) {
        self.counters
            .tx_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Publishes an authenticated datagram of `bytes` from `from`: which
    /// carried an IP packet (`data`) or completed a `handshake`.
    pub fn record_activity(
        &mut self,
        from: SocketAddr,
        bytes: usize,
        data: bool,
        handshake: bool,
        shared: &ServerShared,
    ) {
        // The client may roam: answer where it last spoke from.
        if self.endpoint != Some(from) {
            self.endpoint = Some(from);
            *lock(&self.counters.endpoint) = Some(from);
        }
        let now = Instant::now();
        let stamp = shared.stamp(now);
        let counters = &self.counters;
        counters.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        counters.last_activity.store(stamp, Ordering::Relaxed);
        if data {
            counters.last_data.store(stamp, Ordering::Relaxed);
        }
        if handshake {
            counters.last_handshake.store(stamp, Ordering::Relaxed);
        }
        if self
            .last_callback
            .is_none_or(|last| now.duration_since(last) >= ACTIVITY_INTERVAL)
        {
            self.last_callback = Some(now);
            let callback = lock(&shared.on_activity).clone();
            if let Some(callback) = callback {
                for address in &self.addresses {
                    callback(*address);
                }
            }
        }
    }
}

/// Where a datagram goes.
pub(super) enum Route<'a> {
    /// To the session of this key (if admitted); `handshake`: a handshake
    /// message.
    Session { key: [u8; 32], handshake: bool },
    /// Under load: answer the sender with this cookie instead.
    Cookie(&'a [u8]),
    /// Garbage, a bad MAC, an unknown index: nowhere.
    Drop,
}

/// Every client key's session, by key and by session index.
pub(super) struct Sessions {
    private_key: [u8; 32],
    secret: StaticSecret,
    public: PublicKey,
    keepalive: Option<u16>,
    /// Checks the MACs of handshake messages before anything costly, and
    /// asks for cookies under load.
    limiter: RateLimiter,
    peers: HashMap<[u8; 32], Peer>,
    by_index: HashMap<u32, [u8; 32]>,
    next_index: u32,
}

impl Sessions {
    /// No session yet, for a server with `private_key`.
    pub fn new(private_key: [u8; 32], keepalive: Option<u16>) -> Sessions {
        let secret = StaticSecret::from(private_key);
        let public = PublicKey::from(&secret);
        Sessions {
            limiter: RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT),
            private_key,
            secret,
            public,
            keepalive,
            peers: HashMap::new(),
            by_index: HashMap::new(),
            next_index: (random_u64() as u32) & INDEX_MASK,
        }
    }

    /// Whether `key` is the server's own.
    pub fn is_own_key(&self, key: &[u8; 32]) -> bool {
        *key == self.public.to_bytes()
    }

    /// The session of `key`.
    pub fn get(&self, key: &[u8; 32]) -> Option<&Peer> {
        self.peers.get(key)
    }

    /// The session of `key`, to use.
    pub fn get_mut(&mut self, key: &[u8; 32]) -> Option<&mut Peer> {
        self.peers.get_mut(key)
    }

    /// The session of `key`, new (and published) if it has none.
    pub fn admit(&mut self, key: [u8; 32], shared: &ServerShared) -> &mut Peer {
        let Sessions {
            private_key,
            keepalive,
            peers,
            by_index,
            next_index,
            ..
        } = self;
        peers.entry(key).or_insert_with(|| {
            let index = free_index(next_index, by_index);
            let tunn = Tunn::new(
                StaticSecret::from(*private_key),
                PublicKey::from(key),
                None,
                *keepalive,
                index,
                None,
            );
            let counters = Arc::new(PeerCounters::default());
            lock(&shared.peers).insert(key, Arc::clone(&counters));
            by_index.insert(index, key);
            Peer {
                tunn,
                index,
                endpoint: None,
                addresses: Vec::new(),
                counters,
                last_callback: None,
            }
        })
    }

    /// Ends the session of `key` (unpublished).
    pub fn remove(&mut self, key: &[u8; 32], shared: &ServerShared) {
        if let Some(peer) = self.peers.remove(key) {
            self.by_index.remove(&peer.index);
        }
        lock(&shared.peers).remove(key);
    }

    /// Which session `datagram` from `from` belongs to; a cookie reply is
    /// built in `scratch`.
    pub fn route<'s>(&self, datagram: &[u8], from: IpAddr, scratch: &'s mut [u8]) -> Route<'s> {
        let packet = match self.limiter.verify_packet(Some(from), datagram, scratch) {
            Ok(packet) => packet,
            Err(TunnResult::WriteToNetwork(cookie)) => return Route::Cookie(cookie),
            Err(_) => return Route::Drop, // garbage, or a handshake with a bad MAC
        };
        let by_index = |receiver_idx: u32| self.by_index.get(&(receiver_idx >> 8)).copied();
        let (key, handshake) = match &packet {
            Packet::HandshakeInit(init) => (
                parse_handshake_anon(&self.secret, &self.public, init)
                    .ok()
                    .map(|half| half.peer_static_public),
                true,
            ),
            Packet::HandshakeResponse(p) => (by_index(p.receiver_idx), true),
            Packet::PacketCookieReply(p) => (by_index(p.receiver_idx), false),
            Packet::PacketData(p) => (by_index(p.receiver_idx), false),
        };
        match key {
            Some(key) => Route::Session { key, handshake },
            None => Route::Drop,
        }
    }

    /// Every session, for boringtun's timers; the handshake rate count
    /// starts again.
    pub fn timer_round(&mut self) -> impl Iterator<Item = &mut Peer> {
        self.limiter.reset_count();
        self.peers.values_mut()
    }
}

/// The next free 24-bit session index after `last` (boringtun keeps the
/// low 8 bits); never 0.
fn free_index(last: &mut u32, taken: &HashMap<u32, [u8; 32]>) -> u32 {
    loop {
        *last = (*last + 1) & INDEX_MASK;
        if *last != 0 && !taken.contains_key(last) {
            return *last;
        }
    }
}
