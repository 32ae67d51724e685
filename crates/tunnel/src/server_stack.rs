//! The tunnel server's engine: one task that owns the UDP socket, one
//! WireGuard state machine (boringtun `Tunn`) per client key, and one
//! TCP/IP stack (smoltcp) per client address.
//!
//! As in the client's `stack`, everything happens in one loop and nothing
//! needs a lock: datagrams are routed to their client's `Tunn` and
//! decrypted into the stack of their source address (if the key owns it),
//! packets the stacks emit are encrypted for the key owning their
//! destination, boringtun's timers run every 250 ms, and bytes move between
//! smoltcp sockets and the channels of relay tasks. Each relay task owns
//! one Tokio `TcpStream` to a service's target. Flow control comes from the
//! bounded channels, as in the client.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
    TcpSeqNumber,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::TunnelError;
use crate::device::PacketQueues;
use crate::dns_responder;
use crate::pipe::{CHUNK, Pipe, random_u64};
use crate::server::{
    PeerConfig, PeerCounters, ServerConfig, ServerShared, Service, check_peer, lock,
};

/// How often boringtun's timers run.
const TIMER_TICK: Duration = Duration::from_millis(250);
/// Buffers of each relayed connection. The bulk of a VNC session flows from
/// the service to the client: a large send buffer keeps a scaled window
/// open; what the client sends is small.
const TCP_RX_BUFFER: usize = 256 << 10;
const TCP_TX_BUFFER: usize = 1 << 20;
/// Congestion control of the relayed connections (see [`Flow`]): the
/// bytes a connection may have in flight at least (and at first), the
/// step it grows by (about a segment), and how often it may grow.
///
/// The floor is what a client with the system's default UDP receive buffer
/// (about 200 KiB of packets, as wireguard-go has) takes in one burst
/// without loss; growth is in time rather than per round trip (on a LAN a
/// round trip is a fraction of a millisecond, and growing per round trip
/// would hit the next loss at once), slow enough that probing rarely costs
/// a loss, fast enough to fill a long path within seconds.
const MIN_WINDOW: usize = 96 << 10;
const WINDOW_STEP: usize = 1380;
const GROWTH_INTERVAL: Duration = Duration::from_millis(25);
/// Chunks buffered per direction of a relay.
const CHANNEL_CHUNKS: usize = 16;
/// Connections (open or being opened) per client address; beyond, new
/// connections are refused until some close.
const MAX_CONNECTIONS: usize = 64;
/// A connection from a client must complete its handshake in this time,
/// and the service's target must accept in this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection is probed after this long without traffic, and
/// dropped after `TCP_TIMEOUT` without an answer: a client that went away
/// does not keep its relay (and the service's connection) forever.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
const TCP_TIMEOUT: Duration = Duration::from_secs(120);
/// Datagrams taken at once before the stacks run.
const MAX_BURST: usize = 256;
/// Rounds of work done before looking at the socket and timers again.
const MAX_ROUNDS: usize = 64;
/// Handshake messages per second (all clients together) beyond which
/// WireGuard's cookies are required, as in boringtun's device.
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// The activity callback runs at most this often per client key.
const ACTIVITY_INTERVAL: Duration = Duration::from_secs(1);
/// The DNS responder's buffers: queries are small.
const DNS_PACKETS: usize = 16;
const DNS_BUFFER: usize = 8 << 10;

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

/// The source of a decrypted packet if it may enter the stacks: a
/// well-formed IPv4 packet whose source is one of the sending key's
/// addresses. Anything else (a spoofed source, another client's address,
/// garbage) is dropped.
pub(crate) fn inbound_source(packet: &[u8], addresses: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.version() != 4 {
        return None;
    }
    let source = ip.src_addr();
    addresses.contains(&source).then_some(source)
}

/// Whether a packet a client's stack emits may go to that client: a
/// well-formed IPv4 packet to its address.
pub(crate) fn outbound_allowed(packet: &[u8], address: Ipv4Addr) -> bool {
    Ipv4Packet::new_checked(packet).is_ok_and(|ip| ip.version() == 4 && ip.dst_addr() == address)
}

