//! The tunnel server's engine: one task that owns the UDP socket, the
//! WireGuard sessions (`demux`) and one TCP/IP stack per client address
//! (`client_stack`).
//!
//! As in the client's stack, everything happens in one loop and nothing
//! needs a lock: datagrams are routed to their client's session and
//! decrypted into the stack of their source address (if the key owns it,
//! see `admission`), packets the stacks emit are encrypted for the key
//! owning their destination, boringtun's timers run every 250 ms, and
//! bytes move between smoltcp sockets and the channels of relay tasks.
//! Flow control comes from the bounded channels, as in the client.

use sinfonia::keys::short_key;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::TunnResult;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::admission::inbound_source;
use super::client_stack::ClientStack;
use super::config::{PeerConfig, ServerConfig, check_peer};
use super::demux::{Route, Sessions};
use super::handle::Command;
use super::shared::ServerShared;
use crate::error::TunnelError;

/// How often boringtun's timers run.
const TIMER_TICK: Duration = Duration::from_millis(250);
/// Datagrams taken at once before the stacks run.
const MAX_BURST: usize = 256;
/// Rounds of work done before looking at the socket and timers again.
const MAX_ROUNDS: usize = 64;

/// The task's state.
pub(crate) struct Server {
    shared: Arc<ServerShared>,
    commands: mpsc::Receiver<Command>,
    udp: UdpSocket,
    address: Ipv4Addr,
    mtu: usize,
    sessions: Sessions,
    nets: HashMap<Ipv4Addr, ClientStack>,
    /// Scratch space for boringtun's output.
    scratch: Vec<u8>,
}

