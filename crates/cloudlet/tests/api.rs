//! The cloudlet's HTTP API over real HTTP, against a real recipe directory.
//!
//! The backend here is a RECORDING fake defined in this file: it remembers
//! which VMs it was asked to start and stop and which tunnel peers to add
//! and remove, and keeps count of VMs running at once. That is deliberate:
//! this crate is the machine-independent registry and API, and the real
//! QEMU and WireGuard backends are tested against real VMs and tunnels in
//! their own crates. Everything else is real: the axum server on a loopback
//! port, blocking HTTP clients (ours from `sinfonia` included), recipes
//! written the way `olive2022 convert` writes them.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cloudlet::{Backend, BackendError, Cloudlet, CloudletConfig, DeploymentSpec, Registry};
use reqwest::Method;
use serde_json::{Value, json};
use sinfonia::Recipe;
use sinfonia::vmi::{ContainerDisk, Requests, Resources, VirtVnc, VmiValues};
use uuid::Uuid;
use vmnetx::bus::KubevirtBus;

const APP: Uuid = Uuid::from_u128(0x755e5883_0788_44da_8778_2113eddf4271);
const PRIVATE_APP: Uuid = Uuid::from_u128(0x737b5001_d27a_413f_9806_abf9bfce6746);
const CLOUDLET_KEY: [u8; 32] = [7; 32];
const ENDPOINT: &str = "203.0.113.7:51820";
/// The repository the recording backend refuses to pull from.
const UNREACHABLE: &str = "unreachable.invalid/olive2022";

// ---------------------------------------------------------------------------
// The recording backend

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Start {
        name: String,
        uuid: Uuid,
        address: Ipv4Addr,
        memory: u64,
        cpus: u32,
    },
    Stop(String),
    AddPeer([u8; 32], Ipv4Addr),
    RemovePeer([u8; 32], Ipv4Addr),
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    running: Mutex<HashSet<String>>,
    peak: AtomicUsize,
    start_delay: Mutex<Duration>,
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn starts(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Start { .. }))
            .count()
    }

    fn running(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

struct RecordingBackend(Arc<Recorder>);

impl Backend for RecordingBackend {
    type Running = String;

    fn start(&self, spec: &DeploymentSpec) -> Result<String, BackendError> {
        let delay = *self.0.start_delay.lock().unwrap();
        thread::sleep(delay);
        let disk = &spec.settings.values.container_disk;
        if disk.repository == UNREACHABLE {
            return Err(BackendError::failed(format!(
                "cannot pull {}/{}: connection refused",
                disk.repository, disk.name
            )));
        }
        self.0.record(Event::Start {
            name: spec.name.clone(),
            uuid: spec.uuid,
            address: spec.client_address,
            memory: spec.settings.memory_bytes,
            cpus: spec.settings.cpus,
        });
        let mut running = self.0.running.lock().unwrap();
        assert!(
            running.insert(spec.name.clone()),
            "{} started twice",
            spec.name
        );
        self.0.peak.fetch_max(running.len(), Ordering::SeqCst);
        Ok(spec.name.clone())
    }

    fn stop(&self, name: &String) -> Result<(), BackendError> {
        assert!(
            self.0.running.lock().unwrap().remove(name),
            "{name} stopped twice"
        );
        self.0.record(Event::Stop(name.clone()));
        Ok(())
    }

    fn add_peer(&self, key: &[u8; 32], address: Ipv4Addr) -> Result<(), BackendError> {
        self.0.record(Event::AddPeer(*key, address));
        Ok(())
    }

    fn remove_peer(&self, key: &[u8; 32], address: Ipv4Addr) -> Result<(), BackendError> {
        self.0.record(Event::RemovePeer(*key, address));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Recipes, as `olive2022 convert` writes them

fn values(repository: &str, name: Uuid, memory: &str) -> VmiValues {
    VmiValues {
        container_disk: ContainerDisk {
            repository: repository.to_owned(),
            name: name.to_string(),
            tag: Some("latest".to_owned()),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            bus: KubevirtBus::Sata,
        },
        resources: Resources {
            requests: Requests {
                cpu: 2,
                memory: memory.to_owned(),
            },
        },
        virtvnc: VirtVnc {
            fullname_override: "vmi".to_owned(),
        },
        container_disk_credentials: None,
        machine: None,
    }
}

fn recipe_yaml(values: &VmiValues, restricted: bool) -> String {
    Recipe {
        description: Some("Windows 3.1".to_owned()),
        chart: "https://cmusatyalab.github.io/olive2022/vmi".to_owned(),
        version: "0.2.0".to_owned(),
        values: values.to_values(),
        restricted,
    }
    .to_yaml()
    .unwrap()
}

fn write_recipe(dir: &Path, uuid: Uuid, yaml: &str) {
    std::fs::write(dir.join(format!("{uuid}.yaml")), yaml).unwrap();
}

// ---------------------------------------------------------------------------
// The server

struct Server {
    addr: SocketAddr,
    registry: Registry<RecordingBackend>,
    recorder: Arc<Recorder>,
    recipes: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(|_| {})
    }

    fn start_with(configure: impl FnOnce(&mut CloudletConfig)) -> Server {
        let recipes = tempfile::tempdir().unwrap();
        write_recipe(
            recipes.path(),
            APP,
            &recipe_yaml(
                &values("registry.example.org/olive2022", APP, "256Mi"),
                false,
            ),
        );
        write_recipe(
            recipes.path(),
            PRIVATE_APP,
            &recipe_yaml(
                &values("registry.example.org/olive2022", PRIVATE_APP, "1Gi"),
                true,
            ),
        );
        let mut config = CloudletConfig::new(recipes.path(), ENDPOINT, CLOUDLET_KEY);
        config.listen = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        let recorder = Arc::new(Recorder::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cloudlet = runtime
            .block_on(Cloudlet::bind(
                config,
                RecordingBackend(Arc::clone(&recorder)),
            ))
            .unwrap();
        let addr = cloudlet.local_addr();
        let registry = cloudlet.registry();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            runtime
                .block_on(cloudlet.run(async {
                    let _ = stop.await;
                }))
                .unwrap();
        });
        Server {
            addr,
            registry,
            recorder,
            recipes,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.addr)
    }

    fn call(&self, method: Method, path: &str) -> Reply {
        self.call_with_body(method, path, Vec::new())
    }

    fn call_with_body(&self, method: Method, path: &str, body: Vec<u8>) -> Reply {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = client
            .request(method, self.url(path))
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.bytes().unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status} {content_type}: {e}: {bytes:?}"))
        };
        Reply {
            status,
            content_type,
            json,
        }
    }

    fn deploy(&self, uuid: &str, key: &str) -> Reply {
        self.call(Method::POST, &format!("/deploy/{uuid}/{key}"))
    }

    /// Stops the server (which releases every deployment) and waits.
    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.shutdown.is_some() && !thread::panicking() {
            self.stop();
        }
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    json: Value,
}