/// One client key: its WireGuard session and where it is.
struct Peer {
    tunn: Tunn,
    index: u32,
    endpoint: Option<SocketAddr>,
    addresses: Vec<Ipv4Addr>,
    counters: Arc<PeerCounters>,
    last_callback: Option<Instant>,
}

/// A relayed connection: the smoltcp socket and, once established, the
/// channels of its relay task.
struct Relay {
    handle: SocketHandle,
    target: SocketAddr,
    link: Option<Link>,
    flow: Flow,
}

/// Congestion control of one connection, on top of smoltcp (which has
/// none by default, and recovers from a loss by sending everything in
/// flight again): the bytes allowed in the socket's send queue,
/// unacknowledged or not yet sent, grow by a step every
/// [`GROWTH_INTERVAL`] while the window (not the service) limits the
/// connection, and shrink by 30 % (not below [`MIN_WINDOW`]) when a segment
/// is sent again (a loss). Without it smoltcp sends its whole window at
/// once, and a client with a small UDP receive buffer drops most of it:
/// in our tests wireguard-go as a client got 2 MiB/s instead of 40.
struct Flow {
    window: usize,
    /// The end of the highest segment sent.
    sent_end: Option<TcpSeqNumber>,
    /// A segment sent again below this belongs to a loss already counted.
    recover: Option<TcpSeqNumber>,
    /// The socket's send queue after our last write.
    queued: usize,
    /// Whether the window, not the service, limited that write: a window
    /// that is not used does not grow (a VNC server idles, then sends a
    /// whole screen at once).
    limited: bool,
    /// When the window last grew.
    last_growth: Instant,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            window: MIN_WINDOW,
            sent_end: None,
            recover: None,
            queued: 0,
            limited: false,
            last_growth: Instant::now(),
        }
    }

    /// A data segment the stack sends.
    fn on_segment(&mut self, seq: TcpSeqNumber, len: usize) {
        if len == 0 {
            return;
        }
        let end = seq + len;
        let Some(sent_end) = self.sent_end else {
            self.sent_end = Some(end);
            return;
        };
        if seq >= sent_end {
            self.sent_end = Some(end);
            return;
        }
        // Sent again. A keep-alive probe (the last byte again) is no loss.
        if len == 1 && end == sent_end {
            return;
        }
        if self.recover.is_none_or(|recover| seq >= recover) {
            self.recover = Some(sent_end);
            self.window = (self.window * 7 / 10).max(MIN_WINDOW);
        }
        if end > sent_end {
            self.sent_end = Some(end);
        }
    }

    /// More bytes were acknowledged.
    fn on_acked(&mut self, acked: usize, now: Instant) {
        if acked > 0 && self.limited && now.duration_since(self.last_growth) >= GROWTH_INTERVAL {
            self.window = (self.window + WINDOW_STEP).min(TCP_TX_BUFFER);
            self.last_growth = now;
        }
    }
}

/// The stack's ends of a relay task's channels.
struct Link {
    /// The stack's ends of the relay's channels.
    pipe: Pipe,
    /// Set by the relay task when the target could not be reached.
    refused: Arc<AtomicBool>,
}

/// A socket listening for one service.
struct Listener {
    handle: SocketHandle,
    service: Service,
}

/// The stack behind one client address, with only that client's services.
struct ClientNet {
    key: [u8; 32],
    address: Ipv4Addr,
    search_domain: String,
    services: Vec<Service>,
    iface: Interface,
    device: PacketQueues,
    sockets: SocketSet<'static>,
    dns: SocketHandle,
    listeners: Vec<Listener>,
    relays: Vec<Relay>,
}