impl Server {
    /// A server on `udp` with no client yet; nothing runs until [`run`](Self::run).
    pub fn new(
        config: ServerConfig,
        udp: UdpSocket,
        shared: Arc<ServerShared>,
        commands: mpsc::Receiver<Command>,
    ) -> Server {
        Server {
            sessions: Sessions::new(config.private_key, config.keepalive),
            shared,
            commands,
            udp,
            address: config.address,
            mtu: config.mtu,
            nets: HashMap::new(),
            scratch: vec![0; 65536 + 64],
        }
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.shared.started.elapsed().as_micros() as i64)
    }

    /// The loop: see the module documentation. On shutdown every
    /// connection is reset.
    pub async fn run(mut self) {
        let mut timers = tokio::time::interval(TIMER_TICK);
        timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut datagram = vec![0u8; 65536];
        loop {
            let delay = self.poll_delay();
            tokio::select! {
                received = self.udp.recv_from(&mut datagram) => {
                    if let Ok((len, from)) = received {
                        self.on_datagram(&datagram[..len], from).await;
                        self.drain_datagrams(&mut datagram).await;
                    }
                }
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.on_command(command).await,
                },
                // A relay moved data or made room.
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep(delay) => {}
                _ = timers.tick() => self.update_timers().await,
            }
            self.pump().await;
        }
        for net in self.nets.values_mut() {
            net.abort_all();
        }
        self.pump().await;
    }

    /// When the stacks next need to run, at most a timer tick away.
    fn poll_delay(&mut self) -> Duration {
        let now = self.now();
        self.nets
            .values_mut()
            .filter_map(|net| net.poll_delay(now))
            .map(|delay| Duration::from_micros(delay.total_micros()))
            .fold(TIMER_TICK, Duration::min)
    }

    /// Takes the datagrams already waiting, so that the stacks see a burst
    /// at once instead of running once per packet.
    async fn drain_datagrams(&mut self, buffer: &mut [u8]) {
        for _ in 0..MAX_BURST {
            match self.udp.try_recv_from(buffer) {
                Ok((len, from)) => self.on_datagram(&buffer[..len], from).await,
                Err(_) => return,
            }
        }
    }

    /// Routes one datagram to its client's session, and its decrypted
    /// packet to the stack of its source address.
    async fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let (key, handshake) = match self.sessions.route(datagram, from.ip(), &mut self.scratch) {
            Route::Session { key, handshake } => (key, handshake),
            Route::Cookie(cookie) => {
                let _ = self.udp.send_to(cookie, from).await;
                return;
            }
            Route::Drop => return,
        };
        // Unknown keys are ignored.
        let Some(peer) = self.sessions.get_mut(&key) else {
            return;
        };
        let mut authenticated = false;
        let mut data = false;
        let mut input = datagram;
        loop {
            match peer
                .tunn
                .decapsulate(Some(from.ip()), input, &mut self.scratch)
            {
                TunnResult::WriteToNetwork(reply) => {
                    authenticated = true;
                    if self.udp.send_to(reply, from).await.is_ok() {
                        peer.count_sent(reply.len());
                    }
                    // Queued packets may follow: ask again with no input.
                    input = &[];
                    continue;
                }
                TunnResult::WriteToTunnelV4(ip_packet, _) => {
                    authenticated = true;
                    if let Some(source) = inbound_source(ip_packet, peer.addresses())
                        && let Some(net) = self.nets.get_mut(&source)
                    {
                        net.receive(ip_packet.to_vec());
                        data = true;
                    }
                }
                TunnResult::WriteToTunnelV6(..) => authenticated = true,
                // A keep-alive or a cookie, decrypted; or the end of the
                // queued packets.
                TunnResult::Done => authenticated |= !input.is_empty(),
                TunnResult::Err(_) => {}
            }
            break;
        }
        if authenticated {
            if handshake {
                tracing::debug!(client = %short_key(&key), %from, "WireGuard handshake");
            }
            peer.record_activity(from, datagram.len(), data, handshake, &self.shared);
        }
    }

    async fn update_timers(&mut self) {
        for peer in self.sessions.timer_round() {
            if let TunnResult::WriteToNetwork(packet) = peer.tunn.update_timers(&mut self.scratch)
                && let Some(endpoint) = peer.endpoint
                && self.udp.send_to(packet, endpoint).await.is_ok()
            {
                peer.count_sent(packet.len());
            }
        }
    }

    /// Runs the stacks until nothing moves: packets in, socket work,
    /// packets out.
    async fn pump(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let now = self.now();
            let mut moved = false;
            for net in self.nets.values_mut() {
                moved |= net.poll(now, &self.shared);
            }
            let sent = self.flush_outbound().await;
            if !moved && !sent {
                break;
            }
        }
    }

    /// Encrypts what the stacks emitted for the key owning each stack.
    async fn flush_outbound(&mut self) -> bool {
        let mut sent = false;
        for net in self.nets.values_mut() {
            let Some(peer) = self.sessions.get_mut(&net.key()) else {
                net.discard_outbound();
                continue;
            };
            let Some(packets) = net.take_outbound() else {
                continue;
            };
            sent = true;
            for packet in packets {
                if let TunnResult::WriteToNetwork(datagram) =
                    peer.tunn.encapsulate(&packet, &mut self.scratch)
                    && let Some(endpoint) = peer.endpoint
                    && self.udp.send_to(datagram, endpoint).await.is_ok()
                {
                    peer.count_sent(datagram.len());
                }
            }
        }
        sent
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::AddPeer { peer, reply } => {
                let _ = reply.send(self.add_peer(peer));
            }
            Command::RemovePeer {
                public_key,
                address,
                reply,
            } => {
                self.remove_peer(public_key, address).await;
                let _ = reply.send(());
            }
            Command::Shutdown => {}
        }
    }

    fn add_peer(&mut self, config: PeerConfig) -> Result<(), TunnelError> {
        let domain = check_peer(&config, self.address)?;
        let key = config.public_key;
        if self.sessions.is_own_key(&key) {
            return Err(TunnelError::Invalid(
                "a client cannot have the server's own key".into(),
            ));
        }
        if let Some(net) = self.nets.get(&config.address)
            && net.key() != key
        {
            return Err(TunnelError::Invalid(format!(
                "{} belongs to another client",
                config.address
            )));
        }
        self.sessions
            .admit(key, &self.shared)
            .add_address(config.address);
        let now = self.now();
        let (address, mtu) = (self.address, self.mtu);
        self.nets
            .entry(config.address)
            .or_insert_with(|| ClientStack::new(key, config.address, address, mtu, now))
            .set_services(domain, config.services);
        tracing::debug!(client = %short_key(&key), address = %config.address, "peer added");
        Ok(())
    }

    /// Drops one address of a key (or all of them): its connections are
    /// reset first, while the session can still carry the RSTs; the key
    /// goes once it has no address left.
    async fn remove_peer(&mut self, key: [u8; 32], address: Option<Ipv4Addr>) {
        let Some(peer) = self.sessions.get(&key) else {
            return;
        };
        let addresses: Vec<Ipv4Addr> = match address {
            Some(address) => peer
                .addresses()
                .iter()
                .copied()
                .filter(|a| *a == address)
                .collect(),
            None => peer.addresses().to_vec(),
        };
        for address in &addresses {
            if let Some(net) = self.nets.get_mut(address) {
                net.abort_all();
            }
        }
        self.pump().await;
        for address in &addresses {
            self.nets.remove(address);
        }
        let Some(peer) = self.sessions.get_mut(&key) else {
            return;
        };
        peer.remove_addresses(&addresses);
        let last = peer.addresses().is_empty() || address.is_none();
        if last {
            self.sessions.remove(&key, &self.shared);
        }
        tracing::debug!(client = %short_key(&key), ?addresses, key_removed = last, "peer removed");
    }
}
