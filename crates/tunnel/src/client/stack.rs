//! The client tunnel's engine: one task that owns the UDP socket, the
//! WireGuard state machine (boringtun) and the TCP/IP stack (smoltcp);
//! name lookups and TCP connections inside the stack are in `lookup` and
//! `connection`.
//!
//! Everything happens in one loop, so nothing needs a lock: datagrams from
//! the cloudlet are decrypted into the stack, packets the stack emits are
//! encrypted and sent, boringtun's timers run every 250 ms (keep-alive,
//! rekeying, handshake retries), and bytes move between smoltcp sockets and
//! the channels of [`TunnelStream`](super::TunnelStream)s. Flow control comes from the bounded
//! channels: bytes leave a smoltcp socket only when the reader has room,
//! and enter it only when its send buffer has room.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::config::TunnelConfig;
use super::connection::Connections;
use super::handle::Command;
use super::lookup::Lookups;
use super::shared::Shared;
use crate::device::PacketQueues;
use crate::error::TunnelError;
use crate::pipe::{any_address_for, random_u64, udp_socket};

/// How often boringtun's timers run.
const TIMER_TICK: Duration = Duration::from_millis(250);
/// Inbound packets gathered before the stack runs, when they trickle in
/// one by one: the stack ACKs once per run, and every ACK costs the
/// cloudlet's WireGuard a decryption (the cloudlet's CPU is what limits a
/// bulk transfer). Waiting is bounded by BATCH_WAIT.
const BATCH_SEGMENTS: usize = 8;
const BATCH_WAIT: Duration = Duration::from_millis(1);
/// Datagrams taken at once before the stack runs.
const MAX_BURST: usize = 128;
/// Rounds of work done before looking at the socket and timers again.
const MAX_ROUNDS: usize = 64;

/// The task's state: the WireGuard session with the cloudlet and the
/// TCP/IP stack on our tunnel address.
pub(crate) struct Stack {
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    udp: UdpSocket,
    endpoint: SocketAddr,
    tunn: Tunn,
    device: PacketQueues,
    iface: Interface,
    sockets: SocketSet<'static>,
    lookups: Lookups,
    connections: Connections,
    /// Scratch space for boringtun's output.
    scratch: Vec<u8>,
    started: std::time::Instant,
    /// When the first packet of a batch still waiting for the stack came.
    batch_started: Option<std::time::Instant>,
}