impl ClientNet {
    fn new(
        key: [u8; 32],
        address: Ipv4Addr,
        server_address: Ipv4Addr,
        mtu: usize,
        now: smoltcp::time::Instant,
    ) -> ClientNet {
        let mut device = PacketQueues::new(mtu);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = random_u64();
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(server_address), 32));
        });
        // Every destination is ours (the service addresses are not the
        // interface's): what nothing listens on is refused with a RST.
        iface.set_any_ip(true);
        let _ = iface.routes_mut().add_default_ipv4_route(server_address);
        let mut sockets = SocketSet::new(Vec::new());
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; DNS_PACKETS],
                vec![0; DNS_BUFFER],
            )
        };
        let mut dns = udp::Socket::new(buffer(), buffer());
        let _ = dns.bind((IpAddress::Ipv4(server_address), 53));
        let dns = sockets.add(dns);
        ClientNet {
            key,
            address,
            search_domain: String::new(),
            services: Vec::new(),
            iface,
            device,
            sockets,
            dns,
            listeners: Vec::new(),
            relays: Vec::new(),
        }
    }

    /// Replaces the names and services; open connections stay.
    fn set_services(&mut self, search_domain: String, services: Vec<Service>) {
        for listener in self.listeners.drain(..) {
            self.sockets.get_mut::<tcp::Socket>(listener.handle).abort();
            self.sockets.remove(listener.handle);
        }
        self.search_domain = search_domain;
        self.services = services;
        self.ensure_listeners();
    }

    /// One socket listening per service, while connections are below the
    /// limit (smoltcp needs a fresh listening socket per pending accept).
    fn ensure_listeners(&mut self) -> bool {
        let mut changed = false;
        for service in &self.services {
            if self.relays.len() >= MAX_CONNECTIONS {
                break;
            }
            if self.listeners.iter().any(|l| l.service == *service) {
                continue;
            }
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_RX_BUFFER]),
                tcp::SocketBuffer::new(vec![0; TCP_TX_BUFFER]),
            );
            socket.set_nagle_enabled(false); // VNC is interactive
            socket.set_ack_delay(None);
            socket.set_timeout(Some(smoltcp_duration(CONNECT_TIMEOUT)));
            let endpoint = IpListenEndpoint {
                addr: Some(IpAddress::Ipv4(service.ip)),
                port: service.port,
            };
            if socket.listen(endpoint).is_err() {
                continue;
            }
            let handle = self.sockets.add(socket);
            self.listeners.push(Listener {
                handle,
                service: service.clone(),
            });
            changed = true;
        }
        changed
    }

    /// Aborts every connection (a RST each) and stops listening.
    fn abort_all(&mut self) {
        for handle in self
            .listeners
            .drain(..)
            .map(|l| l.handle)
            .chain(self.relays.iter().map(|r| r.handle))
        {
            self.sockets.get_mut::<tcp::Socket>(handle).abort();
        }
        for relay in &mut self.relays {
            relay.link = None;
        }
        self.services.clear();
    }

    /// Moves bytes and state for DNS, listeners and connections; returns
    /// whether anything changed.
    fn service(&mut self, shared: &Arc<ServerShared>) -> bool {
        let mut changed = self.answer_dns();
        // A listener that got a SYN is a connection now.
        let mut index = 0;
        while index < self.listeners.len() {
            let socket = self
                .sockets
                .get_mut::<tcp::Socket>(self.listeners[index].handle);
            if socket.state() == tcp::State::Listen {
                index += 1;
                continue;
            }
            let listener = self.listeners.swap_remove(index);
            self.relays.push(Relay {
                handle: listener.handle,
                target: listener.service.target,
                link: None,
                flow: Flow::new(),
            });
            changed = true;
        }
        let mut index = 0;
        while index < self.relays.len() {
            let relay = &mut self.relays[index];
            let socket = self.sockets.get_mut::<tcp::Socket>(relay.handle);
            changed |= service_relay(relay, socket, shared);
            if socket.state() == tcp::State::Closed {
                let relay = self.relays.swap_remove(index);
                self.sockets.remove(relay.handle);
                changed = true;
            } else {
                index += 1;
            }
        }
        changed | self.ensure_listeners()
    }

    /// Tells the flow of its connection about a TCP segment this stack
    /// sends.
    fn observe(&mut self, packet: &[u8]) {
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            return;
        };
        if ip.next_header() != IpProtocol::Tcp {
            return;
        }
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
            return;
        };
        let (source, local_port, remote_port) = (ip.src_addr(), tcp.src_port(), tcp.dst_port());
        let sockets = &self.sockets;
        let relay = self.relays.iter_mut().find(|relay| {
            let socket = sockets.get::<tcp::Socket>(relay.handle);
            socket.local_endpoint().is_some_and(|local| {
                local.port == local_port && local.addr == IpAddress::Ipv4(source)
            }) && socket
                .remote_endpoint()
                .is_some_and(|remote| remote.port == remote_port)
        });
        if let Some(relay) = relay {
            relay.flow.on_segment(tcp.seq_number(), tcp.payload().len());
        }
    }

    /// Answers the DNS queries waiting.
    fn answer_dns(&mut self) -> bool {
        let socket = self.sockets.get_mut::<udp::Socket>(self.dns);
        let (domain, services) = (&self.search_domain, &self.services);
        let lookup = |name: &dns_responder::Name<'_>| {
            services
                .iter()
                .find(|service| name.is(&format!("{}.{domain}", service.name)))
                .map(|service| service.ip)
        };
        let mut changed = false;
        while socket.can_send() {
            let Ok((query, meta)) = socket.recv() else {
                break;
            };
            let (answer, to) = (dns_responder::respond(query, lookup), meta.endpoint);
            if let Some(answer) = answer {
                let _ = socket.send_slice(&answer, to);
            }
            changed = true;
        }
        changed
    }
}