impl Reply {
    /// Asserts a problem+json answer with `status`, a title and a detail;
    /// returns the detail.
    #[track_caller]
    fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.json["status"], status, "{self:?}");
        assert_eq!(self.json["type"], "about:blank", "{self:?}");
        let title = self.json["title"].as_str().unwrap();
        let detail = self.json["detail"].as_str().unwrap();
        assert!(!title.is_empty() && !detail.is_empty(), "{self:?}");
        detail.to_owned()
    }

    /// The single deployment of a successful POST.
    #[track_caller]
    fn deployment(&self) -> &Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.content_type, "application/json", "{self:?}");
        let list = self.json.as_array().expect("a JSON array");
        assert_eq!(list.len(), 1, "{self:?}");
        &list[0]
    }
}

fn key(n: u8) -> [u8; 32] {
    let mut key = [n; 32];
    key[0] = 0x42;
    key
}

fn urlsafe(key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

fn address_of(deployment: &Value) -> Ipv4Addr {
    deployment["TunnelConfig"]["address"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Polls `condition` every 20 ms for up to 10 s.
#[track_caller]
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn deploy_answers_sinfonias_exact_shape() {
    let server = Server::start();
    let client = key(1);
    let reply = server.deploy(&APP.to_string(), &urlsafe(&client));
    let deployment = reply.deployment();

    let fields: BTreeSet<&str> = deployment
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "ApplicationKey",
            "Created",
            "DeploymentName",
            "Status",
            "TunnelConfig",
            "UUID"
        ])
    );
    let tunnel = deployment["TunnelConfig"].as_object().unwrap();
    let fields: BTreeSet<&str> = tunnel.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        BTreeSet::from(["address", "allowedIPs", "dns", "endpoint", "publicKey"])
    );

    assert_eq!(deployment["UUID"], APP.to_string());
    assert_eq!(deployment["Status"], "Deployed");
    // Standard base64 with padding, whatever form the request used.
    assert_eq!(deployment["ApplicationKey"], STANDARD.encode(client));
    let name = deployment["DeploymentName"].as_str().unwrap();
    let words: Vec<&str> = name.split('-').collect();
    assert_eq!(words.len(), 2, "{name}");
    assert!(
        words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
    );

    // Created: RFC 3339 with an offset, to the second, and recent.
    let created = deployment["Created"].as_str().unwrap();
    assert_eq!(created.len(), 25, "{created}");
    assert!(created.ends_with("+00:00"), "{created}");
    assert_eq!(&created[10..11], "T");
    let year: i32 = created[..4].parse().unwrap();
    assert!(year >= 2025, "{created}");

    assert_eq!(tunnel["publicKey"], STANDARD.encode(CLOUDLET_KEY));
    assert_eq!(tunnel["endpoint"], ENDPOINT);
    assert_eq!(tunnel["allowedIPs"], json!(["0.0.0.0/0"]));
    let addresses = tunnel["address"].as_array().unwrap();
    assert_eq!(addresses.len(), 1);
    let address = address_of(deployment);
    assert_eq!(
        address.octets()[..2],
        [10, 5],
        "{address} not in 10.5.0.0/16"
    );
    assert!(address != Ipv4Addr::new(10, 5, 0, 1) && address != Ipv4Addr::new(10, 5, 0, 0));
    assert_eq!(
        tunnel["dns"],
        json!([
            "10.5.0.1",
            format!("{name}.svc.cluster.local"),
            "svc.cluster.local",
            "cluster.local"
        ])
    );

    // The backend was asked for the recipe's VM and the client's /32.
    assert_eq!(
        server.recorder.events(),
        [
            Event::Start {
                name: name.to_owned(),
                uuid: APP,
                address,
                memory: 256 << 20,
                cpus: 2
            },
            Event::AddPeer(client, address),
        ]
    );

    // GET: the same deployment, as one object.
    let got = server.call(Method::GET, &format!("/deploy/{APP}/{}", urlsafe(&client)));
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type, "application/json");
    assert_eq!(&got.json, deployment);
}

