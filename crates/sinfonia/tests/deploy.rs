//! The deploy request against a tier-1 stand-in served by the test, every
//! failure a clear error; and the original Python `sinfonia-tier3` against
//! the same server, side by side: same request, same `wg.conf`,
//! `resolv.conf` and QR codes.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sinfonia::deploy::{DeployError, Deployment, Endpoint, IpNet, Tier1};
use sinfonia::keys::{KeyCache, KeyPair, decode_key};
use sinfonia::wireguard::{QrStyle, qrcode, resolv_conf, wg_conf, wg_quick_conf};
use testkit::oracle_python;
use uuid::Uuid;

const UUID: Uuid = Uuid::from_u128(0x4b1d_e5a1_77c2_4e0f_9a00_0000_0000_2022);

/// The cloudlet's key in the answers.
fn cloudlet_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(250);
    }
    key
}

/// What the stand-in answers.
enum Reply {
    Http {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Accept the connection, read the request, never answer.
    Silent,
}

fn reply(status: u16, content_type: &'static str, body: impl Into<String>) -> Reply {
    Reply::Http {
        status,
        content_type,
        body: body.into(),
    }
}

/// A request the stand-in saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    head: String,
}

struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// A tier-1 stand-in on 127.0.0.1: each request gets `answer(path)`.
fn serve(answer: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let answer = Arc::clone(&answer);
            let log = Arc::clone(&log);
            thread::spawn(move || handle(stream, &*answer, &log));
        }
    });
    Server { port, seen }
}

fn handle(mut stream: TcpStream, answer: &dyn Fn(&str) -> Reply, log: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let reply = answer(&path);
    log.lock().expect("lock").push(Seen { method, path, head });
    match reply {
        Reply::Silent => thread::sleep(Duration::from_secs(30)),
        Reply::Http {
            status,
            content_type,
            body,
        } => {
            let response = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    }
}

/// The client key in a request path, in standard base64 (as tier 2 echoes
/// it in `ApplicationKey`).
fn key_from_path(path: &str) -> String {
    let key = path.rsplit('/').next().expect("key segment");
    STANDARD.encode(decode_key(key).expect("a key in the path"))
}

/// A deployment as tier 1 sends it, for the client key in `path`.
fn deployment(path: &str) -> Value {
    json!({
        "DeploymentName": "bold-tesla",
        "UUID": UUID.to_string(),
        "ApplicationKey": key_from_path(path),
        "Status": "Deployed",
        "Created": "2026-11-26T03:00:00+00:00",
        "TunnelConfig": {
            "publicKey": STANDARD.encode(cloudlet_key()),
            "endpoint": "203.0.113.7:51820",
            "allowedIPs": ["0.0.0.0/0", "::/0"],
            "address": ["10.5.0.23", "fd00:5::17/128"],
            "dns": ["10.43.0.10", "fd00:43::a", "bold-tesla.svc.cluster.local",
                    "svc.cluster.local", "cluster.local"],
        }
    })
}

/// A stand-in answering `[deployment]` changed by `edit`.
fn serve_deployment(edit: impl Fn(&mut Value) + Send + Sync + 'static) -> Server {
    serve(move |path| {
        let mut answer = deployment(path);
        edit(&mut answer);
        reply(200, "application/json", json!([answer]).to_string())
    })
}

fn deploy_from(server: &Server) -> (Result<Deployment, DeployError>, KeyPair) {
    let keys = KeyPair::generate();
    let tier1 = Tier1::new(&server.url())
        .expect("url")
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(5));
    (tier1.deploy(UUID, &keys), keys)
}

fn deploy_error(server: &Server) -> DeployError {
    match deploy_from(server).0 {
        Ok(deployment) => panic!("expected an error, got {deployment:?}"),
        Err(e) => e,
    }
}

