//! The tunnel server end to end: with our own client (`tunnel::Tunnel`)
//! over loopback, and with the real wireguard-go as a client in a network
//! namespace (an independent WireGuard implementation, `dig` for DNS and a
//! plain socket for TCP). Behind every service runs a small TCP server that
//! sends the RFB banner and then echoes (or, asked `BULK <MiB>`, sends that
//! much data).
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tunnel::{
    PeerConfig, ServerConfig, Service, Tunnel, TunnelConfig, TunnelError, TunnelServer,
    TunnelStream,
};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 1);
const BANNER: &[u8] = b"RFB 003.008\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh private key and its public key.
fn keypair() -> ([u8; 32], [u8; 32]) {
    let mut private = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut private)
        .unwrap();
    (private, tunnel::public_key(&private))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// A service's target: the RFB banner, then an echo; `BULK <MiB>\n` as
/// the first message gets that many MiB (bytes 0..=255 repeated) instead.
struct Target {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

async fn target() -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (accepting, closing) = (Arc::clone(&accepted), Arc::clone(&closed));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepting.fetch_add(1, Ordering::SeqCst);
            let closing = Arc::clone(&closing);
            tokio::spawn(async move {
                serve(stream).await;
                closing.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Target {
        address,
        accepted,
        closed,
    }
}

async fn serve(mut stream: tokio::net::TcpStream) {
    if stream.write_all(BANNER).await.is_err() {
        return;
    }
    let mut buffer = vec![0u8; 64 << 10];
    let mut first = true;
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if first && buffer[..n].starts_with(b"BULK ") {
            let text = String::from_utf8_lossy(&buffer[5..n]).trim().to_owned();
            let mib: usize = text.parse().unwrap_or(0);
            let block: Vec<u8> = (0..=255u8).cycle().take(64 << 10).collect();
            for _ in 0..mib * 16 {
                if stream.write_all(&block).await.is_err() {
                    return;
                }
            }
            return;
        }
        first = false;
        if stream.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

fn service(ip: Ipv4Addr, target: &Target) -> Service {
    Service {
        name: "vmi-vnc".into(),
        ip,
        port: 5900,
        target: target.address,
    }
}

fn peer(
    public_key: [u8; 32],
    address: Ipv4Addr,
    deployment: &str,
    services: Vec<Service>,
) -> PeerConfig {
    PeerConfig {
        public_key,
        address,
        search_domain: format!("{deployment}.svc.cluster.local"),
        services,
    }
}

async fn start_server(listen: SocketAddr) -> (TunnelServer, [u8; 32]) {
    let (private, public) = keypair();
    let server = TunnelServer::start(ServerConfig {
        private_key: private,
        listen,
        address: SERVER_IP,
        mtu: tunnel::DEFAULT_MTU,
        keepalive: Some(10),
    })
    .await
    .unwrap();
    (server, public)
}

/// Our client's settings, as a deployment answer would give them.
fn client_config(
    private_key: [u8; 32],
    server_public: [u8; 32],
    endpoint: SocketAddr,
    address: Ipv4Addr,
    deployment: &str,
) -> TunnelConfig {
    TunnelConfig {
        private_key,
        peer_public_key: server_public,
        endpoint,
        address,
        dns_servers: vec![SERVER_IP],
        search_domains: vec![
            format!("{deployment}.svc.cluster.local"),
            "svc.cluster.local".into(),
            "cluster.local".into(),
        ],
        keepalive: Some(tunnel::DEFAULT_KEEPALIVE),
        mtu: tunnel::DEFAULT_MTU,
    }
}

/// Receives `len` bytes (or what comes within 5 s).
async fn recv_exactly(stream: &mut TunnelStream, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        match tokio::time::timeout(Duration::from_secs(5), stream.recv()).await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk),
            _ => break,
        }
    }
    out
}

/// The banner, then an echo of `message`.
async fn banner_and_echo(stream: &mut TunnelStream, message: &[u8]) {
    assert_eq!(recv_exactly(stream, BANNER.len()).await, BANNER);
    stream.send(message.to_vec()).await.unwrap();
    assert_eq!(recv_exactly(stream, message.len()).await, message);
}

