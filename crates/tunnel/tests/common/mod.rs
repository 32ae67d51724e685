//! Fixtures of the tunnel server tests: keys, a server on loopback, our
//! client admitted and connected, and behind every service a small TCP
//! server that sends the RFB banner and then echoes (or, asked
//! `BULK <MiB>`, sends that much data). wireguard-go as a client is in
//! `namespace` and `probes`.

pub mod namespace;
pub mod probes;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tunnel::{
    PeerConfig, ServerConfig, ServerHandle, Service, Tunnel, TunnelConfig, TunnelHandle,
    TunnelServer, TunnelStream,
};

/// The server's address inside the tunnel, where its DNS answers.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 1);
/// The first client's address inside the tunnel.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 5, 0, 2);
/// Where the first client is shown its `vmi-vnc`.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);
/// What every target sends first.
pub const BANNER: &[u8] = b"RFB 003.008\n";
/// How long a client may take to complete its handshake.
const HANDSHAKE: Duration = Duration::from_secs(5);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh private key and its public key.
pub fn keypair() -> ([u8; 32], [u8; 32]) {
    let mut private = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut private)
        .unwrap();
    (private, tunnel::public_key(&private))
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// A service's target: the RFB banner, then an echo; `BULK <MiB>\n` as
/// the first message gets that many MiB (bytes 0..=255 repeated) instead.
pub struct Target {
    pub address: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub closed: Arc<AtomicUsize>,
}

pub async fn target() -> Target {
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

/// `vmi-vnc` on `ip:5900`, relayed to `target`.
pub fn service(ip: Ipv4Addr, target: &Target) -> Service {
    Service {
        name: "vmi-vnc".into(),
        ip,
        port: 5900,
        target: target.address,
    }
}

/// A client's settings under `<deployment>.svc.cluster.local`.
pub fn peer(
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

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server under test, with a handle and its public key.
pub struct TestServer {
    pub server: TunnelServer,
    pub handle: ServerHandle,
    pub public: [u8; 32],
}

/// Our client, running, its handshake done; it derefs to its handle.
pub struct Client {
    tunnel: Tunnel,
    handle: TunnelHandle,
}

impl Deref for Client {
    type Target = TunnelHandle;
    fn deref(&self) -> &TunnelHandle {
        &self.handle
    }
}

impl Client {
    pub async fn shutdown(self) {
        self.tunnel.shutdown().await;
    }
}

impl TestServer {
    /// A server listening on `listen`, at [`SERVER_IP`] in the tunnel.
    pub async fn start(listen: SocketAddr) -> TestServer {
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
        let handle = server.handle();
        TestServer {
            server,
            handle,
            public,
        }
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Our client's settings towards this server, as a deployment answer
    /// would give them.
    pub fn client_config(
        &self,
        private_key: [u8; 32],
        address: Ipv4Addr,
        deployment: &str,
    ) -> TunnelConfig {
        TunnelConfig {
            private_key,
            peer_public_key: self.public,
            endpoint: self.server.local_addr(),
            address,
            dns_servers: vec![SERVER_IP],
            search_domains: vec![
                format!("{deployment}.svc.cluster.local"),
                "svc.cluster.local".into(),
                "cluster.local".into(),
            ],
            keepalive: Some(sinfonia::wireguard::PERSISTENT_KEEPALIVE),
            mtu: tunnel::DEFAULT_MTU,
        }
    }

    /// Starts our client with `config` and waits for its handshake.
    pub async fn connect(&self, config: TunnelConfig) -> Client {
        let tunnel = Tunnel::start(config).await.unwrap();
        let handle = tunnel.handle();
        handle.wait_handshake(HANDSHAKE).await.unwrap();
        Client { tunnel, handle }
    }

    /// Starts our client with `private` at `address` under `deployment`
    /// and waits for its handshake.
    pub async fn client(&self, private: [u8; 32], address: Ipv4Addr, deployment: &str) -> Client {
        self.connect(self.client_config(private, address, deployment))
            .await
    }

    /// The usual client: a fresh key admitted at [`CLIENT_IP`] under
    /// `bold-tesla`, with `vmi-vnc` at [`SERVICE_IP`] relayed to `target`,
    /// connected. Returns it and its public key.
    pub async fn admitted_client(&self, target: &Target) -> (Client, [u8; 32]) {
        let (private, public) = keypair();
        self.handle
            .add_peer(peer(
                public,
                CLIENT_IP,
                "bold-tesla",
                vec![service(SERVICE_IP, target)],
            ))
            .await
            .unwrap();
        (self.client(private, CLIENT_IP, "bold-tesla").await, public)
    }
}

/// Receives `len` bytes (or what comes within 5 s).
pub async fn recv_exactly(stream: &mut TunnelStream, len: usize) -> Vec<u8> {
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
pub async fn banner_and_echo(stream: &mut TunnelStream, message: &[u8]) {
    assert_eq!(recv_exactly(stream, BANNER.len()).await, BANNER);
    stream.send(message.to_vec()).await.unwrap();
    assert_eq!(recv_exactly(stream, message.len()).await, message);
}

/// Reads `mib` MiB of the bulk pattern through `stream`; returns MiB/s.
pub async fn bulk(stream: &mut TunnelStream, mib: usize) -> f64 {
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

/// Waits until `condition` holds, for at most `seconds`.
pub async fn eventually(seconds: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