#[test]
fn valid_deployment() {
    let server = serve_deployment(|_| {});
    let keys = KeyPair::generate();
    let tier1 = Tier1::new(&format!("{}/", server.url())).expect("url");
    let deployment = tier1.deploy(UUID, &keys).expect("deploy");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    let expected = format!("/api/v1/deploy/{UUID}/{}", keys.public_urlsafe());
    assert_eq!(requests[0].path, expected);
    assert!(!requests[0].path.contains(['=', '+']));
    assert_eq!(
        tier1.url_for(UUID, &keys),
        format!("{}{expected}", server.url())
    );
    assert!(
        !tier1
            .url_for(UUID, &keys)
            .contains(&keys.private_base64()[..20])
    );

    assert_eq!(deployment.name.as_deref(), Some("bold-tesla"));
    assert_eq!(deployment.uuid, UUID);
    assert_eq!(deployment.application_key, keys.public_bytes());
    assert_eq!(deployment.status, "Deployed");
    assert_eq!(
        deployment.created.as_deref(),
        Some("2026-11-26T03:00:00+00:00")
    );
    let tunnel = &deployment.tunnel;
    assert_eq!(tunnel.peer_public_key, cloudlet_key());
    assert_eq!(tunnel.peer_public().to_bytes(), cloudlet_key());
    assert_eq!(
        tunnel.endpoint,
        Endpoint {
            host: "203.0.113.7".into(),
            port: 51820
        }
    );
    assert_eq!(
        tunnel.endpoint.resolve().expect("resolve"),
        "203.0.113.7:51820".parse::<SocketAddr>().expect("addr")
    );
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().expect("v6"));
    assert_eq!(
        tunnel.allowed_ips,
        vec![
            IpNet {
                addr: v4(0, 0, 0, 0),
                prefix: 0
            },
            IpNet {
                addr: v6("::"),
                prefix: 0
            }
        ]
    );
    assert_eq!(
        tunnel.addresses,
        vec![
            IpNet {
                addr: v4(10, 5, 0, 23),
                prefix: 32
            },
            IpNet {
                addr: v6("fd00:5::17"),
                prefix: 128
            }
        ]
    );
    assert_eq!(
        tunnel.dns_servers,
        vec![v4(10, 43, 0, 10), v6("fd00:43::a")]
    );
    assert_eq!(
        tunnel.search_domains,
        vec![
            "bold-tesla.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local"
        ]
    );
}

#[test]
fn lenient_where_sinfonia_is() {
    // URL-safe unpadded keys, an IPv6 endpoint, a host name endpoint,
    // prefixes on addresses, optional fields absent or null, an empty dns.
    let server = serve_deployment(|d| {
        let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cloudlet_key());
        d["TunnelConfig"]["publicKey"] = json!(urlsafe);
        d["TunnelConfig"]["endpoint"] = json!("[2001:db8::7]:51820");
        d["TunnelConfig"]["address"] = json!(["10.5.0.23/16"]);
        d["TunnelConfig"]["dns"] = json!([]);
        d["DeploymentName"] = Value::Null;
        d.as_object_mut().expect("object").remove("Created");
    });
    let (result, _) = deploy_from(&server);
    let deployment = result.expect("deploy");
    let tunnel = deployment.tunnel;
    assert_eq!(tunnel.peer_public_key, cloudlet_key());
    assert_eq!(tunnel.endpoint.host, "2001:db8::7");
    assert_eq!(tunnel.endpoint.to_string(), "[2001:db8::7]:51820");
    assert_eq!(tunnel.addresses[0].to_string(), "10.5.0.23/16");
    assert!(tunnel.dns_servers.is_empty() && tunnel.search_domains.is_empty());
    assert_eq!(deployment.name, None);
    assert_eq!(deployment.created, None);

    let named: Endpoint = "localhost:51820".parse().expect("name");
    assert_eq!(named.resolve().expect("resolve").port(), 51820);
    let unknown: Endpoint = "cloudlet.invalid:51820".parse().expect("name");
    let e = unknown.resolve().expect_err("unresolvable");
    assert!(e.to_string().contains("cloudlet.invalid"), "{e}");
}