impl Stack {
    /// Binds the UDP socket and sets the stack up; nothing runs yet.
    pub async fn new(
        config: TunnelConfig,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
    ) -> Result<Stack, TunnelError> {
        let udp = udp_socket(any_address_for(config.endpoint)).map_err(TunnelError::Socket)?;
        let tunn = Tunn::new(
            StaticSecret::from(config.private_key),
            PublicKey::from(config.peer_public_key),
            None,
            config.keepalive,
            random_u64() as u32,
            None,
        );
        let mut device = PacketQueues::new(config.mtu);
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = random_u64();
        let mut iface = Interface::new(iface_config, &mut device, smoltcp::time::Instant::ZERO);
        let address = config.address;
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(address), 32));
        });
        // Everything goes into the tunnel: route it via our own address.
        let _ = iface.routes_mut().add_default_ipv4_route(address);
        let mut sockets = SocketSet::new(Vec::new());
        let lookups = Lookups::new(&config.dns_servers, config.search_domains, &mut sockets);
        Ok(Stack {
            shared,
            commands,
            udp,
            endpoint: config.endpoint,
            tunn,
            device,
            iface,
            sockets,
            lookups,
            connections: Connections::new(),
            scratch: vec![0; 65536 + 64],
            started: std::time::Instant::now(),
            batch_started: None,
        })
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.started.elapsed().as_micros() as i64)
    }

    /// The loop: see the module documentation.
    pub async fn run(mut self) {
        self.initiate_handshake().await;
        let mut timers = tokio::time::interval(TIMER_TICK);
        let mut datagram = vec![0u8; 65536];
        loop {
            if self.batch_ready() {
                self.pump().await;
                self.batch_started = None;
            }
            let delay = match self.batch_started {
                Some(_) => BATCH_WAIT,
                None => {
                    let now = self.now();
                    self.iface
                        .poll_delay(now, &self.sockets)
                        .map_or(TIMER_TICK, |d| Duration::from_micros(d.total_micros()))
                }
            };
            tokio::select! {
                received = self.udp.recv_from(&mut datagram) => {
                    if let Ok((len, from)) = received {
                        self.on_datagram(&datagram[..len], from).await;
                        self.drain_datagrams(&mut datagram).await;
                        if !self.device.inbound.is_empty() {
                            self.batch_started.get_or_insert_with(std::time::Instant::now);
                        }
                    }
                }
                command = self.commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => {
                        self.on_command(command);
                        self.batch_started = None;
                    }
                },
                // A stream wrote, or read and made room: the next run moves
                // its data, at once unless a batch is being gathered.
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep(delay) => self.batch_started = None,
                _ = timers.tick() => self.update_timers().await,
            }
        }
        self.connections.abort_all(&mut self.sockets);
        self.pump().await;
    }

    async fn initiate_handshake(&mut self) {
        let packet = match self
            .tunn
            .format_handshake_initiation(&mut self.scratch, false)
        {
            TunnResult::WriteToNetwork(packet) => packet.to_vec(),
            _ => return,
        };
        self.send_datagram(&packet).await;
    }

    async fn send_datagram(&self, packet: &[u8]) {
        if self.udp.send_to(packet, self.endpoint).await.is_ok() {
            self.shared
                .tx_bytes
                .fetch_add(packet.len() as u64, Ordering::Relaxed);
        }
    }

    async fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        if from != self.endpoint {
            return; // only the cloudlet speaks to us
        }
        self.shared
            .rx_bytes
            .fetch_add(datagram.len() as u64, Ordering::Relaxed);
        let mut input = datagram;
        loop {
            match self
                .tunn
                .decapsulate(Some(from.ip()), input, &mut self.scratch)
            {
                TunnResult::WriteToNetwork(packet) => {
                    let packet = packet.to_vec();
                    self.send_datagram(&packet).await;
                    // Queued packets may follow: ask again with no input.
                    input = &[];
                    continue;
                }
                TunnResult::WriteToTunnelV4(packet, _) => {
                    self.device.inbound.push_back(packet.to_vec())
                }
                TunnResult::WriteToTunnelV6(..) | TunnResult::Done | TunnResult::Err(_) => {}
            }
            break;
        }
        self.note_handshake();
    }

    /// Whether the stack should run now: no batch is being gathered, or it
    /// is full, or it waited long enough.
    fn batch_ready(&self) -> bool {
        self.batch_started.is_none_or(|started| {
            self.device.inbound.len() >= BATCH_SEGMENTS || started.elapsed() >= BATCH_WAIT
        })
    }

    /// Takes the datagrams already waiting, so that the stack sees a burst
    /// at once instead of running once per packet.
    async fn drain_datagrams(&mut self, buffer: &mut [u8]) {
        for _ in 0..MAX_BURST {
            match self.udp.try_recv_from(buffer) {
                Ok((len, from)) => self.on_datagram(&buffer[..len], from).await,
                Err(_) => return,
            }
        }
    }

    fn note_handshake(&self) {
        if self.tunn.time_since_last_handshake().is_some()
            && !self.shared.handshake_done.swap(true, Ordering::AcqRel)
        {
            tracing::debug!(endpoint = %self.endpoint, "WireGuard handshake complete");
            self.shared.handshake.notify_waiters();
        }
    }

    async fn update_timers(&mut self) {
        let packet = match self.tunn.update_timers(&mut self.scratch) {
            TunnResult::WriteToNetwork(packet) => packet.to_vec(),
            _ => return,
        };
        self.send_datagram(&packet).await;
    }

    /// Runs the stack until nothing moves: packets in, socket work, packets
    /// out.
    async fn pump(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let now = self.now();
            self.iface.poll(now, &mut self.device, &mut self.sockets);
            let moved = self.connections.service(&mut self.sockets)
                | self.lookups.service(&mut self.sockets, &mut self.iface);
            let sent = self.flush_outbound().await;
            if !moved && !sent && self.device.inbound.is_empty() {
                break;
            }
        }
    }

    async fn flush_outbound(&mut self) -> bool {
        let mut sent = false;
        while let Some(packet) = self.device.outbound.pop_front() {
            if let TunnResult::WriteToNetwork(datagram) =
                self.tunn.encapsulate(&packet, &mut self.scratch)
            {
                let datagram = datagram.to_vec();
                self.send_datagram(&datagram).await;
            }
            sent = true;
        }
        sent
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Resolve { name, reply } => self.lookups.start(name, reply),
            Command::Connect { address, reply } => self.connections.start(
                address,
                reply,
                &self.shared,
                &mut self.sockets,
                &mut self.iface,
            ),
            Command::Shutdown => {}
        }
    }
}