#[test]
fn our_tier3_client_accepts_the_answer() {
    let server = Server::start();
    let keys = sinfonia::keys::KeyPair::generate();
    let tier1 = sinfonia::deploy::Tier1::new(&format!("http://{}", server.addr)).unwrap();
    let deployment = tier1.deploy(APP, &keys).unwrap();
    assert_eq!(deployment.uuid, APP);
    assert_eq!(deployment.application_key, keys.public_bytes());
    assert_eq!(deployment.tunnel.peer_public_key, CLOUDLET_KEY);
    assert_eq!(deployment.tunnel.endpoint.to_string(), ENDPOINT);
    let name = deployment.name.unwrap();
    assert_eq!(deployment.tunnel.dns_servers, [Ipv4Addr::new(10, 5, 0, 1)]);
    assert_eq!(
        deployment.tunnel.search_domains,
        [
            format!("{name}.svc.cluster.local"),
            "svc.cluster.local".to_owned(),
            "cluster.local".to_owned()
        ]
    );
    let address = deployment.tunnel.addresses[0];
    assert_eq!(address.prefix, 32);
    // The alias works through the client too.
    write_recipe(
        server.recipes.path(),
        Uuid::nil(),
        &recipe_yaml(
            &values("registry.example.org/olive2022", Uuid::nil(), "64Mi"),
            false,
        ),
    );
    let hello = server.deploy("helloworld", &keys.public_urlsafe());
    assert_eq!(hello.deployment()["UUID"], Uuid::nil().to_string());
}

#[test]
fn same_key_same_deployment_and_the_lease_is_extended() {
    let server = Server::start_with(|config| {
        config.idle_timeout = Duration::from_millis(2000);
    });
    let client = urlsafe(&key(1));
    let first = server
        .deploy(&APP.to_string(), &client)
        .deployment()
        .clone();
    thread::sleep(Duration::from_millis(1200));
    let second = server
        .deploy(&APP.to_string(), &client)
        .deployment()
        .clone();
    assert_eq!(second["DeploymentName"], first["DeploymentName"]);
    assert_eq!(second["TunnelConfig"], first["TunnelConfig"]);
    assert_eq!(server.recorder.starts(), 1, "started once");
    // 2.4 s after the first request, 1.2 s after the second: still leased.
    thread::sleep(Duration::from_millis(1200));
    let got = server.call(Method::GET, &format!("/deploy/{APP}/{client}"));
    assert_eq!(got.json["Status"], "Deployed", "{got:?}");
    assert_eq!(server.recorder.running(), 1);

    // Tunnel traffic extends it too.
    let address = address_of(&first);
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(500));
        assert!(server.registry.touch(address));
    }
    let got = server.call(Method::GET, &format!("/deploy/{APP}/{client}"));
    assert_eq!(got.json["Status"], "Deployed", "{got:?}");
    assert!(!server.registry.touch(Ipv4Addr::new(10, 5, 200, 200)));
}

#[test]
fn two_keys_get_two_deployments() {
    let server = Server::start();
    let a = server.deploy(&APP.to_string(), &urlsafe(&key(1)));
    let b = server.deploy(&APP.to_string(), &urlsafe(&key(2)));
    let (a, b) = (a.deployment(), b.deployment());
    assert_ne!(a["DeploymentName"], b["DeploymentName"]);
    assert_ne!(address_of(a), address_of(b));
    assert_ne!(a["ApplicationKey"], b["ApplicationKey"]);
    // The same key for another backend is another deployment too.
    let c = server.deploy(&PRIVATE_APP.to_string(), &urlsafe(&key(1)));
    let c = c.deployment();
    assert_ne!(c["DeploymentName"], a["DeploymentName"]);
    assert_ne!(address_of(c), address_of(a));
    assert_eq!(server.recorder.starts(), 3);
    assert_eq!(server.registry.deployments().len(), 3);
}

#[test]
fn key_forms_and_bad_path_parameters() {
    let server = Server::start();
    let client = [0xfb; 32];
    let standard = STANDARD.encode(client);
    assert!(standard.contains('+') && standard.contains('/') && standard.ends_with('='));
    let first = server.deploy(&APP.to_string(), &urlsafe(&client));
    let name = first.deployment()["DeploymentName"].clone();
    // Standard base64, raw (the key is the rest of the path) and escaped,
    // and URL-safe with padding: all the same client.
    let escaped = standard.replace('/', "%2F").replace('+', "%2B");
    let padded = format!("{}=", urlsafe(&client));
    for form in [standard.as_str(), escaped.as_str(), padded.as_str()] {
        let again = server.deploy(&APP.to_string(), form);
        assert_eq!(again.deployment()["DeploymentName"], name, "{form}");
    }
    // Hyphen-less UUIDs are the same backend.
    let simple = APP.simple().to_string();
    assert_eq!(
        server.deploy(&simple, &urlsafe(&client)).deployment()["DeploymentName"],
        name
    );
    assert_eq!(server.recorder.starts(), 1);

    let detail = server.deploy(&APP.to_string(), "not-base64!!").problem(400);
    assert!(detail.contains("not base64"), "{detail}");
    let short = URL_SAFE_NO_PAD.encode([1u8; 31]);
    let detail = server.deploy(&APP.to_string(), &short).problem(400);
    assert!(detail.contains("31 bytes"), "{detail}");
    let detail = server.deploy("not-a-uuid", &urlsafe(&client)).problem(400);
    assert!(
        detail.contains("not-a-uuid") && detail.contains("helloworld"),
        "{detail}"
    );
    server
        .call(Method::GET, &format!("/deploy/{APP}/{short}"))
        .problem(400);
    server
        .call(
            Method::DELETE,
            &format!("/deploy/oops/{}", urlsafe(&client)),
        )
        .problem(400);

    // Unknown backend.
    let unknown = Uuid::from_u128(1);
    let detail = server
        .deploy(&unknown.to_string(), &urlsafe(&client))
        .problem(404);
    assert!(detail.contains(&unknown.to_string()), "{detail}");
    // `helloworld` without a nil-UUID recipe is unknown too.
    let detail = server.deploy("helloworld", &urlsafe(&client)).problem(404);
    assert!(
        detail.contains("00000000-0000-0000-0000-000000000000"),
        "{detail}"
    );
    assert_eq!(server.recorder.starts(), 1);
}