#[test]
fn endpoint_and_address_syntax() {
    for bad in [
        "203.0.113.7",
        "203.0.113.7:",
        "203.0.113.7:99999",
        "203.0.113.7:0",
        "203.0.113.7:51x",
        "2001:db8::7:51820",
        "[2001:db8::7]",
        "[2001:db8::7:51820",
        "[203.0.113.7]:51820",
        ":51820",
        "bad host:51820",
        "-bad.example:51820",
        "10.0.0.300:51820",
    ] {
        assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
    }
    for bad in [
        "10.5.0.1/33",
        "fd00::/129",
        "10.5.0.1/",
        "10.5.0/24",
        "x",
        "10.0.0.1/+8",
    ] {
        assert!(bad.parse::<IpNet>().is_err(), "{bad}");
    }
}

/// Checks `e` is a field error naming `field` with `words` in its message.
fn assert_field(e: &DeployError, field: &str, words: &[&str]) {
    let message = e.to_string();
    assert!(
        matches!(e, DeployError::Field { field: f, .. } if f == field),
        "{e:?}"
    );
    for word in words {
        assert!(message.contains(word), "{message:?} lacks {word:?}");
    }
}

#[test]
fn problem_json_errors() {
    for (status, title) in [(404, "Not Found"), (500, "Internal Server Error")] {
        let server = serve(move |_| {
            reply(
                status,
                "application/problem+json",
                json!({
                    "title": title,
                    "detail": "no cloudlet has a recipe for 4b1de5a1-77c2-4e0f-9a00-000000002022\u{1b}[2J",
                    "status": status,
                    "type": "about:blank",
                })
                .to_string(),
            )
        });
        let e = deploy_error(&server);
        assert!(
            matches!(e, DeployError::Http { status: s, .. } if s == status),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(message.contains(title), "{message}");
        assert!(
            message.contains("no cloudlet has a recipe for"),
            "{message}"
        );
        assert!(message.contains(&status.to_string()), "{message}");
        assert!(message.contains("127.0.0.1"), "{message}");
        assert!(
            !message.contains('\u{1b}'),
            "escape passed through: {message:?}"
        );
        assert!(
            !message.contains("[2J"),
            "escape passed through: {message:?}"
        );
    }
}

#[test]
fn non_json_bodies() {
    let html = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\n\
                <body><h1>Bad \u{1b}[31mGateway</h1>nginx</body></html>";
    // A success status with HTML (a captive portal, a proxy page).
    let server = serve(move |_| reply(200, "text/html", html));
    let e = deploy_error(&server);
    assert!(matches!(e, DeployError::NotJson { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("502 Bad Gateway"), "{message}");
    assert!(message.contains("text/html"), "{message}");
    assert!(
        !message.contains('<') && !message.contains('\u{1b}'),
        "{message:?}"
    );

    // An error status with HTML: the status and an excerpt.
    let server = serve(move |_| reply(502, "text/html", html));
    let message = deploy_error(&server).to_string();
    assert!(message.contains("502"), "{message}");
    assert!(message.contains("Bad Gateway nginx"), "{message}");

    // A long body is cut short.
    let long = "x".repeat(100_000);
    let server = serve(move |_| reply(200, "text/plain", long.clone()));
    let message = deploy_error(&server).to_string();
    assert!(message.len() < 400, "{} bytes", message.len());

    // JSON with a wrong content type.
    let server = serve(|path| reply(200, "text/plain", json!([deployment(path)]).to_string()));
    assert!(matches!(deploy_error(&server), DeployError::NotJson { .. }));
}

#[test]
fn malformed_json() {
    let server = serve(|_| reply(200, "application/json", "[{\"UUID\": \"4b1d"));
    let e = deploy_error(&server);
    assert!(matches!(e, DeployError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("invalid JSON"), "{e}");

    let server = serve(|_| reply(200, "application/json", "{\"UUID\": 1}"));
    let e = deploy_error(&server);
    assert!(e.to_string().contains("array"), "{e}");

    let server = serve(|_| reply(200, "application/json", "[42]"));
    let e = deploy_error(&server);
    assert!(e.to_string().contains("not an object"), "{e}");
}

#[test]
fn empty_list() {
    let server = serve(|_| reply(200, "application/json", "[]"));
    let e = deploy_error(&server);
    assert!(matches!(e, DeployError::NoDeployment { uuid } if uuid == UUID));
    assert_eq!(e.to_string(), format!("no cloudlet could deploy {UUID}"));
}

#[test]
fn bad_keys() {
    let server = serve_deployment(|d| {
        d["TunnelConfig"]["publicKey"] = json!(STANDARD.encode([9u8; 31]));
    });
    assert_field(
        &deploy_error(&server),
        "TunnelConfig.publicKey",
        &["31 bytes"],
    );

    let server = serve_deployment(|d| {
        d["TunnelConfig"]["publicKey"] = json!("not a key at all!");
    });
    assert_field(
        &deploy_error(&server),
        "TunnelConfig.publicKey",
        &["not base64"],
    );

    let server = serve_deployment(|d| d["TunnelConfig"]["publicKey"] = json!(42));
    assert_field(
        &deploy_error(&server),
        "TunnelConfig.publicKey",
        &["not a string"],
    );

    // A deployment for another client key.
    let server = serve_deployment(|d| {
        d["ApplicationKey"] = json!(STANDARD.encode(cloudlet_key()));
    });
    assert_field(
        &deploy_error(&server),
        "ApplicationKey",
        &["another client"],
    );
}

#[test]
fn bad_endpoints() {
    for (endpoint, words) in [
        ("203.0.113.7", &["no port"][..]),
        ("203.0.113.7:99999", &["99999", "out of range"][..]),
        ("2001:db8::7:51820", &["[address]:port"][..]),
    ] {
        let server = serve_deployment(move |d| {
            d["TunnelConfig"]["endpoint"] = json!(endpoint);
        });
        assert_field(&deploy_error(&server), "TunnelConfig.endpoint", words);
    }
}

#[test]
fn bad_fields() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str, &[&str]); 8] = [
        (
            |d| {
                d.as_object_mut().expect("o").remove("TunnelConfig");
            },
            "TunnelConfig",
            &["missing"],
        ),
        (
            |d| {
                d["TunnelConfig"].as_object_mut().expect("o").remove("dns");
            },
            "TunnelConfig.dns",
            &["missing"],
        ),
        (
            |d| d["TunnelConfig"]["address"] = json!([]),
            "TunnelConfig.address",
            &["empty"],
        ),
        (
            |d| d["TunnelConfig"]["address"] = json!(["10.5.0.999"]),
            "TunnelConfig.address[0]",
            &["10.5.0.999"],
        ),
        (
            |d| d["TunnelConfig"]["allowedIPs"] = json!("0.0.0.0/0"),
            "TunnelConfig.allowedIPs",
            &["not a list"],
        ),
        (
            |d| d["TunnelConfig"]["dns"] = json!(["10.43.0.10", "bad domain!"]),
            "TunnelConfig.dns[1]",
            &["neither"],
        ),
        (|d| d["UUID"] = json!("not-a-uuid"), "UUID", &["not a UUID"]),
        (
            |d| d["UUID"] = json!(Uuid::nil().to_string()),
            "UUID",
            &["requested"],
        ),
    ];
    for (edit, field, words) in cases {
        let server = serve_deployment(edit);
        assert_field(&deploy_error(&server), field, words);
    }
}

#[test]
fn expired_status() {
    let server = serve_deployment(|d| d["Status"] = json!("Expired"));
    let e = deploy_error(&server);
    assert!(matches!(&e, DeployError::Status { status, .. } if status == "Expired"));
    assert!(e.to_string().contains("\"Expired\""), "{e}");
}

#[test]
fn connection_refused_is_fast_and_clear() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let tier1 = Tier1::new(&format!("http://127.0.0.1:{port}")).expect("url");
    let start = Instant::now();
    let e = tier1
        .deploy(UUID, &KeyPair::generate())
        .expect_err("nobody listens");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, DeployError::Connect { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("connection refused"), "{message}");
}

#[test]
fn silent_server_times_out() {
    let server = serve(|_| Reply::Silent);
    let tier1 = Tier1::new(&server.url())
        .expect("url")
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(1));
    let start = Instant::now();
    let e = tier1
        .deploy(UUID, &KeyPair::generate())
        .expect_err("no answer");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(
        matches!(e, DeployError::Timeout { after, .. } if after == Duration::from_secs(1)),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("did not answer within 1 s"), "{message}");
    assert_eq!(server.requests().len(), 1, "the request was sent");
}