/// One connection's step; returns whether anything changed.
fn service_relay(
    relay: &mut Relay,
    socket: &mut tcp::Socket<'_>,
    shared: &Arc<ServerShared>,
) -> bool {
    let Some(link) = &mut relay.link else {
        return match socket.state() {
            tcp::State::Established | tcp::State::CloseWait => {
                socket.set_timeout(Some(smoltcp_duration(TCP_TIMEOUT)));
                socket.set_keep_alive(Some(smoltcp_duration(TCP_KEEPALIVE)));
                relay.link = Some(spawn_relay(relay.target, Arc::clone(shared)));
                true
            }
            // The handshake failed and the socket listens again: the
            // listeners are kept elsewhere, this one goes.
            tcp::State::Listen => {
                socket.abort();
                true
            }
            _ => false,
        };
    };
    if link.refused.load(Ordering::Acquire) {
        socket.abort();
        relay.link = None;
        return true;
    }
    link.pipe.deliver_inbound(socket) | accept_outbound(link, &mut relay.flow, socket)
}

/// Relay → socket, while the flow's window has room; a closed relay
/// sends FIN.
fn accept_outbound(link: &mut Link, flow: &mut Flow, socket: &mut tcp::Socket<'_>) -> bool {
    flow.on_acked(
        flow.queued.saturating_sub(socket.send_queue()),
        Instant::now(),
    );
    let changed = link.pipe.accept_outbound(socket, flow.window);
    flow.queued = socket.send_queue();
    flow.limited = flow.queued + WINDOW_STEP >= flow.window;
    changed
}

/// Starts the task relaying one connection to `target`.
fn spawn_relay(target: SocketAddr, shared: Arc<ServerShared>) -> Link {
    let (to_app, from_stack) = mpsc::channel(CHANNEL_CHUNKS);
    let (to_stack, from_app) = mpsc::channel(CHANNEL_CHUNKS);
    let refused = Arc::new(AtomicBool::new(false));
    tokio::spawn(relay(
        target,
        from_stack,
        to_stack,
        shared,
        Arc::clone(&refused),
    ));
    Link {
        pipe: Pipe::new(to_app, from_app),
        refused,
    }
}

/// Connects to `target` and moves bytes both ways until both directions
/// are closed, or the stack drops the connection.
async fn relay(
    target: SocketAddr,
    mut from_stack: mpsc::Receiver<Vec<u8>>,
    to_stack: mpsc::Sender<Vec<u8>>,
    shared: Arc<ServerShared>,
    refused: Arc<AtomicBool>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        _ => {
            refused.store(true, Ordering::Release);
            shared.wake.notify_one();
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let upstream = async {
        while let Some(chunk) = from_stack.recv().await {
            // Room freed in the channel: the stack may move more.
            shared.wake.notify_one();
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(from_stack);
        shared.wake.notify_one();
        let _ = writer.shutdown().await;
    };
    let downstream = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = tokio::select! {
                read = reader.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                // The stack dropped the connection.
                _ = to_stack.closed() => break,
            };
            if to_stack.send(buffer[..n].to_vec()).await.is_err() {
                break;
            }
            shared.wake.notify_one();
        }
        drop(to_stack); // FIN to the client
        shared.wake.notify_one();
    };
    tokio::join!(upstream, downstream);
}

