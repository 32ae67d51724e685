//! The small TCP/IP stack (smoltcp) behind one client address, which
//! knows only that client's services: a DNS responder on port 53 of the
//! server address, one listening socket per service, and the relayed
//! connections accepted from them. Every other destination is refused.

use std::net::Ipv4Addr;
use std::sync::Arc;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
};

use super::admission::outbound_allowed;
use super::config::Service;
use super::congestion::{TCP_RX_BUFFER, TCP_TX_BUFFER};
use super::dns_responder;
use super::relay::{CONNECT_TIMEOUT, Relay};
use super::shared::ServerShared;
use crate::device::PacketQueues;
use crate::pipe::{random_u64, smoltcp_duration};

/// Connections (open or being opened) per client address; beyond, new
/// connections are refused until some close.
const MAX_CONNECTIONS: usize = 64;
/// The DNS responder's buffers: queries are small.
const DNS_PACKETS: usize = 16;
const DNS_BUFFER: usize = 8 << 10;

/// A socket listening for one service.
struct Listener {
    handle: SocketHandle,
    service: Service,
}

/// The stack behind one client address, with only that client's services.
pub(super) struct ClientStack {
    /// The client key owning the address.
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

impl ClientStack {
    /// The stack of `key`'s `address`, with no service yet; the server
    /// answers from `server_address`.
    pub fn new(
        key: [u8; 32],
        address: Ipv4Addr,
        server_address: Ipv4Addr,
        mtu: usize,
        now: Instant,
    ) -> ClientStack {
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
        ClientStack {
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

    /// The client key owning the address.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    /// A decrypted packet from the client, admitted into this stack.
    pub fn receive(&mut self, packet: Vec<u8>) {
        self.device.inbound.push_back(packet);
    }

    /// Takes what this stack emitted, `None` if nothing: the packets that
    /// may go to the client ([`outbound_allowed`]), each seen by its
    /// connection's congestion control on the way.
    pub fn take_outbound(&mut self) -> Option<Vec<Vec<u8>>> {
        if self.device.outbound.is_empty() {
            return None;
        }
        let emitted: Vec<Vec<u8>> = self.device.outbound.drain(..).collect();
        let mut allowed = Vec::with_capacity(emitted.len());
        for packet in emitted {
            if outbound_allowed(&packet, self.address) {
                self.observe(&packet);
                allowed.push(packet);
            }
        }
        Some(allowed)
    }

    /// Drops what the stack emitted (its key is gone).
    pub fn discard_outbound(&mut self) {
        self.device.outbound.clear();
    }

    /// Runs smoltcp, then moves bytes and state; returns whether anything
    /// changed.
    pub fn poll(&mut self, now: Instant, shared: &Arc<ServerShared>) -> bool {
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.service(shared)
    }

    /// When smoltcp next needs to run.
    pub fn poll_delay(&mut self, now: Instant) -> Option<smoltcp::time::Duration> {
        self.iface.poll_delay(now, &self.sockets)
    }

    /// Replaces the names and services; open connections stay.
    pub fn set_services(&mut self, search_domain: String, services: Vec<Service>) {
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
    pub fn abort_all(&mut self) {
        for handle in self
            .listeners
            .drain(..)
            .map(|l| l.handle)
            .chain(self.relays.iter().map(Relay::handle))
        {
            self.sockets.get_mut::<tcp::Socket>(handle).abort();
        }
        for relay in &mut self.relays {
            relay.unlink();
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
            self.relays
                .push(Relay::accepted(listener.handle, listener.service.target));
            changed = true;
        }
        let mut index = 0;
        while index < self.relays.len() {
            let relay = &mut self.relays[index];
            let socket = self.sockets.get_mut::<tcp::Socket>(relay.handle());
            changed |= relay.service(socket, shared);
            if socket.state() == tcp::State::Closed {
                let relay = self.relays.swap_remove(index);
                self.sockets.remove(relay.handle());
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
            let socket = sockets.get::<tcp::Socket>(relay.handle());
            socket.local_endpoint().is_some_and(|local| {
                local.port == local_port && local.addr == IpAddress::Ipv4(source)
            }) && socket
                .remote_endpoint()
                .is_some_and(|remote| remote.port == remote_port)
        });
        if let Some(relay) = relay {
            relay.on_segment(tcp.seq_number(), tcp.payload().len());
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
