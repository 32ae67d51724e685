//! Tier 1 end to end: `olive2022 tier1` (and `olive2022 cloudlet` in its
//! tier-1 role) with real `olive2022 cloudlet` processes reporting to it,
//! each for its own site (a local network and a location). Clients land on
//! their own site's cloudlet, by `X-ClientIP` or by their real source
//! address (network namespaces), or on the nearest by `X-Location`; a
//! SIGKILLed cloudlet costs one forward, a cloudlet that said goodbye is
//! never tried; hostile registrations get problem+json; `launch` reaches a
//! VM through forwarding; with `--geoip-db`, a client without `X-Location`
//! lands on the cloudlet nearest its address's city. Reports are posted by the test itself.
#![allow(clippy::unwrap_used)]

mod common;

use common::{converted_to_layout, olive, text};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::geoip::{LISBON, PITTSBURGH, write_two_cities};
use testkit::registry::free_port;

const URL: &str = "vmnetx+https://olivearchive.org/launch/federation-test/package.nxpk";
const TOKEN: &str = "federation-test-token";
const TOKYO: [f64; 2] = [35.68, 139.69];

/// The UUID a test gives site `n`.
fn site_uuid(n: u128) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn backend_uuid() -> String {
    let output = olive().args(["uuid", URL]).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A child `olive2022` serving HTTP, stopped with SIGINT (or killed) on drop.
struct Server {
    child: Child,
    api: String,
    wg_port: u16,
    log: PathBuf,
}

impl Server {
    fn spawn(mut command: Command, port: u16, wg_port: u16, log: PathBuf) -> Server {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("OLIVE2022_LOG", "info,cloudlet::federation=debug")
            .spawn()
            .unwrap();
        let server = Server {
            child,
            api: format!("http://127.0.0.1:{port}"),
            wg_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "not serving: {}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `olive2022 tier1` on every interface (the namespaces reach it).
    fn tier1(dir: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let mut command = olive();
        command
            .args(["tier1", "--listen", &format!("0.0.0.0:{port}")])
            .args(["--forward-timeout", "5", "--deploy-rate", "0"])
            .args(extra);
        Server::spawn(command, port, 0, dir.join("tier1.log"))
    }

    /// `olive2022 cloudlet` with its own data directory `dir/name`.
    fn cloudlet(dir: &Path, name: &str, recipes: &Path) -> Server {
        let (port, wg_port) = (free_port(), free_port());
        let data = dir.join(name);
        let mut command = olive();
        command
            .args(["cloudlet", "--recipes"])
            .arg(recipes)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--wg-listen", &format!("127.0.0.1:{wg_port}")])
            .arg("--data-dir")
            .arg(&data)
            .arg("--cache-dir")
            .arg(data.join("cache"))
            .args(["--deploy-rate", "0", "--forward-timeout", "5"]);
        Server::spawn(command, port, wg_port, dir.join(format!("{name}.log")))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Deploy requests this server has seen (its access log).
    fn deploys_seen(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains("path=\"/api/v1/deploy/"))
            .count()
    }

    /// The tunnel endpoint this cloudlet gives clients.
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.wg_port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        testkit::process::stop(&mut self.child, "INT", Duration::from_secs(20));
    }
}

/// `curl` with `args`; the status and the body as JSON (Null if not JSON).
fn curl(args: &[&str]) -> (u16, Value) {
    curl_with_input(args, b"")
}

/// [`curl`] with `input` on its standard input (`--data-binary @-`).
fn curl_with_input(args: &[&str], input: &[u8]) -> (u16, Value) {
    use std::io::Write;
    let mut child = Command::new("curl")
        .args(["-s", "-m", "60", "-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // curl may stop reading early (a 413 answered before the end).
    let _ = child.stdin.take().unwrap().write_all(input);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let status = status.trim().parse().unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A fresh client key, URL-safe base64.
fn new_key() -> String {
    let mut bytes = [0u8; 32];
    let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    let mut rng = testkit::XorShift::new(seed ^ NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed));
    bytes.copy_from_slice(&rng.bytes(32));
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

use std::sync::atomic::{AtomicU64, Ordering};
static NEXT: AtomicU64 = AtomicU64::new(1);

/// `POST /api/v1/deploy/{uuid}/{new key}` to `api` with `headers`.
fn deploy(api: &str, uuid: &str, headers: &[&str]) -> (u16, Value) {
    let url = format!("{api}/api/v1/deploy/{uuid}/{}", new_key());
    let mut args = vec!["-X", "POST"];
    for header in headers {
        args.extend(["-H", header]);
    }
    args.push(&url);
    curl(&args)
}

/// The tunnel endpoint of the first deployment of a successful answer.
fn served_by(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1[0]["Status"], "Deployed", "{}", answer.1);
    answer.1[0]["TunnelConfig"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts `report` to `tier1` with the token (when given); the status and body.
fn post_report(tier1: &str, token: Option<&str>, report: &Value) -> (u16, Value) {
    let body = report.to_string();
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["-X", "POST", "-H", "Content-Type: application/json"];
    if let Some(auth) = &auth {
        args.extend(["-H", auth]);
    }
    let url = format!("{tier1}/api/v1/cloudlets/");
    args.extend(["--data-binary", "@-", &url]);
    curl_with_input(&args, body.as_bytes())
}

/// The report of `cloudlet` for a site.
fn site_report(cloudlet: &Server, uuid: u128, network: &str, location: [f64; 2]) -> Value {
    json!({
        "uuid": site_uuid(uuid),
        "name": format!("site-{uuid}"),
        "endpoint": format!("{}/api/v1/deploy", cloudlet.api),
        "resources": { "vm_slots_free": 4 },
        "locations": [location],
        "local_networks": [network],
        "accepted_clients": ["0.0.0.0/0"],
    })
}

/// Three cloudlets for three sites, reported to a new tier 1.
struct Sites {
    _dir: tempfile::TempDir,
    tier1: Server,
    cloudlets: Vec<Server>,
    uuid: String,
}

fn three_sites() -> Sites {
    three_sites_in(tempfile::tempdir().unwrap(), &[])
}

/// [`three_sites`] in `dir`, the tier 1 started with `tier1_args`.
fn three_sites_in(dir: tempfile::TempDir, tier1_args: &[&str]) -> Sites {
    let recipes = converted_to_layout(dir.path(), URL, "Federation test VM");
    let tier1 = Server::tier1(dir.path(), tier1_args);
    let sites = [
        ("10.201.0.0/16", PITTSBURGH),
        ("10.202.0.0/16", LISBON),
        ("10.203.0.0/16", TOKYO),
    ];
    let mut cloudlets = Vec::new();
    for (n, (network, location)) in sites.into_iter().enumerate() {
        let cloudlet = Server::cloudlet(dir.path(), &format!("site{}", n + 1), &recipes);
        let report = site_report(&cloudlet, n as u128 + 1, network, location);
        assert_eq!(post_report(&tier1.api, None, &report).0, 204);
        cloudlets.push(cloudlet);
    }
    Sites {
        _dir: dir,
        tier1,
        cloudlets,
        uuid: backend_uuid(),
    }
}

/// Two network namespaces with a veth pair each to this host: `fed1`
/// (10.201.0.2, host side 10.201.0.1) and `fed2` (10.202.0.2). Removed on
/// drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn create() -> Namespaces {
        let tag = std::process::id() % 10_000;
        let mut made = Namespaces(Vec::new());
        for site in [1, 2] {
            let name = format!("fed{site}-{tag}");
            let (host, inner) = (format!("vh{site}-{tag}"), format!("vn{site}-{tag}"));
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(Stdio::null())
                .status();
            testkit::run("ip", &["netns", "add", &name]);
            made.0.push(name.clone());
            let subnet = format!("10.20{site}.0");
            testkit::run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            );
            testkit::run("ip", &["link", "set", &inner, "netns", &name]);
            testkit::run(
                "ip",
                &["addr", "add", &format!("{subnet}.1/24"), "dev", &host],
            );
            testkit::run("ip", &["link", "set", &host, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &name, "ip"];
                all.extend(args);
                testkit::run("ip", &all);
            };
            inside(&["addr", "add", &format!("{subnet}.2/24"), "dev", &inner]);
            inside(&["link", "set", &inner, "up"]);
            inside(&["link", "set", "lo", "up"]);
        }
        made
    }

    /// `curl` run inside namespace `index`, to `url`.
    fn post_from(&self, index: usize, url: &str) -> (u16, Value) {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.0[index], "curl", "-s", "-m", "60"])
            .args(["-w", "\n%{http_code}", "-X", "POST", url])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and so the pair.
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

#[test]
fn clients_land_on_their_own_site_or_the_nearest_cloudlet() {
    let sites = three_sites();
    let (tier1, c) = (&sites.tier1.api, &sites.cloudlets);
    for (n, client) in ["10.201.3.4", "10.202.3.4", "10.203.3.4"]
        .iter()
        .enumerate()
    {
        let answer = deploy(tier1, &sites.uuid, &[&format!("X-ClientIP: {client}")]);
        assert_eq!(served_by(&answer), c[n].endpoint(), "client {client}");
    }
    // Off every site's network: the nearest by X-Location (Osaka → Tokyo).
    let near_tokyo = deploy(
        tier1,
        &sites.uuid,
        &["X-ClientIP: 192.0.2.9", "X-Location: 34.69,135.50"],
    );
    assert_eq!(served_by(&near_tokyo), c[2].endpoint());
    let near_lisbon = deploy(tier1, &sites.uuid, &["X-Location: [41.15, -8.61]"]);
    assert_eq!(served_by(&near_lisbon), c[1].endpoint());
    // Bad headers are refused before any forward.
    for bad in [
        "X-ClientIP: 10.201.3.999",
        "X-Location: 91,0",
        "X-Location: here",
    ] {
        let (status, problem) = deploy(tier1, &sites.uuid, &[bad]);
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["title"], "Invalid request", "{problem}");
    }
    // Real source addresses: a client in 10.202.0.0/24 lands on site 2.
    let namespaces = Namespaces::create();
    let port = sites.tier1.api.rsplit(':').next().unwrap().to_owned();
    for (index, site) in [(0, 0), (1, 1)] {
        let url = format!(
            "http://10.20{}.0.1:{port}/api/v1/deploy/{}/{}",
            index + 1,
            sites.uuid,
            new_key()
        );
        let answer = namespaces.post_from(index, &url);
        assert_eq!(served_by(&answer), c[site].endpoint(), "namespace {index}");
    }
    let log = sites.tier1.log();
    assert!(log.contains("matcher=\"network\""), "{log}");
    assert!(log.contains("matcher=\"location\""), "{log}");
}

#[test]
fn clients_without_x_location_are_located_by_the_geoip_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("GeoLite2-City.mmdb");
    write_two_cities(&db);
    let sites = three_sites_in(dir, &["--geoip-db", db.to_str().unwrap()]);
    let (tier1, c) = (&sites.tier1.api, &sites.cloudlets);
    // On no site's network, without X-Location: its address's city.
    let lisbon = deploy(tier1, &sites.uuid, &["X-ClientIP: 10.231.2.9"]);
    assert_eq!(served_by(&lisbon), c[1].endpoint());
    let pittsburgh = deploy(tier1, &sites.uuid, &["X-ClientIP: 10.231.1.9"]);
    assert_eq!(served_by(&pittsburgh), c[0].endpoint());
    // X-Location wins over the database (Osaka → Tokyo).
    let told = deploy(
        tier1,
        &sites.uuid,
        &["X-ClientIP: 10.231.2.9", "X-Location: 34.69,135.50"],
    );
    assert_eq!(served_by(&told), c[2].endpoint());
    // An address the database does not know: no location, placed by load.
    served_by(&deploy(tier1, &sites.uuid, &["X-ClientIP: 192.0.2.9"]));
    let log = sites.tier1.log();
    assert!(log.contains("city=\"Lisbon\""), "{log}");
    assert!(log.contains("matcher=\"location\""), "{log}");
    assert!(log.contains("matcher=\"load\""), "{log}");
}

/// The output of an `olive2022` that must stop by itself, with failure.
fn fails_to_start(mut command: Command) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running: {}", std::fs::read_to_string(&log).unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn an_unusable_geoip_database_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"not a MaxMind database").unwrap();
    let mut tier1 = olive();
    tier1
        .args(["tier1", "--listen", "127.0.0.1:0", "--geoip-db"])
        .arg(&garbage);
    let stderr = fails_to_start(tier1);
    assert!(stderr.contains(garbage.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("not a MaxMind DB"), "{stderr}");
    // The variable, and a cloudlet in its tier-1 role.
    let missing = dir.path().join("missing.mmdb");
    let mut cloudlet = olive();
    cloudlet
        .args(["cloudlet", "--listen", "127.0.0.1:0"])
        .args(["--wg-listen", "127.0.0.1:0", "--recipes"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("OLIVE2022_CLOUDLET_GEOIP_DB", &missing);
    let stderr = fails_to_start(cloudlet);
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains("cannot read the GeoIP database"),
        "{stderr}"
    );
}

#[test]
fn a_killed_cloudlet_costs_one_forward_and_one_that_left_is_never_tried() {
    let mut sites = three_sites();
    let tier1 = sites.tier1.api.clone();
    let site2 = ["X-ClientIP: 10.202.0.50"];
    assert_eq!(
        served_by(&deploy(&tier1, &sites.uuid, &site2)),
        sites.cloudlets[1].endpoint()
    );
    // SIGKILL: no goodbye. The next deploy still succeeds, elsewhere.
    sites.cloudlets[1].kill();
    let killed = Instant::now();
    let answer = deploy(&tier1, &sites.uuid, &site2);
    let recovered = killed.elapsed();
    let survivor = served_by(&answer);
    assert!(
        [sites.cloudlets[0].endpoint(), sites.cloudlets[2].endpoint()].contains(&survivor),
        "{survivor}"
    );
    eprintln!("time from SIGKILL to a working deploy: {recovered:?}");
    assert!(recovered < Duration::from_secs(30), "{recovered:?}");
    let log = sites.tier1.log();
    assert!(log.contains("forward failed"), "{log}");
    // The failed cloudlet is skipped until it reports again.
    let warnings = log.matches("forward failed").count();
    served_by(&deploy(&tier1, &sites.uuid, &site2));
    assert_eq!(
        sites.tier1.log().matches("forward failed").count(),
        warnings
    );

    // A goodbye removes site 3 at once: never tried again, even by its own
    // clients.
    let site3 = site_uuid(3);
    let goodbye = curl(&["-X", "DELETE", &format!("{tier1}/api/v1/cloudlets/{site3}")]);
    assert_eq!(goodbye.0, 204, "{}", goodbye.1);
    let again = curl(&["-X", "DELETE", &format!("{tier1}/api/v1/cloudlets/{site3}")]);
    assert_eq!(again.0, 404, "{}", again.1);
    assert_eq!(again.1["title"], "Unknown cloudlet");
    let list = curl(&[&format!("{tier1}/api/v1/cloudlets/")]).1;
    assert!(!list.to_string().contains(&site3), "{list}");
    let seen_before = sites.cloudlets[2].deploys_seen();
    for _ in 0..2 {
        let answer = deploy(&tier1, &sites.uuid, &["X-ClientIP: 10.203.0.9"]);
        assert_eq!(served_by(&answer), sites.cloudlets[0].endpoint());
    }
    assert_eq!(sites.cloudlets[2].deploys_seen(), seen_before);

    // What the operator's Prometheus sees: one failed forward (the dead
    // cloudlet, tried once), the goodbye and the unknown one, and two
    // cloudlets left.
    let metrics = testkit::run("curl", &["-s", &format!("{tier1}/metrics")]);
    for line in [
        "olive2022_tier1_forwards_total{outcome=\"failed\"} 1",
        "olive2022_tier1_deploy_requests_total{outcome=\"placed\"} 5",
        "olive2022_tier1_reports_total{outcome=\"goodbye\"} 1",
        "olive2022_tier1_reports_total{outcome=\"unknown\"} 1",
        "olive2022_tier1_reported_cloudlets 2",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
    assert!(
        metrics.contains("olive2022_tier1_reports_total{outcome=\"accepted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("olive2022_tier1_forwards_total{outcome=\"deployed\"} 5"),
        "{metrics}"
    );
}

#[test]
fn hostile_registrations_get_clear_problems() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("RECIPES");
    std::fs::create_dir(&recipes).unwrap();
    let tier1 = Server::tier1(
        dir.path(),
        &[
            "--cloudlet-token",
            TOKEN,
            "--recipes",
            recipes.to_str().unwrap(),
        ],
    );
    let good = json!({
        "uuid": site_uuid(7),
        "endpoint": "http://192.0.2.7:8080/api/v1/deploy",
        "local_networks": ["10.7.0.0/16"],
        "locations": [PITTSBURGH],
    });
    let refused = |token: Option<&str>, report: &Value, status: u16, title: &str| {
        let (got, problem) = post_report(&tier1.api, token, report);
        assert_eq!(got, status, "{problem}");
        assert_eq!(problem["title"], title, "{problem}");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    };
    refused(None, &good, 401, "Unauthorized");
    refused(Some("wrong-token"), &good, 401, "Unauthorized");
    let mut bad_url = good.clone();
    bad_url["endpoint"] = json!("ftp://192.0.2.7/api/v1/deploy");
    refused(Some(TOKEN), &bad_url, 400, "Invalid cloudlet report");
    let mut bad_cidr = good.clone();
    bad_cidr["local_networks"] = json!(["10.7.0.0/33"]);
    refused(Some(TOKEN), &bad_cidr, 400, "Invalid cloudlet report");
    let mut bad_place = good.clone();
    bad_place["locations"] = json!([[100.0, 0.0]]);
    refused(Some(TOKEN), &bad_place, 400, "Invalid cloudlet report");
    let mut huge = good.clone();
    huge["name"] = json!("x".repeat(200_000));
    refused(Some(TOKEN), &huge, 413, "Payload Too Large");
    let unauthorized_goodbye = curl(&[
        "-X",
        "DELETE",
        &format!("{}/api/v1/cloudlets/{}", tier1.api, site_uuid(7)),
    ]);
    assert_eq!(unauthorized_goodbye.0, 401);
    // Nothing was recorded; the right token is accepted.
    assert_eq!(
        curl(&[&format!("{}/api/v1/cloudlets/", tier1.api)]).1,
        json!([])
    );
    assert_eq!(post_report(&tier1.api, Some(TOKEN), &good).0, 204);
    // With recipes, an unknown backend is refused before any forward.
    let (status, problem) = deploy(&tier1.api, &backend_uuid(), &[]);
    assert_eq!(status, 404, "{problem}");
    assert!(!tier1.log().contains("forward failed"));
    assert!(!tier1.log().contains(TOKEN), "the token was logged");
}

#[test]
fn launch_reaches_a_vm_through_a_cloudlet_acting_as_tier1() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = converted_to_layout(dir.path(), URL, "Federation test VM");
    let front = Server::cloudlet(dir.path(), "front", &recipes);
    let back = Server::cloudlet(dir.path(), "back", &recipes);
    // The back cloudlet claims loopback clients: `launch` lands there.
    let report = json!({
        "uuid": site_uuid(42),
        "name": "back",
        "endpoint": format!("{}/api/v1/deploy", back.api),
        "local_networks": ["127.0.0.0/8"],
    });
    assert_eq!(post_report(&front.api, None, &report).0, 204);
    let cache = dir.path().join("client");
    let report_file = cache.join("report.json");
    std::fs::create_dir_all(&cache).unwrap();
    let output = olive()
        .args(["launch", "--timeout", "90", "--tier1-url", &front.api])
        .args(["--viewer", env!("CARGO_BIN_EXE_rfb-probe"), URL])
        .env("XDG_CACHE_HOME", &cache)
        .env("RFB_REPORT", &report_file)
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(seen["banner"], "RFB 003.008\n");
    assert!(seen["name"].as_str().unwrap().starts_with("QEMU"), "{seen}");
    assert!(back.deploys_seen() >= 1, "{}", back.log());
    assert!(
        front.log().contains("matcher=\"network\""),
        "{}",
        front.log()
    );
}

#[test]
fn the_cloudlet_token_is_never_printed() {
    let home = tempfile::tempdir().unwrap();
    let output = olive()
        .args(["cloudlet", "--print-config", "--cloudlet-token", TOKEN])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("XDG_CACHE_HOME", home.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let printed = text(&output);
    assert!(printed.contains("# cloudlet-token: set"), "{printed}");
    assert!(!printed.contains(TOKEN), "{printed}");
    let help = text(
        &olive()
            .args(["tier1", "--help"])
            .env("OLIVE2022_TIER1_CLOUDLET_TOKEN", TOKEN)
            .output()
            .unwrap(),
    );
    assert!(!help.contains(TOKEN), "{help}");
}
