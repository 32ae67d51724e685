//! The tunnel against a real WireGuard peer (wireguard-go in testkit's
//! namespace cloudlet), its real DNS server (dnsmasq) and a real VNC server.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use testkit::cloudlet::{Cloudlet, CloudletOptions, VncServer};
use tunnel::{Tunnel, TunnelConfig, TunnelError};

/// Asks the cloudlet's tier 1 for a deployment and builds the tunnel
/// settings from its answer.
fn config_for(cloudlet: &Cloudlet) -> TunnelConfig {
    let private = testkit::run("wg", &["genkey"]).trim().to_owned();
    let public = testkit::run("sh", &["-c", &format!("echo {private} | wg pubkey")])
        .trim()
        .to_owned();
    let key = public
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_owned();
    let url = format!(
        "{}/api/v1/deploy/00000000-0000-0000-0000-000000000000/{key}",
        cloudlet.tier1_url()
    );
    let answer = testkit::run("curl", &["-sf", "-X", "POST", &url]);
    let deployment: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let tunnel = &deployment[0]["TunnelConfig"];
    let decode = |text: &str| -> [u8; 32] {
        let bytes = testkit::run_bytes("sh", &["-c", &format!("echo {text} | base64 -d")]);
        bytes.try_into().unwrap()
    };
    let dns: Vec<String> = tunnel["dns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    TunnelConfig {
        private_key: decode(&private),
        peer_public_key: decode(tunnel["publicKey"].as_str().unwrap()),
        endpoint: cloudlet.endpoint(),
        address: tunnel["address"][0].as_str().unwrap().parse().unwrap(),
        dns_servers: dns.iter().filter_map(|entry| entry.parse().ok()).collect(),
        search_domains: dns
            .iter()
            .filter(|entry| entry.parse::<Ipv4Addr>().is_err())
            .cloned()
            .collect(),
        keepalive: Some(sinfonia::wireguard::PERSISTENT_KEEPALIVE),
        mtu: tunnel::DEFAULT_MTU,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn dns_and_tcp_through_the_tunnel() {
    let cloudlet = Cloudlet::start(CloudletOptions::default());
    let config = config_for(&cloudlet);
    runtime().block_on(async {
        let tunnel = Tunnel::start(config).await.unwrap();
        let handle = tunnel.handle();
        handle.wait_handshake(Duration::from_secs(5)).await.unwrap();
        // `vmi-vnc` resolves through the search domains, as with ndots:5.
        let ip = handle.resolve("vmi-vnc").await.unwrap();
        assert_eq!(
            std::net::SocketAddr::from((ip, 5900)),
            cloudlet.vnc_service()
        );
        // Several connections at once, each with its own banner.
        let target = SocketAddrV4::new(ip, 5900);
        let mut streams = Vec::new();
        for _ in 0..4 {
            streams.push(handle.connect(target).await.unwrap());
        }
        for stream in &mut streams {
            let banner = stream.recv().await.unwrap();
            assert_eq!(banner, b"RFB 003.008\n");
        }
        // Nothing listens on 5901: a clear error, not a hang.
        let refused = handle.connect(SocketAddrV4::new(ip, 5901)).await;
        assert!(matches!(refused, Err(TunnelError::Connect(..))));
        // A name that does not exist lists what was tried.
        match handle.resolve("nothing-here").await {
            Err(TunnelError::Resolve { tried, .. }) => {
                assert!(tried.contains(&format!(
                    "nothing-here.{}.svc.cluster.local",
                    cloudlet.deployment_name()
                )));
            }
            other => panic!("{other:?}"),
        }
        let stats = handle.stats();
        assert!(stats.rx_bytes > 0 && stats.tx_bytes > 0);
        tunnel.shutdown().await;
        assert!(matches!(
            handle.resolve("vmi-vnc").await,
            Err(TunnelError::Closed)
        ));
    });
}

#[test]
fn a_silent_endpoint_fails_the_handshake_in_time() {
    let cloudlet = Cloudlet::start(CloudletOptions {
        handshake: false,
        vnc: VncServer::None,
        ..Default::default()
    });
    let config = config_for(&cloudlet);
    runtime().block_on(async {
        let tunnel = Tunnel::start(config).await.unwrap();
        let started = std::time::Instant::now();
        let result = tunnel.handle().wait_handshake(Duration::from_secs(2)).await;
        assert!(
            matches!(result, Err(TunnelError::Handshake { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
    });
}