/// Waits until `condition` holds, for at most `seconds`.
async fn eventually(seconds: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn our_client_reaches_its_service_through_the_server() {
    runtime().block_on(async {
        let (server, server_public) = start_server(loopback()).await;
        let handle = server.handle();
        let vnc = target().await;
        let (private, public) = keypair();
        let address = Ipv4Addr::new(10, 5, 0, 2);
        let service_ip = Ipv4Addr::new(10, 43, 0, 1);
        // A second service whose target does not listen (a VM whose VNC
        // is not up).
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dead = Service {
            name: "vmi-dead".into(),
            ip: Ipv4Addr::new(10, 43, 0, 7),
            port: 5902,
            target: closed_port,
        };
        handle
            .add_peer(peer(
                public,
                address,
                "bold-tesla",
                vec![service(service_ip, &vnc), dead],
            ))
            .await
            .unwrap();
        let touched = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&touched);
        handle.on_activity(move |address| recorder.lock().unwrap().push(address));
        assert_eq!(handle.last_activity(&public), None);

        let config = client_config(
            private,
            server_public,
            server.local_addr(),
            address,
            "bold-tesla",
        );
        let client = Tunnel::start(config.clone()).await.unwrap();
        let tunnel = client.handle();
        tunnel.wait_handshake(Duration::from_secs(5)).await.unwrap();
        // `vmi-vnc` resolves through the search domain, as with ndots:5.
        assert_eq!(tunnel.resolve("vmi-vnc").await.unwrap(), service_ip);
        assert_eq!(
            tunnel
                .resolve("VMI-VNC.bold-tesla.svc.cluster.local.")
                .await
                .unwrap(),
            service_ip
        );
        // The dead service resolves; its connections are reset.
        let dead_ip = tunnel.resolve("vmi-dead").await.unwrap();
        assert_eq!(dead_ip, Ipv4Addr::new(10, 43, 0, 7));
        if let Ok(mut stream) = tunnel.connect(SocketAddrV4::new(dead_ip, 5902)).await {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.recv()).await;
            assert!(matches!(next, Ok(None)), "{next:?}");
        }
        // Names that are not this client's do not exist.
        match tunnel.resolve("vmi-vnc.svc.cluster.local.").await {
            Err(TunnelError::Resolve { .. }) => {}
            other => panic!("{other:?}"),
        }

        // Banner and echo; several connections at once.
        let target_address = SocketAddrV4::new(service_ip, 5900);
        let mut streams = Vec::new();
        for _ in 0..6 {
            streams.push(tunnel.connect(target_address).await.unwrap());
        }
        let mut exchanges = Vec::new();
        for (i, mut stream) in streams.into_iter().enumerate() {
            exchanges.push(tokio::spawn(async move {
                let message = format!("hello from connection {i}\n").repeat(100 * (i + 1));
                banner_and_echo(&mut stream, message.as_bytes()).await;
                stream
            }));
        }
        let mut streams = Vec::new();
        for exchange in exchanges {
            streams.push(exchange.await.unwrap());
        }
        assert_eq!(vnc.accepted.load(Ordering::SeqCst), 6);
        // Closing them closes the target's ends.
        drop(streams);
        assert!(eventually(5, || vnc.closed.load(Ordering::SeqCst) == 6).await);

        // Another port of the service address, another address: refused.
        for refused in [
            SocketAddrV4::new(service_ip, 5901),
            SocketAddrV4::new(Ipv4Addr::new(10, 43, 0, 2), 5900),
            SocketAddrV4::new(SERVER_IP, 5900),
        ] {
            let result = tunnel.connect(refused).await;
            assert!(matches!(result, Err(TunnelError::Connect(..))), "{refused}");
        }

        // Activity is published.
        let activity = handle.last_activity(&public).unwrap();
        assert!(activity.elapsed() < Duration::from_secs(5));
        let status = handle.peers();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].addresses, [address]);
        assert!(status[0].last_data.is_some() && status[0].last_handshake.is_some());
        assert!(status[0].rx_bytes > 0 && status[0].tx_bytes > 0);
        assert!(touched.lock().unwrap().contains(&address));

        // The client comes back from another UDP port (a restart, or a
        // roaming client): the server answers there.
        let old_endpoint = status[0].endpoint.unwrap();
        client.shutdown().await;
        let client = Tunnel::start(config).await.unwrap();
        let tunnel = client.handle();
        tunnel.wait_handshake(Duration::from_secs(5)).await.unwrap();
        let mut stream = tunnel.connect(target_address).await.unwrap();
        banner_and_echo(&mut stream, b"again\n").await;
        assert_ne!(handle.peers()[0].endpoint, Some(old_endpoint));

        // The same peer again (a repeated deploy request): open
        // connections stay.
        handle
            .add_peer(peer(
                public,
                address,
                "bold-tesla",
                vec![service(service_ip, &vnc)],
            ))
            .await
            .unwrap();
        assert!(matches!(
            tunnel.resolve("vmi-dead").await,
            Err(TunnelError::Resolve { .. })
        ));
        stream.send(b"still there\n".to_vec()).await.unwrap();
        assert_eq!(recv_exactly(&mut stream, 12).await, b"still there\n");
        client.shutdown().await;
        server.shutdown().await;
        assert!(matches!(
            handle.add_peer(peer(public, address, "x", vec![])).await,
            Err(TunnelError::Closed)
        ));
    });
}