#[test]
fn bad_tier1_urls() {
    for bad in [
        "",
        "cloudlet.example.org",
        "ftp://x/",
        "http://",
        "http://u:p@x/",
    ] {
        assert!(
            matches!(Tier1::new(bad), Err(DeployError::Url { .. })),
            "{bad}"
        );
    }
    let keys = KeyPair::generate();
    let tier1 = Tier1::new("https://tier1.example.org/prefix/?q=1#f").expect("url");
    assert_eq!(
        tier1.url_for(UUID, &keys),
        format!(
            "https://tier1.example.org/prefix/api/v1/deploy/{UUID}/{}",
            keys.public_urlsafe()
        )
    );
}

// --- The original Python sinfonia-tier3, side by side ---

/// Runs the original `sinfonia-tier3 ARGS` in `cwd` with its cache in
/// `cache`; its stdout.
fn original(args: &[&str], cwd: &Path, cache: &Path) -> String {
    let python = oracle_python();
    let cli = python.with_file_name("sinfonia-tier3");
    let mut command = Command::new(&python);
    command.arg(&cli).args(args).current_dir(cwd);
    command.env("XDG_CACHE_HOME", cache);
    for proxy in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        command.env_remove(proxy);
    }
    let out = command.output().expect("run the original sinfonia-tier3");
    assert!(
        out.status.success(),
        "sinfonia-tier3 {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn side_by_side(edit: fn(&mut Value)) {
    let server = serve_deployment(edit);
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("cache");
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).expect("mkdir");
    let uuid = UUID.to_string();

    original(
        &["--config-debug", &server.url(), &uuid, "true"],
        &cwd,
        &cache,
    );
    let theirs = server.requests();
    assert_eq!(theirs.len(), 1);

    // The same key cache, so the same key: the same request and files.
    let keys = KeyCache::at(cache.join("sinfonia"))
        .load_or_create(UUID)
        .expect("the original's key")
        .keys;
    let deployment = Tier1::new(&server.url())
        .expect("url")
        .deploy(UUID, &keys)
        .expect("deploy");
    let ours = server.requests();
    assert_eq!(ours.len(), 2);
    assert_eq!(ours[1].method, theirs[0].method);
    assert_eq!(ours[1].path, theirs[0].path, "{}", theirs[0].head);

    let read = |name: &str| std::fs::read_to_string(cwd.join(name)).expect(name);
    assert_eq!(wg_conf(&keys, &deployment.tunnel), read("wg.conf"));
    assert_eq!(resolv_conf(&deployment.tunnel), read("resolv.conf"));

    // --qrcode: the wg-quick config with IncludedApplications, same code.
    let apps = ["org.example.viewer", "com.example.other"];
    let config = wg_quick_conf(&keys, &deployment.tunnel, &apps.map(String::from));
    assert!(config.contains("IncludedApplications = org.example.viewer, com.example.other\n"));
    let alt = original(
        &["--qrcode", "alt", &server.url(), &uuid, apps[0], apps[1]],
        &cwd,
        &cache,
    );
    let ours_alt = qrcode(&config, QrStyle::Alt).expect("qr");
    assert_eq!(alt, format!("Deploying... done\n{ours_alt}\n"));
    let compact = original(
        &[
            "--qrcode",
            "compact",
            &server.url(),
            &uuid,
            apps[0],
            apps[1],
        ],
        &cwd,
        &cache,
    );
    let ours_compact = qrcode(&config, QrStyle::Compact).expect("qr");
    assert_eq!(compact, format!("Deploying... done\n{ours_compact}"));
}