#[test]
fn bad_recipes_are_refused_clearly() {
    let server = Server::start();
    let dir = server.recipes.path();
    let good = recipe_yaml(
        &values("registry.example.org/olive2022", APP, "256Mi"),
        false,
    );
    let cases: Vec<(u128, String, &str)> = vec![
        // The original olive2022 wrote Python tags into recipes.
        (
            0x10,
            good.replace(
                &format!("name: {APP}"),
                "name: !!python/object:uuid.UUID\n      int: 1",
            ),
            "python/object:uuid.UUID",
        ),
        (
            0x11,
            good.lines()
                .filter(|l| !l.starts_with("chart:"))
                .collect::<Vec<_>>()
                .join("\n"),
            "chart",
        ),
        (
            0x12,
            recipe_yaml(&values("r.example/x", APP, "2Ti"), false),
            "more than the 1024 GiB allowed",
        ),
        (
            0x13,
            recipe_yaml(&values("r.example/x", APP, "256Zi"), false),
            "unknown unit `Zi`",
        ),
        (
            0x14,
            "chart: vmi\nversion: 0.2.0\nvalues:\n  fullnameOverride: x\n".to_owned(),
            "not those of the vmi chart",
        ),
        (0x15, "chart: [unclosed\n".to_owned(), "invalid"),
    ];
    for (n, yaml, expected) in cases {
        let uuid = Uuid::from_u128(n);
        write_recipe(dir, uuid, &yaml);
        let reply = server.deploy(&uuid.to_string(), &urlsafe(&key(1)));
        if reply.status == 422 {
            // A recipe that loads but whose VM cannot run here: the client
            // is told what to change.
            let detail = reply.problem(422);
            assert!(detail.contains(expected), "{n:x}: {detail}");
            assert_eq!(reply.json["title"], "Recipe cannot run here");
        } else {
            // A file that is not a recipe: the client learns which recipe,
            // never what is in it (that is for the operator's log).
            let detail = reply.problem(500);
            assert!(!detail.contains(expected), "{n:x} leaks: {detail}");
            assert!(detail.contains("log"), "{n:x}: {detail}");
            assert_eq!(reply.json["title"], "Invalid recipe");
        }
        assert!(
            reply.json["detail"]
                .as_str()
                .unwrap()
                .contains(&uuid.to_string())
        );
        let loads = !matches!(n, 0x10 | 0x11 | 0x15);
        assert_eq!(reply.status, if loads { 422 } else { 500 }, "{n:x}");
    }
    // The Python tag is also refused by the recipe endpoint.
    server
        .call(Method::GET, &format!("/recipe/{}/", Uuid::from_u128(0x10)))
        .problem(500);
    assert_eq!(server.recorder.starts(), 0);
    assert!(server.registry.deployments().is_empty());

    // Recipes are read at each request: fixing one makes it deployable.
    let fixed = Uuid::from_u128(0x12);
    write_recipe(
        dir,
        fixed,
        &recipe_yaml(&values("r.example/x", fixed, "512Mi"), true),
    );
    server
        .deploy(&fixed.to_string(), &urlsafe(&key(1)))
        .deployment();
}

#[test]
fn a_vm_larger_than_the_runner_takes_is_refused_before_any_pull() {
    let server = Server::start();
    let dir = server.recipes.path();
    let cases = [
        (0x20, 65, "256Mi", "cpu 65 is out of range (1–64)"),
        (0x21, 0, "256Mi", "cpu 0 is out of range (1–64)"),
        (0x22, 2, "8Mi", "less than the 16 MiB needed"),
    ];
    for (n, cpus, memory, expected) in cases {
        let uuid = Uuid::from_u128(n);
        let mut too_big = values("registry.example.org/olive2022", uuid, memory);
        too_big.resources.requests.cpu = cpus;
        write_recipe(dir, uuid, &recipe_yaml(&too_big, false));
        let reply = server.deploy(&uuid.to_string(), &urlsafe(&key(1)));
        let detail = reply.problem(422);
        assert!(detail.contains(expected), "{n:x}: {detail}");
        assert_eq!(reply.json["title"], "Recipe cannot run here");
    }
    // The backend (which pulls the image first thing) was never asked.
    assert_eq!(server.recorder.starts(), 0);
    assert!(server.recorder.events().is_empty());
    assert!(server.registry.deployments().is_empty());
}

