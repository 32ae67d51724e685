//! The tunnel's engine: one task that owns the UDP socket, the WireGuard
//! state machine (boringtun) and the TCP/IP stack (smoltcp).
//!
//! Everything happens in one loop, so nothing needs a lock: datagrams from
//! the cloudlet are decrypted into the stack, packets the stack emits are
//! encrypted and sent, boringtun's timers run every 250 ms (keep-alive,
//! rekeying, handshake retries), and bytes move between smoltcp sockets and
//! the channels of [`TunnelStream`]s. Flow control comes from the bounded
//! channels: bytes leave a smoltcp socket only when the reader has room,
//! and enter it only when its send buffer has room.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dns::{self, GetQueryResultError, QueryHandle};
use smoltcp::socket::tcp;
use smoltcp::wire::{DnsQueryType, HardwareAddress, IpAddress, IpCidr};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::device::PacketQueues;
use crate::pipe::{Pipe, any_address_for, random_u64, udp_socket};
use crate::resolve::search_order;
use crate::{Shared, TunnelConfig, TunnelError, TunnelStream};

/// How often boringtun's timers run.
const TIMER_TICK: Duration = Duration::from_millis(250);
/// Receive and send buffers of each TCP connection: large enough for a
/// scaled window at tens of MiB/s over a few milliseconds of latency.
const TCP_RX_BUFFER: usize = 1 << 20;
const TCP_TX_BUFFER: usize = 512 << 10;
/// Chunks buffered per direction of a stream.
const CHANNEL_CHUNKS: usize = 16;
/// A connection attempt fails after this long without an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An established connection fails after this long without an ACK.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
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

/// What handles ask of the stack.
pub(crate) enum Command {
    Resolve {
        name: String,
        reply: oneshot::Sender<Result<Ipv4Addr, TunnelError>>,
    },
    Connect {
        address: SocketAddrV4,
        reply: oneshot::Sender<Result<TunnelStream, TunnelError>>,
    },
    Shutdown,
}

/// A name being resolved: candidates tried one after the other.
struct Lookup {
    name: String,
    candidates: Vec<String>,
    next: usize,
    query: Option<QueryHandle>,
    reply: oneshot::Sender<Result<Ipv4Addr, TunnelError>>,
}

/// A TCP connection and the stack's ends of its channels.
struct Connection {
    handle: SocketHandle,
    address: SocketAddrV4,
    /// Until established: where to hand the stream, and the stream itself.
    connecting: Option<(
        oneshot::Sender<Result<TunnelStream, TunnelError>>,
        TunnelStream,
    )>,
    /// The stack's ends of the stream's channels.
    pipe: Pipe,
}

pub(crate) struct Stack {
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    udp: UdpSocket,
    endpoint: SocketAddr,
    search_domains: Vec<String>,
    tunn: Tunn,
    device: PacketQueues,
    iface: Interface,
    sockets: SocketSet<'static>,
    dns: Option<SocketHandle>,
    lookups: Vec<Lookup>,
    connections: Vec<Connection>,
    next_port: u16,
    /// Scratch space for boringtun's output.
    scratch: Vec<u8>,
    started: std::time::Instant,
    /// When the first packet of a batch still waiting for the stack came.
    batch_started: Option<std::time::Instant>,
}

impl Stack {
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
        let servers: Vec<IpAddress> = config
            .dns_servers
            .iter()
            .take(4)
            .map(|ip| IpAddress::Ipv4(*ip))
            .collect();
        let dns =
            (!servers.is_empty()).then(|| sockets.add(dns::Socket::new(&servers, Vec::new())));
        Ok(Stack {
            shared,
            commands,
            udp,
            endpoint: config.endpoint,
            search_domains: config.search_domains,
            tunn,
            device,
            iface,
            sockets,
            dns,
            lookups: Vec::new(),
            connections: Vec::new(),
            next_port: 40000 + (random_u64() % 20000) as u16,
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
        for connection in &self.connections {
            self.sockets
                .get_mut::<tcp::Socket>(connection.handle)
                .abort();
        }
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
            let moved = self.service_connections() | self.service_lookups();
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
            Command::Resolve { name, reply } => self.start_lookup(name, reply),
            Command::Connect { address, reply } => self.start_connection(address, reply),
            Command::Shutdown => {}
        }
    }