#[test]
fn clients_reach_only_their_own_services() {
    runtime().block_on(async {
        let (server, server_public) = start_server(loopback()).await;
        let handle = server.handle();
        let endpoint = server.local_addr();
        let (vnc_a, vnc_b) = (target().await, target().await);
        let ip_a = Ipv4Addr::new(10, 43, 0, 1);
        let ip_b = Ipv4Addr::new(10, 43, 0, 2);
        let (addr_a, addr_b) = (Ipv4Addr::new(10, 5, 0, 2), Ipv4Addr::new(10, 5, 0, 3));
        let ((private_a, public_a), (private_b, public_b)) = (keypair(), keypair());
        handle
            .add_peer(peer(
                public_a,
                addr_a,
                "bold-tesla",
                vec![service(ip_a, &vnc_a)],
            ))
            .await
            .unwrap();
        handle
            .add_peer(peer(
                public_b,
                addr_b,
                "calm-curie",
                vec![service(ip_b, &vnc_b)],
            ))
            .await
            .unwrap();
        // An address belongs to one key.
        let taken = handle
            .add_peer(peer(public_b, addr_a, "calm-curie", vec![]))
            .await;
        assert!(matches!(taken, Err(TunnelError::Invalid(_))), "{taken:?}");

        let a = Tunnel::start(client_config(
            private_a,
            server_public,
            endpoint,
            addr_a,
            "bold-tesla",
        ))
        .await
        .unwrap();
        let b = Tunnel::start(client_config(
            private_b,
            server_public,
            endpoint,
            addr_b,
            "calm-curie",
        ))
        .await
        .unwrap();
        let (a, b) = (a.handle(), b.handle());
        a.wait_handshake(Duration::from_secs(5)).await.unwrap();
        b.wait_handshake(Duration::from_secs(5)).await.unwrap();
        assert_eq!(a.resolve("vmi-vnc").await.unwrap(), ip_a);
        assert_eq!(b.resolve("vmi-vnc").await.unwrap(), ip_b);
        // B does not see A's deployment name…
        assert!(matches!(
            b.resolve("vmi-vnc.bold-tesla.svc.cluster.local.").await,
            Err(TunnelError::Resolve { .. })
        ));
        // …and cannot reach A's service, even knowing its address.
        assert!(matches!(
            b.connect(SocketAddrV4::new(ip_a, 5900)).await,
            Err(TunnelError::Connect(..))
        ));
        let mut stream = b.connect(SocketAddrV4::new(ip_b, 5900)).await.unwrap();
        banner_and_echo(&mut stream, b"b\n").await;
        let mut stream = a.connect(SocketAddrV4::new(ip_a, 5900)).await.unwrap();
        banner_and_echo(&mut stream, b"a\n").await;
        assert_eq!(vnc_a.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(vnc_b.accepted.load(Ordering::SeqCst), 1);

        // Both shown the same service address: each reaches its own target.
        let shared_ip = Ipv4Addr::new(10, 43, 1, 1);
        handle
            .add_peer(peer(
                public_a,
                addr_a,
                "bold-tesla",
                vec![service(shared_ip, &vnc_a)],
            ))
            .await
            .unwrap();
        handle
            .add_peer(peer(
                public_b,
                addr_b,
                "calm-curie",
                vec![service(shared_ip, &vnc_b)],
            ))
            .await
            .unwrap();
        assert_eq!(b.resolve("vmi-vnc").await.unwrap(), shared_ip);
        for _ in 0..3 {
            let mut stream = b.connect(SocketAddrV4::new(shared_ip, 5900)).await.unwrap();
            banner_and_echo(&mut stream, b"b\n").await;
        }
        let mut stream = a.connect(SocketAddrV4::new(shared_ip, 5900)).await.unwrap();
        banner_and_echo(&mut stream, b"a\n").await;
        assert_eq!(vnc_a.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(vnc_b.accepted.load(Ordering::SeqCst), 4);
        // The old services are gone.
        assert!(matches!(
            a.connect(SocketAddrV4::new(ip_a, 5900)).await,
            Err(TunnelError::Connect(..))
        ));

        // A third key claims A's address inside its tunnel: its packets
        // (spoofed sources) are dropped, it reaches nothing.
        let (private_c, public_c) = keypair();
        let addr_c = Ipv4Addr::new(10, 5, 0, 4);
        handle
            .add_peer(peer(public_c, addr_c, "keen-hopper", vec![]))
            .await
            .unwrap();
        let c = Tunnel::start(client_config(
            private_c,
            server_public,
            endpoint,
            addr_a,
            "bold-tesla",
        ))
        .await
        .unwrap();
        let c = c.handle();
        c.wait_handshake(Duration::from_secs(5)).await.unwrap();
        let spoofed = tokio::time::timeout(
            Duration::from_secs(3),
            c.connect(SocketAddrV4::new(shared_ip, 5900)),
        )
        .await;
        assert!(!matches!(spoofed, Ok(Ok(_))), "a spoofed connection opened");
        let spoofed = tokio::time::timeout(Duration::from_secs(2), c.resolve("vmi-vnc")).await;
        assert!(
            !matches!(spoofed, Ok(Ok(_))),
            "a spoofed query was answered"
        );
        assert_eq!(vnc_a.accepted.load(Ordering::SeqCst), 2);
        let status = handle.peers();
        let c_status = status.iter().find(|p| p.public_key == public_c).unwrap();
        assert!(c_status.last_activity.is_some() && c_status.last_data.is_none());
        server.shutdown().await;
    });
}

#[test]
fn a_removed_client_is_cut_off() {
    runtime().block_on(async {
        let (server, server_public) = start_server(loopback()).await;
        let handle = server.handle();
        let vnc = target().await;
        let (private, public) = keypair();
        let address = Ipv4Addr::new(10, 5, 0, 2);
        let ip = Ipv4Addr::new(10, 43, 0, 1);
        handle
            .add_peer(peer(public, address, "bold-tesla", vec![service(ip, &vnc)]))
            .await
            .unwrap();
        let client = Tunnel::start(client_config(
            private,
            server_public,
            server.local_addr(),
            address,
            "bold-tesla",
        ))
        .await
        .unwrap();
        let tunnel = client.handle();
        tunnel.wait_handshake(Duration::from_secs(5)).await.unwrap();
        let mut streams = Vec::new();
        for _ in 0..2 {
            let mut stream = tunnel.connect(SocketAddrV4::new(ip, 5900)).await.unwrap();
            banner_and_echo(&mut stream, b"before\n").await;
            streams.push(stream);
        }
        handle.remove_peer(public).await;
        assert!(handle.peers().is_empty());
        assert_eq!(handle.last_activity(&public), None);
        // The target's connections close, the client's are reset.
        assert!(eventually(5, || vnc.closed.load(Ordering::SeqCst) == 2).await);
        for stream in &mut streams {
            let _ = stream.send(b"after\n".to_vec()).await;
            let next = tokio::time::timeout(Duration::from_secs(5), stream.recv()).await;
            assert!(matches!(next, Ok(None)), "{next:?}");
        }
        // New connections fail.
        let again = tokio::time::timeout(
            Duration::from_secs(3),
            tunnel.connect(SocketAddrV4::new(ip, 5900)),
        )
        .await;
        assert!(!matches!(again, Ok(Ok(_))));
        assert_eq!(vnc.accepted.load(Ordering::SeqCst), 2);

        // Removing one address of a key with two keeps the other.
        let second = Ipv4Addr::new(10, 5, 0, 9);
        handle
            .add_peer(peer(public, address, "bold-tesla", vec![service(ip, &vnc)]))
            .await
            .unwrap();
        handle
            .add_peer(peer(public, second, "calm-curie", vec![service(ip, &vnc)]))
            .await
            .unwrap();
        handle.remove_address(public, second).await;
        assert_eq!(handle.peers()[0].addresses, [address]);
        client.shutdown().await;
        server.shutdown().await;
    });
}

#[test]
fn unknown_keys_and_garbage_are_ignored() {
    runtime().block_on(async {
        let (server, server_public) = start_server(loopback()).await;
        let handle = server.handle();
        let endpoint = server.local_addr();
        let vnc = target().await;
        let ip = Ipv4Addr::new(10, 43, 0, 1);
        let address = Ipv4Addr::new(10, 5, 0, 2);

        // Random datagrams, and random ones shaped like each WireGuard
        // message (type and length right, contents garbage).
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for round in 0..4000usize {
            let mut datagram = match round % 5 {
                0 => random_bytes(148),
                1 => random_bytes(92),
                2 => random_bytes(64),
                3 => random_bytes(32 + round % 1400),
                _ => random_bytes(round % 1500),
            };
            if round % 5 < 4 && datagram.len() >= 4 {
                datagram[..4].copy_from_slice(&[(round % 5 + 1) as u8, 0, 0, 0]);
            }
            let _ = socket.send_to(&datagram, endpoint).await;
            if round % 200 == 0 {
                tokio::task::yield_now().await;
            }
        }

        // A well-formed handshake from a key the server does not know.
        let (stranger, _) = keypair();
        let unknown = Tunnel::start(client_config(
            stranger,
            server_public,
            endpoint,
            address,
            "x",
        ))
        .await
        .unwrap();
        let result = unknown
            .handle()
            .wait_handshake(Duration::from_secs(2))
            .await;
        assert!(
            matches!(result, Err(TunnelError::Handshake { .. })),
            "{result:?}"
        );
        unknown.shutdown().await;
        assert!(handle.peers().is_empty());

        // The server still serves its clients.
        let (private, public) = keypair();
        handle
            .add_peer(peer(public, address, "bold-tesla", vec![service(ip, &vnc)]))
            .await
            .unwrap();
        let client = Tunnel::start(client_config(
            private,
            server_public,
            endpoint,
            address,
            "bold-tesla",
        ))
        .await
        .unwrap();
        let tunnel = client.handle();
        tunnel.wait_handshake(Duration::from_secs(5)).await.unwrap();
        let mut stream = tunnel.connect(SocketAddrV4::new(ip, 5900)).await.unwrap();
        banner_and_echo(&mut stream, b"fine\n").await;
        // Bad settings are refused.
        let mut bad = peer(public, Ipv4Addr::new(10, 5, 0, 7), "bold-tesla", vec![]);
        bad.search_domain = "not a domain".into();
        assert!(matches!(
            handle.add_peer(bad).await,
            Err(TunnelError::Invalid(_))
        ));
        client.shutdown().await;
        server.shutdown().await;
    });
}

/// Reads `mib` MiB of the bulk pattern through `stream`; returns MiB/s.
async fn bulk(stream: &mut TunnelStream, mib: usize) -> f64 {
    assert_eq!(recv_exactly(stream, BANNER.len()).await, BANNER);
    stream
        .send(format!("BULK {mib}\n").into_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let mut received = 0usize;
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(10), stream.recv()).await {
        for (i, byte) in chunk.iter().enumerate() {
            assert_eq!(
                *byte,
                ((received + i) % 256) as u8,
                "corrupted at {}",
                received + i
            );
        }
        received += chunk.len();
    }
    assert_eq!(received, mib << 20);
    mib as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn bulk_transfer_through_the_server() {
    runtime().block_on(async {
        let (server, server_public) = start_server(loopback()).await;
        let handle = server.handle();
        let vnc = target().await;
        let (private, public) = keypair();
        let address = Ipv4Addr::new(10, 5, 0, 2);
        let ip = Ipv4Addr::new(10, 43, 0, 1);
        handle
            .add_peer(peer(public, address, "bold-tesla", vec![service(ip, &vnc)]))
            .await
            .unwrap();
        let client = Tunnel::start(client_config(
            private,
            server_public,
            server.local_addr(),
            address,
            "bold-tesla",
        ))
        .await
        .unwrap();
        let tunnel = client.handle();
        tunnel.wait_handshake(Duration::from_secs(5)).await.unwrap();
        let mut stream = tunnel.connect(SocketAddrV4::new(ip, 5900)).await.unwrap();
        let mib = 32;
        let speed = bulk(&mut stream, mib).await;
        println!("server → our client over loopback: {mib} MiB at {speed:.1} MiB/s");
        client.shutdown().await;
        server.shutdown().await;
    });
}

// ---------------------------------------------------------------------
// wireguard-go as the client, in a network namespace.

/// A network namespace with a veth pair to the host and wireguard-go as a
/// WireGuard client; everything is removed on drop.
struct Namespace {
    name: String,
    host_veth: String,
    wg_interface: String,
    host_ip: Ipv4Addr,
    wireguard_go: Option<Child>,
    dir: PathBuf,
}

static NEXT_NAMESPACE: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        .unwrap_or(false)
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e})"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Namespace {
    /// The namespace, its veth pair (a free /30 of 10.201.0.0/16) and an
    /// idle wireguard-go interface.
    fn create() -> Namespace {
        assert!(
            is_root(),
            "the wireguard-go test needs root (network namespaces)"
        );
        for tool in ["ip", "wg", "wireguard-go", "dig", "python3"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success(),
                "`{tool}` is missing (scripts/setup.sh installs it)"
            );
        }
        let n = NEXT_NAMESPACE.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:x}{n}", pid % 0x10_0000);
        let name = format!("olvsrv-{pid}-{n}");
        let dir = std::env::temp_dir().join(format!("olive-tunnel-server-{pid}-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut namespace = Namespace {
            name: name.clone(),
            host_veth: format!("olsh{tag}"),
            wg_interface: format!("olsw{tag}"),
            host_ip: Ipv4Addr::UNSPECIFIED,
            wireguard_go: None,
            dir,
        };
        run("ip", &["netns", "add", &name]);
        // A /30 no host address is in, chosen under a lock shared by every
        // test process.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("olive2022-tunnel-server-veth.lock"))
            .unwrap();
        lock.lock().unwrap();
        let used = run("ip", &["-o", "-4", "addr", "show"]);
        let slot = (0..16384u32)
            .map(|i| (pid.wrapping_mul(31).wrapping_add(n) + i) % 16384)
            .find(|slot| {
                let base = u32::from(Ipv4Addr::new(10, 201, 0, 0)) + slot * 4;
                !used.contains(&format!(" {}/", Ipv4Addr::from(base + 1)))
            })
            .unwrap();
        let base = u32::from(Ipv4Addr::new(10, 201, 0, 0)) + slot * 4;
        let (host_ip, inside_ip) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        let inside = format!("olsc{tag}");
        run(
            "ip",
            &[
                "link",
                "add",
                &namespace.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &inside,
                "netns",
                &name,
            ],
        );
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{host_ip}/30"),
                "dev",
                &namespace.host_veth,
            ],
        );
        drop(lock);
        namespace.host_ip = host_ip;
        run("ip", &["link", "set", &namespace.host_veth, "up"]);
        run(
            "ip",
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{inside_ip}/30"),
                "dev",
                &inside,
            ],
        );
        run("ip", &["-n", &name, "link", "set", &inside, "up"]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        // wireguard-go; its control socket path is global, hence the
        // unique interface name.
        let socket = PathBuf::from(format!(
            "/var/run/wireguard/{}.sock",
            namespace.wg_interface
        ));
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(namespace.dir.join("wireguard-go.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "wireguard-go",
                "-f",
                &namespace.wg_interface,
            ])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        namespace.wireguard_go = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "wireguard-go did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        namespace
    }

    /// Configures wireguard-go as a client of `server` with `address`.
    fn connect(
        &self,
        private_key: [u8; 32],
        server_public: [u8; 32],
        server: SocketAddr,
        address: Ipv4Addr,
    ) {
        let key_file = self.dir.join("client.key");
        std::fs::write(&key_file, base64(&private_key)).unwrap();
        let endpoint = server.to_string();
        let peer_key = base64(&server_public);
        self.exec(&[
            "wg",
            "set",
            &self.wg_interface,
            "private-key",
            key_file.to_str().unwrap(),
            "peer",
            &peer_key,
            "endpoint",
            &endpoint,
            "allowed-ips",
            "10.5.0.1/32,10.43.0.0/16",
            "persistent-keepalive",
            "25",
        ]);
        let wg = &self.wg_interface;
        run(
            "ip",
            &[
                "-n",
                &self.name,
                "addr",
                "add",
                &format!("{address}/32"),
                "dev",
                wg,
            ],
        );
        run("ip", &["-n", &self.name, "link", "set", wg, "up"]);
        run(
            "ip",
            &["-n", &self.name, "route", "add", "10.5.0.1/32", "dev", wg],
        );
        run(
            "ip",
            &["-n", &self.name, "route", "add", "10.43.0.0/16", "dev", wg],
        );
    }

    /// Runs a command inside the namespace; its stdout, or its failure.
    fn try_exec(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn exec(&self, args: &[&str]) -> String {
        self.try_exec(args)
            .unwrap_or_else(|e| panic!("{args:?} in the namespace failed: {e}"))
    }

    /// `dig @10.5.0.1 NAME TYPE` inside the namespace: (status, answers).
    fn dig(&self, name: &str, qtype: &str) -> (String, Vec<String>) {
        let output = self.exec(&["dig", "@10.5.0.1", "+time=2", "+tries=3", name, qtype]);
        let status = output
            .split("status: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no status in dig's output:\n{output}"))
            .to_owned();
        let answers = output
            .split(";; ANSWER SECTION:\n")
            .nth(1)
            .map(|section| {
                section
                    .lines()
                    .take_while(|line| !line.is_empty())
                    .filter_map(|line| line.split_whitespace().last().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (status, answers)
    }

    /// Python inside the namespace: connects to `ip:5900` `connections`
    /// times at once, reads the banner and checks the echo on each; prints
    /// `ok`, or fails with the reason.
    fn banner_and_echo(&self, ip: Ipv4Addr, connections: usize) -> Result<String, String> {
        const SCRIPT: &str = r#"
import socket, sys
ip, n = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((ip, 5900), timeout=3) for _ in range(n)]
for i, c in enumerate(conns):
    banner = b""
    while len(banner) < 12:
        data = c.recv(12 - len(banner))
        if not data: sys.exit("closed before the banner")
        banner += data
    if banner != b"RFB 003.008\n": sys.exit("banner %r" % banner)
for i, c in enumerate(conns):
    message = (b"echo %d " % i) * 2000
    c.sendall(message)
    echo = b""
    while len(echo) < len(message):
        data = c.recv(65536)
        if not data: sys.exit("closed before the echo")
        echo += data
    if echo != message: sys.exit("bad echo")
print("ok")
"#;
        self.try_exec(&[
            "python3",
            "-c",
            SCRIPT,
            &ip.to_string(),
            &connections.to_string(),
        ])
    }

    /// Python inside the namespace: `BULK <mib>` from `ip:5900`, checked;
    /// returns MiB/s.
    fn bulk(&self, ip: Ipv4Addr, mib: usize) -> f64 {
        const SCRIPT: &str = r#"
import socket, sys, time
ip, mib = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((ip, 5900), timeout=10)
banner = b""
while len(banner) < 12:
    banner += c.recv(12 - len(banner))
c.sendall(b"BULK %d\n" % mib)
start = time.monotonic()
pattern = bytes(range(256)) * 256
received = 0
while True:
    data = c.recv(1 << 20)
    if not data: break
    offset = received % 65536
    expected = (pattern * 17)[offset:offset + len(data)]
    if data != expected: sys.exit("corrupted at %d" % received)
    received += len(data)
if received != mib << 20: sys.exit("received %d bytes" % received)
print(mib / (time.monotonic() - start))
"#;
        let out = self.exec(&["python3", "-c", SCRIPT, &ip.to_string(), &mib.to_string()]);
        out.trim().parse().unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(mut child) = self.wireguard_go.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(output) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.host_veth])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.wg_interface));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn wireguard_go_reaches_its_service_through_the_server() {
    let namespace = Namespace::create();
    let runtime = runtime();
    let _entered = runtime.enter();
    let listen = SocketAddr::from((namespace.host_ip, 0));
    let (server, server_public) = runtime.block_on(start_server(listen));
    let handle = server.handle();
    let (vnc, other_vnc) = runtime.block_on(async { (target().await, target().await) });
    let (private, public) = keypair();
    let address = Ipv4Addr::new(10, 5, 0, 2);
    let ip = Ipv4Addr::new(10, 43, 0, 1);
    let other_ip = Ipv4Addr::new(10, 43, 0, 2);
    runtime.block_on(async {
        handle
            .add_peer(peer(public, address, "bold-tesla", vec![service(ip, &vnc)]))
            .await
            .unwrap();
        // Another client, whose service this one must not reach.
        handle
            .add_peer(peer(
                keypair().1,
                Ipv4Addr::new(10, 5, 0, 3),
                "calm-curie",
                vec![service(other_ip, &other_vnc)],
            ))
            .await
            .unwrap();
    });
    namespace.connect(private, server_public, server.local_addr(), address);

    // DNS: A, AAAA (empty), other names (NXDOMAIN).
    let (status, answers) = namespace.dig("vmi-vnc.bold-tesla.svc.cluster.local", "A");
    assert_eq!(
        (status.as_str(), answers),
        ("NOERROR", vec![ip.to_string()])
    );
    let (status, answers) = namespace.dig("vmi-vnc.bold-tesla.svc.cluster.local", "AAAA");
    assert_eq!((status.as_str(), answers.len()), ("NOERROR", 0));
    for other in [
        "vmi-vnc.calm-curie.svc.cluster.local",
        "vmi-vnc.svc.cluster.local",
        "example.com",
    ] {
        assert_eq!(namespace.dig(other, "A").0, "NXDOMAIN", "{other}");
    }

    // TCP: banner and echo, several connections at once.
    assert_eq!(namespace.banner_and_echo(ip, 4).unwrap().trim(), "ok");
    assert_eq!(vnc.accepted.load(Ordering::SeqCst), 4);
    // The other client's service: refused.
    let refused = namespace.banner_and_echo(other_ip, 1).unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    assert_eq!(other_vnc.accepted.load(Ordering::SeqCst), 0);

    let speed = namespace.bulk(ip, 32);
    println!("server → wireguard-go: 32 MiB at {speed:.1} MiB/s");
    let status = handle.peers();
    let me = status.iter().find(|p| p.public_key == public).unwrap();
    assert_eq!(
        me.endpoint.map(|e| e.ip()),
        Some(std::net::IpAddr::V4(inside_of(namespace.host_ip)))
    );
    assert!(me.last_activity.unwrap().elapsed() < Duration::from_secs(5));

    // Removed: nothing answers any more.
    runtime.block_on(handle.remove_peer(public));
    let cut = namespace.banner_and_echo(ip, 1).unwrap_err();
    assert!(
        cut.contains("timed out") || cut.contains("refused"),
        "{cut}"
    );
    let cut = namespace.try_exec(&[
        "dig",
        "@10.5.0.1",
        "+time=1",
        "+tries=1",
        "vmi-vnc.bold-tesla.svc.cluster.local",
    ]);
    assert!(cut.is_err() || !cut.unwrap().contains("status: NOERROR"));
    runtime.block_on(server.shutdown());
}

/// The namespace's end of the /30 whose host end is `host`.
fn inside_of(host: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(host) + 1)
}