fn smoltcp_duration(duration: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_millis(duration.as_millis() as u64)
}

pub(crate) struct Server {
    shared: Arc<ServerShared>,
    commands: mpsc::Receiver<Command>,
    udp: UdpSocket,
    private_key: [u8; 32],
    secret: StaticSecret,
    public: PublicKey,
    address: Ipv4Addr,
    mtu: usize,
    keepalive: Option<u16>,
    /// Checks the MACs of handshake messages before anything costly, and
    /// asks for cookies under load.
    limiter: RateLimiter,
    peers: HashMap<[u8; 32], Peer>,
    by_index: HashMap<u32, [u8; 32]>,
    nets: HashMap<Ipv4Addr, ClientNet>,
    next_index: u32,
    /// Scratch space for boringtun's output.
    scratch: Vec<u8>,
}

impl Server {
    pub fn new(
        config: ServerConfig,
        udp: UdpSocket,
        shared: Arc<ServerShared>,
        commands: mpsc::Receiver<Command>,
    ) -> Server {
        let secret = StaticSecret::from(config.private_key);
        let public = PublicKey::from(&secret);
        Server {
            limiter: RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT),
            shared,
            commands,
            udp,
            private_key: config.private_key,
            secret,
            public,
            address: config.address,
            mtu: config.mtu,
            keepalive: config.keepalive,
            peers: HashMap::new(),
            by_index: HashMap::new(),
            nets: HashMap::new(),
            next_index: (random_u64() as u32) & 0xff_ffff,
            scratch: vec![0; 65536 + 64],
        }
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.shared.started.elapsed().as_micros() as i64)
    }

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
            .filter_map(|net| net.iface.poll_delay(now, &net.sockets))
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

    /// Routes one datagram to its client's session, as boringtun's device
    /// does, and its decrypted packet to the stack of its source address.
    async fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let packet = match self
            .limiter
            .verify_packet(Some(from.ip()), datagram, &mut self.scratch)
        {
            Ok(packet) => packet,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let _ = self.udp.send_to(cookie, from).await;
                return;
            }
            Err(_) => return, // garbage, or a handshake with a bad MAC
        };
        let (key, handshake) = match &packet {
            Packet::HandshakeInit(init) => (
                parse_handshake_anon(&self.secret, &self.public, init)
                    .ok()
                    .map(|half| half.peer_static_public),
                true,
            ),
            Packet::HandshakeResponse(p) => {
                (self.by_index.get(&(p.receiver_idx >> 8)).copied(), true)
            }
            Packet::PacketCookieReply(p) => {
                (self.by_index.get(&(p.receiver_idx >> 8)).copied(), false)
            }
            Packet::PacketData(p) => (self.by_index.get(&(p.receiver_idx >> 8)).copied(), false),
        };
        // Unknown keys and indices are ignored.
        let Some(peer) = key.and_then(|key| self.peers.get_mut(&key)) else {
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
                        peer.counters
                            .tx_bytes
                            .fetch_add(reply.len() as u64, Ordering::Relaxed);
                    }
                    // Queued packets may follow: ask again with no input.
                    input = &[];
                    continue;
                }
                TunnResult::WriteToTunnelV4(ip_packet, _) => {
                    authenticated = true;
                    if let Some(source) = inbound_source(ip_packet, &peer.addresses)
                        && let Some(net) = self.nets.get_mut(&source)
                    {
                        net.device.inbound.push_back(ip_packet.to_vec());
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
        if !authenticated {
            return;
        }
        // The client may roam: answer where it last spoke from.
        if peer.endpoint != Some(from) {
            peer.endpoint = Some(from);
            *lock(&peer.counters.endpoint) = Some(from);
        }
        let now = Instant::now();
        let stamp = self.shared.stamp(now);
        let counters = &peer.counters;
        counters
            .rx_bytes
            .fetch_add(datagram.len() as u64, Ordering::Relaxed);
        counters.last_activity.store(stamp, Ordering::Relaxed);
        if data {
            counters.last_data.store(stamp, Ordering::Relaxed);
        }
        if handshake {
            counters.last_handshake.store(stamp, Ordering::Relaxed);
        }
        if peer
            .last_callback
            .is_none_or(|last| now.duration_since(last) >= ACTIVITY_INTERVAL)
        {
            peer.last_callback = Some(now);
            let callback = lock(&self.shared.on_activity).clone();
            if let Some(callback) = callback {
                for address in &peer.addresses {
                    callback(*address);
                }
            }
        }
    }

    async fn update_timers(&mut self) {
        self.limiter.reset_count();
        for peer in self.peers.values_mut() {
            if let TunnResult::WriteToNetwork(packet) = peer.tunn.update_timers(&mut self.scratch)
                && let Some(endpoint) = peer.endpoint
                && self.udp.send_to(packet, endpoint).await.is_ok()
            {
                peer.counters
                    .tx_bytes
                    .fetch_add(packet.len() as u64, Ordering::Relaxed);
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
                net.iface.poll(now, &mut net.device, &mut net.sockets);
                moved |= net.service(&self.shared);
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
            let Some(peer) = self.peers.get_mut(&net.key) else {
                net.device.outbound.clear();
                continue;
            };
            while let Some(packet) = net.device.outbound.pop_front() {
                sent = true;
                if !outbound_allowed(&packet, net.address) {
                    continue;
                }
                net.observe(&packet);
                if let TunnResult::WriteToNetwork(datagram) =
                    peer.tunn.encapsulate(&packet, &mut self.scratch)
                    && let Some(endpoint) = peer.endpoint
                    && self.udp.send_to(datagram, endpoint).await.is_ok()
                {
                    peer.counters
                        .tx_bytes
                        .fetch_add(datagram.len() as u64, Ordering::Relaxed);
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
        if key == self.public.to_bytes() {
            return Err(TunnelError::Invalid(
                "a client cannot have the server's own key".into(),
            ));
        }
        if let Some(net) = self.nets.get(&config.address)
            && net.key != key
        {
            return Err(TunnelError::Invalid(format!(
                "{} belongs to another client",
                config.address
            )));
        }
        if !self.peers.contains_key(&key) {
            let index = self.take_index();
            let tunn = Tunn::new(
                StaticSecret::from(self.private_key),
                PublicKey::from(key),
                None,
                self.keepalive,
                index,
                None,
            );
            let counters = Arc::new(PeerCounters::default());
            lock(&self.shared.peers).insert(key, Arc::clone(&counters));
            self.by_index.insert(index, key);
            self.peers.insert(
                key,
                Peer {
                    tunn,
                    index,
                    endpoint: None,
                    addresses: Vec::new(),
                    counters,
                    last_callback: None,
                },
            );
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return Err(TunnelError::Closed);
        };
        if !peer.addresses.contains(&config.address) {
            peer.addresses.push(config.address);
            *lock(&peer.counters.addresses) = peer.addresses.clone();
        }
        let now = self.now();
        let (address, mtu) = (self.address, self.mtu);
        self.nets
            .entry(config.address)
            .or_insert_with(|| ClientNet::new(key, config.address, address, mtu, now))
            .set_services(domain, config.services);
        Ok(())
    }

    /// A free 24-bit session index (boringtun keeps the low 8 bits).
    fn take_index(&mut self) -> u32 {
        loop {
            self.next_index = (self.next_index + 1) & 0xff_ffff;
            if self.next_index != 0 && !self.by_index.contains_key(&self.next_index) {
                return self.next_index;
            }
        }
    }

    /// Drops one address of a key (or all of them): its connections are
    /// reset first, while the session can still carry the RSTs; the key
    /// goes once it has no address left.
    async fn remove_peer(&mut self, key: [u8; 32], address: Option<Ipv4Addr>) {
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        let addresses: Vec<Ipv4Addr> = match address {
            Some(address) => peer
                .addresses
                .iter()
                .copied()
                .filter(|a| *a == address)
                .collect(),
            None => peer.addresses.clone(),
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
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.addresses.retain(|a| !addresses.contains(a));
        *lock(&peer.counters.addresses) = peer.addresses.clone();
        if peer.addresses.is_empty() || address.is_none() {
            let index = peer.index;
            self.peers.remove(&key);
            self.by_index.remove(&index);
            lock(&self.shared.peers).remove(&key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::Ipv4Repr;

    fn packet(source: Ipv4Addr, destination: Ipv4Addr) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: source,
            dst_addr: destination,
            next_header: IpProtocol::Udp,
            payload_len: 8,
            hop_limit: 64,
        };
        let mut bytes = vec![0u8; repr.buffer_len() + 8];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut bytes),
            &ChecksumCapabilities::default(),
        );
        bytes
    }

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 3);
    const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);

    #[test]
    fn spoofed_sources_are_dropped() {
        let own = [CLIENT];
        assert_eq!(inbound_source(&packet(CLIENT, SERVICE), &own), Some(CLIENT));
        // Another client's address, any other address: dropped.
        assert_eq!(inbound_source(&packet(OTHER, SERVICE), &own), None);
        assert_eq!(
            inbound_source(&packet(Ipv4Addr::new(127, 0, 0, 1), SERVICE), &own),
            None
        );
        // A key with several addresses may use each.
        assert_eq!(
            inbound_source(&packet(OTHER, SERVICE), &[CLIENT, OTHER]),
            Some(OTHER)
        );
        // Garbage, truncated packets, IPv6: dropped.
        let good = packet(CLIENT, SERVICE);
        for len in 0..good.len() {
            assert_eq!(inbound_source(&good[..len], &own), None, "{len}");
        }
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(inbound_source(&v6, &own), None);
        assert_eq!(inbound_source(&[0xff; 64], &own), None);
    }

    #[test]
    fn the_window_shrinks_on_loss_and_grows_when_used() {
        let seq = |n: usize| TcpSeqNumber(0) + n;
        let mut flow = Flow::new();
        let start = Instant::now();
        for i in 0..100 {
            flow.on_segment(seq(i * 1000), 1000);
        }
        // Not limited by the window: no growth.
        flow.on_acked(50_000, start + GROWTH_INTERVAL);
        assert_eq!(flow.window, MIN_WINDOW);
        // Limited: a step per interval, not per acknowledgement.
        flow.limited = true;
        let mut now = start;
        for _ in 0..100 {
            now += GROWTH_INTERVAL;
            flow.on_acked(1000, now);
            flow.on_acked(1000, now);
        }
        assert_eq!(flow.window, MIN_WINDOW + 100 * WINDOW_STEP);
        let grown = flow.window;
        // A keep-alive probe is no loss; a retransmission is one, and what
        // is sent again of that window counts once.
        flow.on_segment(seq(99_999), 1);
        assert_eq!(flow.window, grown);
        flow.on_segment(seq(50_000), 1000);
        assert_eq!(flow.window, grown * 7 / 10);
        for i in 51..100 {
            flow.on_segment(seq(i * 1000), 1000);
        }
        assert_eq!(flow.window, grown * 7 / 10);
        // A later loss counts again, down to the floor.
        for round in 0..20 {
            let base = 100_000 + round * 10_000;
            flow.on_segment(seq(base), 1000);
            flow.on_segment(seq(base), 1000);
        }
        assert_eq!(flow.window, MIN_WINDOW);
        // Sequence numbers wrap.
        let mut flow = Flow::new();
        flow.on_segment(TcpSeqNumber(i32::MAX - 500), 1000);
        flow.on_segment(TcpSeqNumber(i32::MAX - 500) + 1000, 1000);
        assert_eq!(flow.recover, None);
    }

    #[test]
    fn packets_leave_only_to_their_client() {
        assert!(outbound_allowed(&packet(SERVICE, CLIENT), CLIENT));
        assert!(!outbound_allowed(&packet(SERVICE, OTHER), CLIENT));
        assert!(!outbound_allowed(&[0x45, 0, 0], CLIENT));
    }
}