#[test]
fn side_by_side_with_the_original() {
    side_by_side(|_| {});
}

#[test]
fn side_by_side_host_name_endpoint() {
    side_by_side(|d| {
        d["TunnelConfig"]["endpoint"] = json!("cloudlet.example.org:31820");
        d["TunnelConfig"]["allowedIPs"] = json!(["10.0.0.0/8", "10.43.0.10"]);
        d["TunnelConfig"]["address"] = json!(["10.5.0.99/32"]);
        d["TunnelConfig"]["dns"] = json!(["10.43.0.10"]);
        d.as_object_mut().expect("o").remove("DeploymentName");
    });
}

#[test]
fn side_by_side_ipv6_endpoint() {
    side_by_side(|d| {
        d["TunnelConfig"]["endpoint"] = json!("[2001:db8::7]:51820");
        d["TunnelConfig"]["allowedIPs"] = json!(["::/0", "fd00::/8"]);
        d["TunnelConfig"]["address"] = json!(["fd00:5::17/64", "10.5.0.7"]);
        d["TunnelConfig"]["dns"] = json!(["fd00:43::a", "cluster.local"]);
    });
}

#[test]
fn wg_quick_and_qr_limits() {
    let server = serve_deployment(|_| {});
    let (deployment, keys) = deploy_from(&server);
    let tunnel = deployment.expect("deploy").tunnel;
    let config = wg_quick_conf(&keys, &tunnel, &[]);
    assert!(!config.contains("IncludedApplications"), "{config}");
    assert!(config.starts_with(&format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.5.0.23/32\nAddress = fd00:5::17/128\n\
         DNS = 10.43.0.10\nDNS = fd00:43::a\nDNS = bold-tesla.svc.cluster.local\n",
        keys.private_base64()
    )));
    assert!(
        config.ends_with("PersistentKeepalive = 30\nAllowedIPs = 0.0.0.0/0\nAllowedIPs = ::/0\n")
    );
    assert_eq!(
        resolv_conf(&tunnel),
        "nameserver 10.43.0.10\nnameserver fd00:43::a\n\
         search bold-tesla.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    );
    let compact = qrcode(&config, QrStyle::Compact).expect("qr");
    let alt = qrcode(&config, QrStyle::Alt).expect("qr");
    assert_eq!(compact.lines().count(), alt.lines().count().div_ceil(2));
    assert!(compact.chars().all(|c| " ▀▄█\n".contains(c)));
    assert!(alt.chars().all(|c| "⬛⬜\n".contains(c)));
    let e = qrcode(&"x".repeat(3000), QrStyle::Alt).expect_err("too large");
    assert!(e.to_string().contains("3000 bytes"), "{e}");
}