#[test]
fn recipe_endpoint() {
    let server = Server::start();
    let public = server.call(Method::GET, &format!("/recipe/{APP}/"));
    assert_eq!(public.status, 200);
    assert_eq!(public.content_type, "application/json");
    let fields: BTreeSet<&str> = public
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["chart", "description", "values", "version"])
    );
    assert_eq!(public.json["version"], "0.2.0");
    assert_eq!(
        public.json["values"]["resources"]["requests"]["memory"],
        "256Mi"
    );
    assert_eq!(
        server.call(Method::GET, &format!("/recipe/{APP}")).json,
        public.json
    );

    let detail = server
        .call(Method::GET, &format!("/recipe/{PRIVATE_APP}/"))
        .problem(403);
    assert!(detail.contains("restricted"), "{detail}");
    server
        .call(Method::GET, &format!("/recipe/{}/", Uuid::from_u128(9)))
        .problem(404);
    server.call(Method::GET, "/recipe/nope/").problem(400);
    // A restricted recipe is still deployable.
    server
        .deploy(&PRIVATE_APP.to_string(), &urlsafe(&key(1)))
        .deployment();
}

#[test]
fn max_vms_is_enforced_with_a_503() {
    let server = Server::start_with(|config| config.max_vms = 2);
    server
        .deploy(&APP.to_string(), &urlsafe(&key(1)))
        .deployment();
    server
        .deploy(&APP.to_string(), &urlsafe(&key(2)))
        .deployment();
    let reply = server.deploy(&APP.to_string(), &urlsafe(&key(3)));
    let detail = reply.problem(503);
    assert!(detail.contains("maximum of 2 VMs"), "{detail}");
    assert_eq!(reply.json["title"], "Cloudlet at capacity");
    // Existing clients still get theirs.
    server
        .deploy(&APP.to_string(), &urlsafe(&key(1)))
        .deployment();
    // Releasing one makes room.
    let released = server.call(
        Method::DELETE,
        &format!("/deploy/{APP}/{}", urlsafe(&key(2))),
    );
    assert_eq!(released.status, 204);
    server
        .deploy(&APP.to_string(), &urlsafe(&key(3)))
        .deployment();
    assert_eq!(server.recorder.peak.load(Ordering::SeqCst), 2);
}

#[test]
fn delete_releases_the_deployment() {
    let mut server = Server::start();
    let client = key(1);
    let path = format!("/deploy/{APP}/{}", urlsafe(&client));
    let deployment = server.call(Method::POST, &path).deployment().clone();
    let name = deployment["DeploymentName"].as_str().unwrap().to_owned();
    let address = address_of(&deployment);

    let deleted = server.call(Method::DELETE, &path);
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.json, Value::Null);
    let detail = server.call(Method::GET, &path).problem(404);
    assert!(detail.contains(&APP.to_string()), "{detail}");
    server.call(Method::DELETE, &path).problem(404);
    let events = server.recorder.events();
    assert!(events.contains(&Event::Stop(name.clone())), "{events:?}");
    assert!(
        events.contains(&Event::RemovePeer(client, address)),
        "{events:?}"
    );
    assert_eq!(server.recorder.running(), 0);

    // The next request starts over with a new deployment.
    let again = server.call(Method::POST, &path).deployment().clone();
    assert_eq!(again["Status"], "Deployed");
    assert_eq!(server.recorder.starts(), 2);
    // Stopping the server releases what is left.
    server.stop();
    assert_eq!(server.recorder.running(), 0);
}

#[test]
fn idle_deployments_expire() {
    let server = Server::start_with(|config| {
        config.idle_timeout = Duration::from_millis(300);
        config.expiring_grace = Duration::from_millis(1500);
    });
    let client = key(1);
    let path = format!("/deploy/{APP}/{}", urlsafe(&client));
    let first = server.call(Method::POST, &path).deployment().clone();
    let name = first["DeploymentName"].as_str().unwrap().to_owned();
    let address = address_of(&first);

    // Idle: the peer is removed and the VM stopped; name and address kept.
    wait_for("Expiring", || {
        server.call(Method::GET, &path).json["Status"] == "Expiring"
    });
    let events = server.recorder.events();
    assert!(events.contains(&Event::Stop(name.clone())), "{events:?}");
    assert!(
        events.contains(&Event::RemovePeer(client, address)),
        "{events:?}"
    );
    assert_eq!(server.recorder.running(), 0);
    assert!(!server.registry.touch(address), "no lease to extend");

    // A new request brings it back under the same name and address.
    let back = server.call(Method::POST, &path).deployment().clone();
    assert_eq!(back["Status"], "Deployed");
    assert_eq!(back["DeploymentName"], first["DeploymentName"]);
    assert_eq!(address_of(&back), address);
    assert_eq!(server.recorder.starts(), 2);

    // Idle again, then past the grace period: forgotten, address freed.
    wait_for("Expired", || server.call(Method::GET, &path).status == 404);
    assert!(server.registry.deployments().is_empty());
    assert!(server.registry.by_address(address).is_none());
    assert_eq!(server.recorder.running(), 0);
    let fresh = server.call(Method::POST, &path).deployment().clone();
    assert_ne!(
        address_of(&fresh),
        address,
        "a freed address is not reused at once"
    );
}

