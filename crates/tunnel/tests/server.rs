//! The tunnel server end to end: with our own client (`tunnel::Tunnel`)
//! over loopback, and with the real wireguard-go as a client in a network
//! namespace (an independent WireGuard implementation, `dig` for DNS and a
//! plain socket for TCP). The fixtures (targets, server, clients,
//! namespace) are in `common`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::namespace::{Namespace, inside_of};
use common::{
    CLIENT_IP, SERVER_IP, SERVICE_IP, TestServer, banner_and_echo, bulk, eventually, keypair,
    loopback, peer, random_bytes, recv_exactly, runtime, service, target,
};
use tunnel::{Service, Tunnel, TunnelError};

#[test]
fn our_client_reaches_its_service_through_the_server() {
    runtime().block_on(async {
        let server = TestServer::start(loopback()).await;
        let handle = server.handle.clone();
        let vnc = target().await;
        let (private, public) = keypair();
        let (address, service_ip) = (CLIENT_IP, SERVICE_IP);
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

        let config = server.client_config(private, address, "bold-tesla");
        let tunnel = server.connect(config.clone()).await;
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
        tunnel.shutdown().await;
        let tunnel = server.connect(config).await;
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
        tunnel.shutdown().await;
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
        let server = TestServer::start(loopback()).await;
        let handle = &server.handle;
        let (vnc_a, vnc_b) = (target().await, target().await);
        let ip_a = SERVICE_IP;
        let ip_b = Ipv4Addr::new(10, 43, 0, 2);
        let (addr_a, addr_b) = (CLIENT_IP, Ipv4Addr::new(10, 5, 0, 3));
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

        let a = server.client(private_a, addr_a, "bold-tesla").await;
        let b = server.client(private_b, addr_b, "calm-curie").await;
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
        let c = server.client(private_c, addr_a, "bold-tesla").await;
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
        let server = TestServer::start(loopback()).await;
        let handle = &server.handle;
        let vnc = target().await;
        let (tunnel, public) = server.admitted_client(&vnc).await;
        let (address, ip) = (CLIENT_IP, SERVICE_IP);
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
        tunnel.shutdown().await;
        server.shutdown().await;
    });
}

#[test]
fn unknown_keys_and_garbage_are_ignored() {
    runtime().block_on(async {
        let server = TestServer::start(loopback()).await;
        let handle = &server.handle;
        let endpoint = server.server.local_addr();
        let vnc = target().await;

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
        let unknown = Tunnel::start(server.client_config(stranger, CLIENT_IP, "x"))
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
        let (tunnel, public) = server.admitted_client(&vnc).await;
        let mut stream = tunnel
            .connect(SocketAddrV4::new(SERVICE_IP, 5900))
            .await
            .unwrap();
        banner_and_echo(&mut stream, b"fine\n").await;
        // Bad settings are refused.
        let mut bad = peer(public, Ipv4Addr::new(10, 5, 0, 7), "bold-tesla", vec![]);
        bad.search_domain = "not a domain".into();
        assert!(matches!(
            handle.add_peer(bad).await,
            Err(TunnelError::Invalid(_))
        ));
        tunnel.shutdown().await;
        server.shutdown().await;
    });
}

#[test]
fn bulk_transfer_through_the_server() {
    runtime().block_on(async {
        let server = TestServer::start(loopback()).await;
        let vnc = target().await;
        let (tunnel, _) = server.admitted_client(&vnc).await;
        let mut stream = tunnel
            .connect(SocketAddrV4::new(SERVICE_IP, 5900))
            .await
            .unwrap();
        let mib = 32;
        let speed = bulk(&mut stream, mib).await;
        println!("server → our client over loopback: {mib} MiB at {speed:.1} MiB/s");
        tunnel.shutdown().await;
        server.shutdown().await;
    });
}

#[test]
fn wireguard_go_reaches_its_service_through_the_server() {
    let namespace = Namespace::create();
    let runtime = runtime();
    let _entered = runtime.enter();
    let listen = SocketAddr::from((namespace.host_ip, 0));
    let server = runtime.block_on(TestServer::start(listen));
    let handle = &server.handle;
    let (vnc, other_vnc) = runtime.block_on(async { (target().await, target().await) });
    let (private, public) = keypair();
    let (address, ip) = (CLIENT_IP, SERVICE_IP);
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
    namespace.connect(private, server.public, server.server.local_addr(), address);

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