#[test]
fn qr_codes_match_segno() {
    // Many contents and sizes (versions 1 to 20 or so, with and without the
    // version information areas), each drawn by segno in one oracle run.
    let mut contents = Vec::new();
    for i in 0..48usize {
        let keys = KeyPair::generate();
        let apps: Vec<String> = (0..i * i / 8)
            .map(|k| format!("org.example.app{k}"))
            .collect();
        let mut text = format!(
            "[Interface]\nPrivateKey = {}\nIncludedApplications = {}\n",
            keys.private_base64(),
            apps.join(", ")
        );
        text.truncate(8 + i * 37 % 1800);
        contents.push(text);
    }
    let mut child = Command::new(oracle_python())
        .arg("-c")
        .arg(
            "import io, json, sys, segno\n\
             for text in json.load(sys.stdin):\n\
             \x20   qr = segno.make_qr(text, mode='byte', encoding='utf-8', eci=True)\n\
             \x20   s = io.StringIO()\n\
             \x20   qr.save(s, kind='txt', dark='1', light='0')\n\
             \x20   print(json.dumps([qr.version, s.getvalue()]))\n",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("oracle python");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(json!(contents).to_string().as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .collect();
    assert_eq!(lines.len(), contents.len());
    let mut versions = std::collections::BTreeSet::new();
    for (text, line) in contents.iter().zip(lines) {
        let (version, theirs): (u32, String) = serde_json::from_str(line).expect("json");
        versions.insert(version);
        let ours = qrcode(text, QrStyle::Alt)
            .expect("qr")
            .replace('⬛', "1")
            .replace('⬜', "0");
        assert_eq!(ours, theirs, "version {version}, {} bytes", text.len());
    }
    assert!(
        versions.iter().any(|&v| v >= 7) && versions.contains(&1),
        "{versions:?}"
    );
}

#[test]
fn answers_are_bounded_in_count() {
    // 20,000 search domains once meant 20,000 lookups per name resolved.
    let many_domains = serve_deployment(|d| {
        let mut dns = vec![json!("10.43.0.10")];
        dns.extend((0..20_000).map(|i| json!(format!("d{i}.example"))));
        d["TunnelConfig"]["dns"] = json!(dns);
    });
    let e = deploy_error(&many_domains);
    assert_field(&e, "TunnelConfig.dns", &["20001", "at most 16"]);
    let seven_domains = serve_deployment(|d| {
        let dns: Vec<Value> = (0..7).map(|i| json!(format!("d{i}.example"))).collect();
        d["TunnelConfig"]["dns"] = json!(dns);
    });
    let e = deploy_error(&seven_domains);
    assert_field(&e, "TunnelConfig.dns (search domains)", &["7", "at most 6"]);
    let four_servers = serve_deployment(|d| {
        let dns: Vec<Value> = (1..=4).map(|i| json!(format!("10.43.0.{i}"))).collect();
        d["TunnelConfig"]["dns"] = json!(dns);
    });
    let e = deploy_error(&four_servers);
    assert_field(&e, "TunnelConfig.dns (name servers)", &["4", "at most 3"]);
    let many_networks = serve_deployment(|d| {
        let nets: Vec<Value> = (0..65).map(|i| json!(format!("10.9.{i}.0/24"))).collect();
        d["TunnelConfig"]["allowedIPs"] = json!(nets);
    });
    let e = deploy_error(&many_networks);
    assert_field(&e, "TunnelConfig.allowedIPs", &["65", "at most 64"]);
}

#[test]
fn networks_hold_their_addresses_and_mapped_ones() {
    let ten = net("10.1.0.0/16");
    assert!(ten.contains(ip("10.1.255.1")));
    assert!(ten.contains(ip("::ffff:10.1.0.1")));
    assert!(!ten.contains(ip("10.2.0.1")));
    assert!(!ten.contains(ip("::1")));
    let all = net("0.0.0.0/0");
    assert!(all.contains(ip("8.8.8.8")));
    let host = net("127.0.0.1");
    assert!(host.contains(ip("127.0.0.1")));
    assert!(!host.contains(ip("127.0.0.2")));
    let v6 = net("fd00::/8");
    assert!(v6.contains(ip("fd12::1")));
    assert!(!v6.contains(ip("fe80::1")));
}

fn net(text: &str) -> IpNet {
    text.parse().expect("a network")
}

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().expect("an address")
}