#[test]
fn backend_failures_are_500_problems_and_leave_nothing() {
    let server = Server::start();
    let broken = Uuid::from_u128(0x20);
    write_recipe(
        server.recipes.path(),
        broken,
        &recipe_yaml(&values(UNREACHABLE, broken, "256Mi"), false),
    );
    let path = format!("/deploy/{broken}/{}", urlsafe(&key(1)));
    let reply = server.call(Method::POST, &path);
    let detail = reply.problem(500);
    assert_eq!(reply.json["title"], "Deployment failed");
    assert!(detail.contains("connection refused"), "{detail}");
    server.call(Method::GET, &path).problem(404);
    assert!(server.registry.deployments().is_empty());
}

#[test]
fn a_burst_of_deploy_requests() {
    // Many requests from one address: this is about capacity, not the
    // per-address limit.
    let mut server = Server::start_with(|config| {
        config.max_vms = 3;
        config.deploy_rate = 0;
    });
    *server.recorder.start_delay.lock().unwrap() = Duration::from_millis(30);
    let started = Instant::now();
    let statuses = Mutex::new(Vec::new());
    let names = Mutex::new(HashSet::new());
    thread::scope(|scope| {
        for t in 0..8u8 {
            let (server, statuses, names) = (&server, &statuses, &names);
            scope.spawn(move || {
                for i in 0..25u8 {
                    // 20 clients, so some requests race for the same key.
                    let client = key((t * 25 + i) % 20);
                    let reply = server.deploy(&APP.to_string(), &urlsafe(&client));
                    match reply.status {
                        200 => {
                            let name = reply.deployment()["DeploymentName"].clone();
                            names.lock().unwrap().insert(name.to_string());
                        }
                        _ => {
                            reply.problem(503);
                        }
                    }
                    statuses.lock().unwrap().push(reply.status);
                }
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    assert_eq!(statuses.len(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok >= 3, "{ok} answered 200");
    assert!(names.into_inner().unwrap().len() <= 3);
    assert!(server.recorder.peak.load(Ordering::SeqCst) <= 3);
    assert!(server.registry.active() <= 3);
    assert_eq!(
        server.registry.deployments().len(),
        server.recorder.running()
    );
    server.stop();
    assert_eq!(server.recorder.running(), 0, "every VM stopped at shutdown");
}

#[test]
fn cloudlets_list_and_reports() {
    let server = Server::start();
    let list = server.call(Method::GET, "/cloudlets/");
    assert_eq!(list.status, 200);
    let list = list.json.as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    let own = &list[0];
    assert_eq!(
        own["endpoint"],
        format!("http://{}/api/v1/deploy", server.addr)
    );
    assert!(own["uuid"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert_eq!(own["accepted_clients"], json!(["0.0.0.0/0"]));
    assert_eq!(own["resources"]["max_vms"], 4.0);
    assert_eq!(own["resources"]["vms"], 0.0);
    for field in [
        "locations",
        "local_networks",
        "rejected_clients",
        "last_update",
    ] {
        assert!(own.get(field).is_some(), "{field} missing: {own}");
    }

    let report = json!({
        "uuid": "2b1f6b0e-8f57-4d4e-9b0a-5d2d5d0c8a11",
        "endpoint": "http://192.0.2.10:5000/api/v1/deploy",
        "resources": {"cpu_ratio": 0.25},
        "locations": [[40.44, -79.94]],
        "local_networks": ["192.0.2.0/24"],
        "accepted_clients": ["0.0.0.0/0"],
        "extra": "ignored",
    });
    let posted = server.call_with_body(
        Method::POST,
        "/cloudlets/",
        serde_json::to_vec(&report).unwrap(),
    );
    assert_eq!(posted.status, 204);
    let list = server.call(Method::GET, "/cloudlets/").json;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["uuid"], report["uuid"]);
    assert_eq!(list[1]["endpoint"], report["endpoint"]);
    assert_eq!(list[1]["resources"]["cpu_ratio"], 0.25);
    assert!(list[1]["last_update"].is_string());
    // Reporting again replaces the entry.
    server.call_with_body(
        Method::POST,
        "/cloudlets",
        serde_json::to_vec(&report).unwrap(),
    );
    assert_eq!(
        server
            .call(Method::GET, "/cloudlets")
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let mut no_uuid = report.clone();
    no_uuid.as_object_mut().unwrap().remove("uuid");
    let detail = server
        .call_with_body(
            Method::POST,
            "/cloudlets/",
            serde_json::to_vec(&no_uuid).unwrap(),
        )
        .problem(400);
    assert!(detail.contains("uuid"), "{detail}");
    let mut bad_location = report.clone();
    bad_location["locations"] = json!([[140.0, 0.0]]);
    server
        .call_with_body(
            Method::POST,
            "/cloudlets/",
            serde_json::to_vec(&bad_location).unwrap(),
        )
        .problem(400);
    server
        .call_with_body(Method::POST, "/cloudlets/", b"{not json".to_vec())
        .problem(400);
}

#[test]
fn every_error_is_a_problem() {
    let server = Server::start();
    let client = urlsafe(&key(1));
    // Unknown endpoints and methods.
    server.call(Method::GET, "/nowhere").problem(404);
    server.call(Method::GET, "/api/v2/deploy").problem(404);
    server
        .call(Method::PUT, &format!("/deploy/{APP}/{client}"))
        .problem(405);
    server.call(Method::DELETE, "/cloudlets/").problem(405);
    // Bodies too large.
    server
        .call_with_body(Method::POST, "/cloudlets/", vec![b' '; 100 * 1024])
        .problem(413);
    // A path that is not UTF-8 once decoded.
    server
        .call(Method::POST, &format!("/deploy/{APP}/%FF%FE"))
        .problem(400);
}

// ---------------------------------------------------------------------------
// Hostile recipe directories and requests

#[test]
fn a_fifo_in_the_recipe_directory_blocks_nothing() {
    let server = Server::start();
    let fifo = Uuid::from_u128(0x30);
    let path = server.recipes.path().join(format!("{fifo}.yaml"));
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    // Far more requests than the blocking pool has threads would have hung
    // the cloudlet when each opened the FIFO and waited for a writer.
    let started = Instant::now();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let url = server.url(&format!("/deploy/{fifo}/{}", urlsafe(&key(1))));
            thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(url)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), 500);
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // A symbolic link to a FIFO is refused the same way.
    let linked = Uuid::from_u128(0x31);
    std::os::unix::fs::symlink(&path, server.recipes.path().join(format!("{linked}.yaml")))
        .unwrap();
    let detail = server
        .deploy(&linked.to_string(), &urlsafe(&key(1)))
        .problem(500);
    assert!(detail.contains(&linked.to_string()), "{detail}");
    // And the cloudlet still serves.
    server
        .deploy(&APP.to_string(), &urlsafe(&key(2)))
        .deployment();
}

#[test]
fn recipe_errors_never_show_the_files_contents() {
    let server = Server::start();
    let dir = server.recipes.path();
    let secret = dir.join("secret");
    std::fs::write(
        &secret,
        "root:x:0:0:SECRET-ROOT-LINE:/root:/bin/bash\ndaemon:x:1:1:SECRET-DAEMON\n",
    )
    .unwrap();
    let linked = Uuid::from_u128(0x40);
    std::os::unix::fs::symlink(&secret, dir.join(format!("{linked}.yaml"))).unwrap();
    // A restricted recipe that does not parse: its text must not leak
    // through the recipe endpoint either.
    let broken = Uuid::from_u128(0x41);
    write_recipe(
        dir,
        broken,
        "restricted: true\nchart: vmi\nversion: [SECRET-IN-RESTRICTED\n",
    );
    for uuid in [linked, broken] {
        for reply in [
            server.deploy(&uuid.to_string(), &urlsafe(&key(1))),
            server.call(Method::GET, &format!("/recipe/{uuid}/")),
        ] {
            let detail = reply.problem(500);
            let body = reply.json.to_string();
            assert!(!body.contains("SECRET"), "{body}");
            assert!(!body.contains("root:x"), "{body}");
            assert!(detail.contains(&uuid.to_string()), "{detail}");
        }
    }
}

#[test]
fn overlong_request_targets_get_a_414_problem() {
    let server = Server::start();
    let client = urlsafe(&key(1));
    // Within what the HTTP library reads: refused before the HTTP library
    // sees it on a new connection, and by the router on a kept-alive one.
    let long = format!("/deploy/{APP}/{client}?{}", "a".repeat(10 * 1024));
    let detail = server.call(Method::POST, &long).problem(414);
    assert!(detail.contains("longer than"), "{detail}");
    let kept_alive = reqwest::blocking::Client::new();
    let first = kept_alive.get(server.url("/cloudlets/")).send().unwrap();
    assert_eq!(first.status(), 200);
    let second = kept_alive.post(server.url(&long)).send().unwrap();
    assert_eq!(second.status(), 414);
    assert_eq!(second.headers()["content-type"], "application/problem+json");
    assert!(second.text().unwrap().contains("8192"));
    // Beyond what the HTTP library parses at all (a URI over 64 KiB), which
    // no HTTP client library sends: written by hand.
    let huge = format!(
        "POST /api/v1/deploy/{APP}/{client}?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read, Write};
    // The server may answer and close before reading everything.
    let _ = stream.write_all(huge.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 414"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"status\":414"), "{answer}");
    // The server still answers.
    server.deploy(&APP.to_string(), &client).deployment();
}

#[test]
fn cloudlet_reports_are_validated_and_capped() {
    let server = Server::start();
    let report = |n: u128, endpoint: &str| {
        serde_json::to_vec(&json!({
            "uuid": Uuid::from_u128(0x1000 + n),
            "endpoint": endpoint,
        }))
        .unwrap()
    };
    for endpoint in [
        "ftp://192.0.2.1/api/v1/deploy",
        "http://[::1/api/v1/deploy",
        "http://user:pw@192.0.2.1/api/v1/deploy",
        "http://192.0.2.1/api/v1/deploy?x=1",
        "http://192.0.2.1/",
        "http://192.0.2.1/api/deploy",
        "http://192.0.2.1/api/vx/deploy",
        "javascript:alert(1)",
        "not a url",
    ] {
        let detail = server
            .call_with_body(Method::POST, "/cloudlets/", report(0, endpoint))
            .problem(400);
        assert!(detail.contains("endpoint"), "{endpoint}: {detail}");
    }
    // Up to the cap, new cloudlets are recorded; then refused, while a known
    // one still updates (an attacker cannot push out the real ones).
    for n in 0..cloudlet::server::MAX_REPORTS as u128 {
        let endpoint = format!("http://192.0.2.{}:5000/api/v1/deploy", n % 250);
        let posted = server.call_with_body(Method::POST, "/cloudlets/", report(n, &endpoint));
        assert_eq!(posted.status, 204, "{posted:?}");
    }
    let one_more = server.call_with_body(
        Method::POST,
        "/cloudlets/",
        report(999, "http://198.51.100.1/api/v2/deploy"),
    );
    one_more.problem(503);
    let again = server.call_with_body(
        Method::POST,
        "/cloudlets/",
        report(0, "https://edge.example.org/sinfonia/api/v1/deploy/"),
    );
    assert_eq!(again.status, 204, "{again:?}");
    let list = server.call(Method::GET, "/cloudlets/").json;
    assert_eq!(
        list.as_array().unwrap().len(),
        1 + cloudlet::server::MAX_REPORTS
    );
}

#[test]
fn too_many_deploy_requests_from_one_address_get_a_429() {
    let server = Server::start_with(|config| config.deploy_rate = 3);
    let client = urlsafe(&key(1));
    for _ in 0..3 {
        server.deploy(&APP.to_string(), &client).deployment();
    }
    let url = server.url(&format!("/deploy/{APP}/{client}"));
    let refused = reqwest::blocking::Client::new().post(url).send().unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = serde_json::from_str(&refused.text().unwrap()).unwrap();
    assert_eq!(problem["status"], 429);
    // Reading the deployment is not limited.
    assert_eq!(
        server
            .call(Method::GET, &format!("/deploy/{APP}/{client}"))
            .status,
        200
    );
    // The refusal is counted.
    let metrics = reqwest::blocking::get(format!("http://{}/metrics", server.addr))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("olive2022_cloudlet_deploy_requests_total{outcome=\"rate_limited\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("olive2022_cloudlet_deploy_requests_total{outcome=\"deployed\"} 3"));
}

#[test]
fn slow_clients_are_cut_off() {
    use std::io::{Read, Write};
    let server = Server::start();
    // Silent after connecting: closed once the request line is overdue.
    let silent = thread::spawn({
        let addr = server.addr;
        move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 64];
            let read = stream.read(&mut buf).unwrap_or(0);
            (read, started.elapsed())
        }
    });
    // A report whose body never finishes arriving.
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(
        b"POST /api/v1/cloudlets/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"uuid\":",
    )
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let (read, waited) = silent.join().unwrap();
    assert_eq!(read, 0, "the silent connection got an answer");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    // The server still answers everyone else.
    assert_eq!(server.call(Method::GET, "/cloudlets/").status, 200);
}

/// A connection that sends its request line and then dribbles its
/// headers, and one kept alive and silent after its first request, are
/// closed by the header timeout: otherwise 1,024 of them would hold every
/// connection slot for ever.
#[test]
fn stalled_headers_and_idle_kept_alive_connections_are_closed() {
    use std::io::{Read, Write};
    let server = Server::start();
    let limit = cloudlet::listener::HEADER_TIMEOUT + Duration::from_secs(10);
    let closed_within = move |mut stream: std::net::TcpStream| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        let outcome = stream.read_to_end(&mut rest);
        // Closed: an end of file, or a reset (the stalled client keeps
        // writing after the server closed); still open: the read timed out.
        let closed = match outcome {
            Ok(_) => true,
            Err(error) => !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        (closed, started.elapsed())
    };

    let stalled = thread::spawn({
        let addr = server.addr;
        move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            // One header byte a second: never the end of the headers.
            let writer = stream.try_clone().unwrap();
            thread::spawn(move || {
                let mut writer = writer;
                for _ in 0..60 {
                    thread::sleep(Duration::from_secs(1));
                    if writer.write_all(b"X").is_err() {
                        break;
                    }
                }
            });
            closed_within(stream)
        }
    });

    let mut kept = std::net::TcpStream::connect(server.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 256];
    let read = kept.read(&mut answer).unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
    let (closed, waited) = closed_within(kept);
    assert!(
        closed,
        "a kept-alive idle connection stayed open {waited:?}"
    );
    assert!(waited < limit, "{waited:?}");

    let (closed, waited) = stalled.join().unwrap();
    assert!(closed, "stalled headers kept the connection {waited:?}");
    assert!(waited < limit, "{waited:?}");
    assert_eq!(server.call(Method::GET, "/cloudlets/").status, 200);
}

/// Deploys a tier 1 in front forwards all come from its address; a
/// trusted proxy's `X-ClientIP` names the client the limit counts, and
/// anybody else's header is not believed.
#[test]
fn the_deploy_limit_counts_the_client_a_trusted_proxy_names() {
    let post = |server: &Server, client_ip: &str| {
        let url = server.url(&format!("/deploy/{APP}/{}", urlsafe(&key(1))));
        let answer = reqwest::blocking::Client::new()
            .post(url)
            .header("X-ClientIP", client_ip)
            .send()
            .unwrap();
        answer.status().as_u16()
    };
    let behind_tier1 = Server::start_with(|config| {
        config.deploy_rate = 2;
        config.federation.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    });
    assert_eq!(post(&behind_tier1, "192.0.2.1"), 200);
    assert_eq!(post(&behind_tier1, "192.0.2.1"), 200);
    assert_eq!(post(&behind_tier1, "192.0.2.1"), 429);
    // Another client behind the same tier 1 has its own bucket.
    assert_eq!(post(&behind_tier1, "192.0.2.2"), 200);

    let open = Server::start_with(|config| config.deploy_rate = 2);
    assert_eq!(post(&open, "192.0.2.1"), 200);
    assert_eq!(post(&open, "192.0.2.2"), 200);
    // A fresh X-ClientIP buys nothing from an untrusted connection.
    assert_eq!(post(&open, "192.0.2.3"), 429);
}