    fn start_lookup(
        &mut self,
        name: String,
        reply: oneshot::Sender<Result<Ipv4Addr, TunnelError>>,
    ) {
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            let _ = reply.send(Ok(ip));
            return;
        }
        if self.dns.is_none() {
            let _ = reply.send(Err(TunnelError::NoDnsServer(name)));
            return;
        }
        let candidates = search_order(&name, &self.search_domains);
        self.lookups.push(Lookup {
            name,
            candidates,
            next: 0,
            query: None,
            reply,
        });
    }

    /// Advances every lookup; returns whether anything changed.
    fn service_lookups(&mut self) -> bool {
        let Some(dns_handle) = self.dns else {
            return false;
        };
        let mut changed = false;
        let mut index = 0;
        while index < self.lookups.len() {
            let socket = self.sockets.get_mut::<dns::Socket>(dns_handle);
            let lookup = &mut self.lookups[index];
            let mut answer = None;
            if let Some(query) = lookup.query {
                match socket.get_query_result(query) {
                    Ok(addresses) => {
                        let ipv4 = addresses.iter().find_map(|address| match address {
                            IpAddress::Ipv4(ip) => Some(*ip),
                            #[allow(unreachable_patterns)]
                            _ => None,
                        });
                        lookup.query = None;
                        answer = ipv4.map(Ok);
                    }
                    Err(GetQueryResultError::Pending) => {}
                    Err(GetQueryResultError::Failed) => lookup.query = None,
                }
            }
            while answer.is_none() && lookup.query.is_none() {
                let Some(candidate) = lookup.candidates.get(lookup.next) else {
                    answer = Some(Err(TunnelError::Resolve {
                        name: lookup.name.clone(),
                        tried: lookup.candidates.join(", "),
                    }));
                    break;
                };
                lookup.next += 1;
                lookup.query = socket
                    .start_query(self.iface.context(), candidate, DnsQueryType::A)
                    .ok();
                changed = true;
            }
            match answer {
                Some(result) => {
                    let lookup = self.lookups.swap_remove(index);
                    let _ = lookup.reply.send(result);
                    changed = true;
                }
                None => index += 1,
            }
        }
        changed
    }

    fn start_connection(
        &mut self,
        address: SocketAddrV4,
        reply: oneshot::Sender<Result<TunnelStream, TunnelError>>,
    ) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_TX_BUFFER]),
        );
        socket.set_nagle_enabled(false); // VNC is interactive
        // ACK when the stack runs: `run` already batches inbound segments
        // (see BATCH_SEGMENTS), and a delayed-ACK timer on top would only
        // slow the sender's window down.
        socket.set_ack_delay(None);
        socket.set_timeout(Some(smoltcp::time::Duration::from_millis(
            CONNECT_TIMEOUT.as_millis() as u64,
        )));
        let remote = (IpAddress::Ipv4(*address.ip()), address.port());
        let local_port = self.take_port();
        if socket
            .connect(self.iface.context(), remote, local_port)
            .is_err()
        {
            let _ = reply.send(Err(TunnelError::Connect(address, "invalid address")));
            return;
        }
        let handle = self.sockets.add(socket);
        let (to_app, from_stack) = mpsc::channel(CHANNEL_CHUNKS);
        let (to_stack, from_app) = mpsc::channel(CHANNEL_CHUNKS);
        let stream = TunnelStream::new(to_stack, from_stack, Arc::clone(&self.shared));
        self.connections.push(Connection {
            handle,
            address,
            connecting: Some((reply, stream)),
            pipe: Pipe::new(to_app, from_app),
        });
    }

    fn take_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port >= 59999 { 40000 } else { port + 1 };
        port
    }

    /// Moves bytes and state for every connection; returns whether
    /// anything changed.
    fn service_connections(&mut self) -> bool {
        let mut changed = false;
        let mut index = 0;
        while index < self.connections.len() {
            let connection = &mut self.connections[index];
            let socket = self.sockets.get_mut::<tcp::Socket>(connection.handle);
            changed |= service_connection(connection, socket);
            if socket.state() == tcp::State::Closed && connection.connecting.is_none() {
                let connection = self.connections.swap_remove(index);
                self.sockets.remove(connection.handle);
                changed = true;
            } else {
                index += 1;
            }
        }
        changed
    }
}

/// One connection's step; returns whether anything changed.
fn service_connection(connection: &mut Connection, socket: &mut tcp::Socket<'_>) -> bool {
    if let Some((reply, stream)) = connection.connecting.take() {
        match socket.state() {
            tcp::State::SynSent | tcp::State::SynReceived if !reply.is_closed() => {
                connection.connecting = Some((reply, stream));
                return false;
            }
            tcp::State::Closed
            | tcp::State::TimeWait
            | tcp::State::SynSent
            | tcp::State::SynReceived => {
                let _ = reply.send(Err(TunnelError::Connect(
                    connection.address,
                    "refused or timed out",
                )));
                socket.abort();
                connection.pipe.to_app = None;
                return true;
            }
            _ => {
                socket.set_timeout(Some(smoltcp::time::Duration::from_millis(
                    IDLE_TIMEOUT.as_millis() as u64,
                )));
                if reply.send(Ok(stream)).is_err() {
                    socket.abort();
                }
            }
        }
    }
    connection.pipe.deliver_inbound(socket) | connection.pipe.accept_outbound(socket, usize::MAX)
}
