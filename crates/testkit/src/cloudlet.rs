//! A Sinfonia cloudlet on this machine, as Kubernetes + Kilo presents one to
//! a tier-3 client: a WireGuard endpoint, a cluster DNS that knows
//! `vmi-vnc.<deployment>.svc.cluster.local`, a VNC server behind that
//! service address, and a tier-1 stand-in that adds the client's key as a
//! WireGuard peer and answers the deployment JSON.
//!
//! Layout of one [`Cloudlet`] (names and the /30 are unique per fixture, so
//! fixtures may run in parallel, in one process or several):
//!
//! ```text
//!  host netns                          netns olv-<pid>-<n>
//!  ─────────────────────────           ─────────────────────────────────────
//!  olvh<tag> 10.200.X.Y+1/30 ◄─veth─►  olvc<tag> 10.200.X.Y+2/30
//!                                      olvw<tag> (wireguard-go) 10.5.0.1/16
//!                                        UDP *:51820, peers 10.5.0.N/32
//!                                      lo 10.43.0.10/32  dnsmasq :53
//!                                      lo 10.43.1.1/32   Xvnc :5900
//!  tier-1 stand-in 127.0.0.1:PORT      nft table inet olive (loss, drops)
//! ```
//!
//! Facts behind the choices (checked on this machine):
//! - The WireGuard interface is not called `wg0`: wireguard-go's control
//!   socket is `/var/run/wireguard/<interface>.sock`, a path shared by every
//!   network namespace, so two `wg0` (parallel fixtures, the test's own
//!   client) would take over each other's socket. It is `olvw<tag>`;
//!   [`Cloudlet::wg_interface`] names it.
//! - The kernel has no `sch_netem` (and no `dummy` link), so
//!   [`CloudletOptions::loss_percent`] drops packets with nftables
//!   (`numgen random mod 100 < N drop`) inside the namespace, in both
//!   directions, on the WireGuard UDP port: every tunnelled packet, on
//!   whichever link it arrives, sees the loss. The host is left untouched.
//! - `handshake: false` drops every UDP packet to port 51820 in the
//!   namespace (nftables): the endpoint exists and is reachable but never
//!   answers, as a firewalled cloudlet does (no ICMP error either).
//! - DNS is dnsmasq with `--local=/cluster.local/` and a `--host-record` for
//!   the VNC service, which answers as CoreDNS does: `A` → 10.43.1.1,
//!   `AAAA` → NOERROR without data, any other `*.cluster.local` name →
//!   NXDOMAIN, names outside `cluster.local` → REFUSED (no upstream).
//!   `dns_answers: false` leaves out the record, so `vmi-vnc.…` is NXDOMAIN;
//!   `dns_server: false` runs no DNS server, so lookups go unanswered.
//! - `VncServer::None` leaves 10.43.1.1:5900 closed: through the tunnel a
//!   connection is refused (RST), as a Kubernetes service whose VM is not
//!   up yet; a waiting client keeps retrying until its timeout.
//! - The VNC server is TigerVNC's `Xvnc` (RFB 003.008, security type None,
//!   800×600, shared connections, `-noreset`) with its root window painted
//!   solid red ([`SCREEN_RGB`]) by `xsetroot`.
//! - The tier-1 stand-in gives every client key one /32 from 10.5.0.0/16
//!   (from 10.5.0.2 on; the network, the gateway 10.5.0.1 and the 10 s
//!   server keep-alive are Sinfonia's, from `sinfonia::tier2`), answers
//!   with `sinfonia::deployment` and `sinfonia::problem` bodies, and gives
//!   one deployment per fixture
//!   ([`Cloudlet::deployment_name`]); the same key always gets the same
//!   address. `allowedIPs` is [`ALLOWED_IPS`], the cluster's service range,
//!   which holds the DNS server and the VNC service.
//!
//! Every process, the namespace and the veth pair are removed on drop, on
//! every path (a panic in the test or inside [`Cloudlet::start`] too). A
//! missing tool fails the test with the Debian package to install.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sinfonia::deployment::{Deployment, DeploymentStatus, TunnelConfig};
use sinfonia::problem::{PROBLEM_JSON, Problem};
use sinfonia::tier2::{CLIENT_NETWORK, CLIENT_PREFIX, SERVER_KEEPALIVE_SECS, TUNNEL_ADDRESS};
use sinfonia::vmi;
use uuid::Uuid;

/// The cloudlet's WireGuard UDP port.
pub const WG_PORT: u16 = 51820;
/// The cluster DNS server (a service address on the namespace's `lo`).
pub const DNS_SERVER: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 10);
/// The `vmi-vnc` service address (on the namespace's `lo`); VNC on 5900.
pub const VNC_SERVICE: Ipv4Addr = Ipv4Addr::new(10, 43, 1, 1);
/// `TunnelConfig.allowedIPs` in the deployment JSON: the service range.
pub const ALLOWED_IPS: &[&str] = &["10.43.0.0/16"];
/// The VNC screen: its size and the solid colour it shows (when `xsetroot`
/// painted it).
pub const SCREEN_SIZE: (u16, u16) = (800, 600);
/// The colour of the whole VNC screen, red.
pub const SCREEN_RGB: [u8; 3] = [255, 0, 0];

/// Which VNC server answers on the service address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VncServer {
    /// TigerVNC's `Xvnc`, a real RFB 3.8 server.
    Xvnc,
    /// Nothing listens: the VM display never comes up (connection refused).
    None,
    /// A stand-in for throughput measurements: sends the RFB banner, then
    /// on `BULK <MiB>\n` that many MiB of data, then closes.
    Bulk,
}

/// How the cloudlet behaves.
#[derive(Debug, Clone)]
pub struct CloudletOptions {
    /// Random loss, in percent, of the WireGuard UDP packets in both
    /// directions (nftables, see the module docs); 0 = none.
    pub loss_percent: u32,
    /// The VNC server behind `vmi-vnc`.
    pub vnc: VncServer,
    /// `false`: `vmi-vnc.<deployment>.svc.cluster.local` is NXDOMAIN.
    pub dns_answers: bool,
    /// `false`: no DNS server runs at all, so lookups get no answer.
    pub dns_server: bool,
    /// `false`: the WireGuard endpoint never answers (UDP dropped).
    pub handshake: bool,
}

impl Default for CloudletOptions {
    /// A healthy cloudlet: no loss, Xvnc, DNS answers, handshakes work.
    fn default() -> Self {
        CloudletOptions {
            loss_percent: 0,
            vnc: VncServer::Xvnc,
            dns_answers: true,
            dns_server: true,
            handshake: true,
        }
    }
}

/// A running cloudlet; dropping it removes everything it made.
pub struct Cloudlet {
    resources: Resources,
    deployment: String,
    public_key: String,
    endpoint: SocketAddr,
    host_ip: Ipv4Addr,
    tier1_url: String,
    display: Option<u32>,
    state: Arc<Mutex<Tier1State>>,
}

impl Cloudlet {
    /// Builds the namespace, its processes and the tier-1 stand-in; panics
    /// with a clear message (and removes what it made) when it cannot.
    pub fn start(options: CloudletOptions) -> Cloudlet {
        let tools = Tools::find(&options);
        assert!(
            is_root(),
            "the namespace cloudlet needs root (network namespaces, veth pairs)"
        );
        let (n, namespace) = create_namespace(&tools);
        let mut resources = Resources {
            tools,
            namespace,
            host_veth: None,
            wg_interface: None,
            children: Vec::new(),
            tier1: None,
            dir: tempfile::Builder::new()
                .prefix("olive-cloudlet-")
                .tempdir()
                .unwrap(),
        };
        let tag = format!("{}-{}", base36(std::process::id()), base36(n));
        let deployment = deployment_name(n);
        let (host_ip, cloudlet_ip) = resources.connect_veth(&tag, n);
        resources.services();
        resources.firewall(&options);
        let public_key = resources.wireguard(&tag);
        if options.dns_server {
            resources.dnsmasq(&deployment, options.dns_answers);
        }
        let display = match options.vnc {
            VncServer::Xvnc => Some(resources.xvnc(&deployment)),
            VncServer::Bulk => {
                resources.bulk_server();
                None
            }
            VncServer::None => None,
        };
        let endpoint = SocketAddr::from((cloudlet_ip, WG_PORT));
        let config = Tier1Config {
            ip: resources.tools.ip.clone(),
            wg: resources.tools.wg.clone(),
            namespace: resources.namespace.clone(),
            wg_interface: resources.wg_interface.clone().unwrap(),
            deployment: deployment.clone(),
            public_key: public_key.clone(),
            endpoint,
        };
        let state = Arc::new(Mutex::new(Tier1State::default()));
        let tier1 = Tier1::start(config, Arc::clone(&state));
        let tier1_url = format!("http://{}", tier1.address);
        resources.tier1 = Some(tier1);
        Cloudlet {
            resources,
            host_ip,
            deployment,
            public_key,
            endpoint,
            tier1_url,
            display,
            state,
        }
    }

    /// `http://127.0.0.1:PORT` of the tier-1 stand-in.
    pub fn tier1_url(&self) -> String {
        self.tier1_url.clone()
    }

    /// The WireGuard endpoint, reachable from the host over the veth pair.
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }

    /// The host's end of the veth pair (the source of the host's packets).
    pub fn host_address(&self) -> Ipv4Addr {
        self.host_ip
    }

    /// The cloudlet's WireGuard public key (standard base64).
    pub fn public_key(&self) -> String {
        self.public_key.clone()
    }

    /// The deployment's name, e.g. `bold-tesla` (one per fixture).
    pub fn deployment_name(&self) -> &str {
        &self.deployment
    }

    /// The fully qualified name of the VNC service,
    /// `vmi-vnc.<deployment>.svc.cluster.local`.
    pub fn vnc_name(&self) -> String {
        format!("{}.{}.svc.cluster.local", vmi::VNC_SERVICE, self.deployment)
    }

    /// Every request the tier-1 stand-in saw, as `METHOD TARGET`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// `wg show <interface>` in the namespace: the peers tier 1 added.
    pub fn peers(&self) -> String {
        let r = &self.resources;
        let wg_interface = r.wg_interface.as_deref().unwrap();
        r.netns_output(&r.tools.wg, &["show", wg_interface])
    }

    /// The VNC service address, `10.43.1.1:5900` inside the namespace.
    pub fn vnc_service(&self) -> SocketAddr {
        SocketAddr::from((VNC_SERVICE, vmi::VNC_PORT))
    }

    /// The cluster DNS server, `10.43.0.10:53` inside the namespace.
    pub fn dns_server(&self) -> SocketAddr {
        SocketAddr::from((DNS_SERVER, 53))
    }

    /// The network namespace's name (for `ip netns exec`).
    pub fn namespace(&self) -> &str {
        &self.resources.namespace
    }

    /// The cloudlet's WireGuard interface inside the namespace.
    pub fn wg_interface(&self) -> &str {
        self.resources.wg_interface.as_deref().unwrap()
    }

    /// The X display of the Xvnc server (`None` without one).
    pub fn display(&self) -> Option<u32> {
        self.display
    }

    /// The process ids of the cloudlet's helpers (wireguard-go, dnsmasq,
    /// Xvnc), to check that none survives the drop.
    pub fn pids(&self) -> Vec<u32> {
        self.resources
            .children
            .iter()
            .map(|(_, child)| child.id())
            .collect()
    }
}

/// The tools the fixture runs, by absolute path.
#[derive(Clone)]
struct Tools {
    ip: PathBuf,
    ss: PathBuf,
    wg: PathBuf,
    wireguard_go: PathBuf,
    dnsmasq: PathBuf,
    nft: PathBuf,
    kill: PathBuf,
    xvnc: Option<PathBuf>,
    xsetroot: Option<PathBuf>,
}

impl Tools {
    fn find(options: &CloudletOptions) -> Tools {
        let xvnc = options.vnc == VncServer::Xvnc;
        Tools {
            ip: find_tool("ip", "iproute2"),
            ss: find_tool("ss", "iproute2"),
            wg: find_tool("wg", "wireguard-tools"),
            wireguard_go: find_tool("wireguard-go", "wireguard-go"),
            dnsmasq: find_tool("dnsmasq", "dnsmasq-base"),
            nft: find_tool("nft", "nftables"),
            kill: find_tool("kill", "procps"),
            xvnc: xvnc.then(|| find_tool("Xvnc", "tigervnc-standalone-server")),
            xsetroot: xvnc.then(|| find_tool("xsetroot", "x11-xserver-utils")),
        }
    }
}

/// Finds `name` on `PATH` (and the sbin directories root has); panics
/// naming the Debian package that provides it.
fn find_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let fixed = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ];
    std::env::split_paths(&path)
        .chain(fixed.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the namespace cloudlet needs `{name}`: install the Debian package \
                 `{package}` (scripts/setup.sh installs it)"
            )
        })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        })
        .unwrap_or(false)
}

fn base36(mut value: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// `bold-tesla` for the first fixture of a process, then others.
fn deployment_name(n: u32) -> String {
    const ADJECTIVES: &[&str] = &["bold", "brave", "calm", "eager", "keen", "quiet", "sharp"];
    const NAMES: &[&str] = &["tesla", "curie", "turing", "hopper", "noether", "shannon"];
    let n = n as usize;
    format!(
        "{}-{}",
        ADJECTIVES[n % ADJECTIVES.len()],
        NAMES[(n / ADJECTIVES.len()) % NAMES.len()]
    )
}

static NEXT_FIXTURE: AtomicU32 = AtomicU32::new(0);

/// Creates `olv-<pid>-<n>` with the first `n` whose name is free.
fn create_namespace(tools: &Tools) -> (u32, String) {
    for _ in 0..64 {
        let n = NEXT_FIXTURE.fetch_add(1, Ordering::SeqCst);
        let name = format!("olv-{}-{n}", std::process::id());
        let output = Command::new(&tools.ip)
            .args(["netns", "add", &name])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip netns add` ({e})"));
        if output.status.success() {
            return (n, name);
        }
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(
            error.contains("exists"),
            "`ip netns add {name}` failed: {error}"
        );
    }
    panic!(
        "no free network namespace name olv-{}-N",
        std::process::id()
    )
}

/// Everything the fixture made; removes it all when dropped.
struct Resources {
    tools: Tools,
    namespace: String,
    host_veth: Option<String>,
    wg_interface: Option<String>,
    children: Vec<(&'static str, Child)>,
    tier1: Option<Tier1>,
    dir: tempfile::TempDir,
}

impl Resources {
    /// Runs `ip ARGS`, panicking with its output when it fails.
    fn ip(&self, args: &[&str]) {
        run_checked(Command::new(&self.tools.ip).args(args));
    }

    /// Runs `program ARGS` inside the namespace and returns its stdout.
    fn netns_output(&self, program: &Path, args: &[&str]) -> String {
        run_checked(
            Command::new(&self.tools.ip)
                .args(["netns", "exec", &self.namespace])
                .arg(program)
                .args(args),
        )
    }

    /// Creates the veth pair under a machine-wide lock, on the first free
    /// /30 of 10.200.0.0/16 (free: no host address in it), and brings both
    /// ends up. Returns (host address, cloudlet address).
    fn connect_veth(&mut self, tag: &str, n: u32) -> (Ipv4Addr, Ipv4Addr) {
        let host = format!("olvh{tag}");
        let inside = format!("olvc{tag}");
        let lock_path = std::env::temp_dir().join("olive2022-cloudlet-veth.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap();
        lock.lock().unwrap();
        let used = used_link_slots(&self.tools.ip);
        let start = std::process::id().wrapping_mul(97).wrapping_add(n) % 16384;
        let slot = (0..16384)
            .map(|i| (start + i) % 16384)
            .find(|slot| !used.contains(slot))
            .expect("every /30 of 10.200.0.0/16 is in use on this host");
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + slot * 4;
        let (host_ip, cloudlet_ip) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        self.ip(&[
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            &inside,
            "netns",
            &self.namespace,
        ]);
        self.host_veth = Some(host.clone());
        self.ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host]);
        drop(lock);
        self.ip(&["link", "set", &host, "up"]);
        let ns = self.namespace.clone();
        self.ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{cloudlet_ip}/30"),
            "dev",
            &inside,
        ]);
        self.ip(&["-n", &ns, "link", "set", &inside, "up"]);
        (host_ip, cloudlet_ip)
    }

    /// The service addresses on the namespace's `lo`.
    fn services(&self) {
        let ns = self.namespace.clone();
        self.ip(&["-n", &ns, "link", "set", "lo", "up"]);
        for address in [DNS_SERVER, VNC_SERVICE] {
            self.ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/32"),
                "dev",
                "lo",
            ]);
        }
    }

    /// The nftables rules for loss and for the unanswered handshake.
    fn firewall(&self, options: &CloudletOptions) {
        assert!(options.loss_percent <= 100, "loss_percent is at most 100");
        let mut input = Vec::new();
        let mut output = Vec::new();
        if !options.handshake {
            input.push(format!("udp dport {WG_PORT} drop"));
        }
        if options.loss_percent > 0 {
            let loss = options.loss_percent;
            input.push(format!(
                "udp dport {WG_PORT} numgen random mod 100 < {loss} counter drop"
            ));
            output.push(format!(
                "udp sport {WG_PORT} numgen random mod 100 < {loss} counter drop"
            ));
        }
        if input.is_empty() && output.is_empty() {
            return;
        }
        let chain = |name: &str, hook: &str, rules: &[String]| {
            format!(
                "  chain {name} {{\n    type filter hook {hook} priority 0; policy accept;\n{}  }}\n",
                rules
                    .iter()
                    .map(|rule| format!("    {rule}\n"))
                    .collect::<String>()
            )
        };
        let ruleset = format!(
            "table inet olive {{\n{}{}}}\n",
            chain("input", "input", &input),
            chain("output", "output", &output)
        );
        let path = self.dir.path().join("olive.nft");
        std::fs::write(&path, ruleset).unwrap();
        self.netns_output(&self.tools.nft, &["-f", path.to_str().unwrap()]);
    }

    /// Starts a helper inside the namespace, its output in `<name>.log`.
    fn spawn(&mut self, name: &'static str, program: &Path, args: &[&str], env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        let child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.namespace])
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({e})"));
        self.children.push((name, child));
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Waits until `ready` holds, failing with the helper's log when it
    /// exits first or the deadline passes.
    fn wait_for(&mut self, name: &'static str, what: &str, mut ready: impl FnMut(&Self) -> bool) {
        // Generous: it returns as soon as the service is ready, and a loaded
        // machine took more than 10 s to start Xvnc.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready(self) {
                return;
            }
            let exited = self
                .children
                .iter_mut()
                .find(|(child_name, _)| *child_name == name)
                .and_then(|(_, child)| child.try_wait().ok().flatten());
            let log = || std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
            if let Some(status) = exited {
                panic!("{name} exited ({status}) before {what}:\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no {what} after 10 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether something in the namespace listens on `address` (`ss`).
    fn listening(&self, address: &str) -> bool {
        Command::new(&self.tools.ss)
            .args(["-N", &self.namespace, "-H", "-l", "-n", "-t", "-u"])
            .output()
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .split_whitespace()
                    .any(|word| word == address)
            })
            .unwrap_or(false)
    }

    /// wireguard-go with a fresh key on UDP 51820 and 10.5.0.1/16; returns
    /// the public key.
    fn wireguard(&mut self, tag: &str) -> String {
        let wg_interface = format!("olvw{tag}");
        let private = run_checked(Command::new(&self.tools.wg).arg("genkey"));
        let public = run_with_input(Command::new(&self.tools.wg).arg("pubkey"), &private);
        let key_path = self.dir.path().join("cloudlet.key");
        std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&key_path)
            .and_then(|mut file| file.write_all(private.as_bytes()))
            .unwrap();
        let socket = PathBuf::from(format!("/var/run/wireguard/{wg_interface}.sock"));
        // A socket left by a killed run of the same name would be taken for ours.
        let _ = std::fs::remove_file(&socket);
        let program = self.tools.wireguard_go.clone();
        self.wg_interface = Some(wg_interface.clone());
        self.spawn(
            "wireguard-go",
            &program,
            &["-f", &wg_interface],
            &[("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")],
        );
        self.wait_for("wireguard-go", "control socket", |_| socket.exists());
        let wg = self.tools.wg.clone();
        let port = WG_PORT.to_string();
        self.netns_output(
            &wg,
            &[
                "set",
                &wg_interface,
                "private-key",
                key_path.to_str().unwrap(),
                "listen-port",
                &port,
            ],
        );
        let ns = self.namespace.clone();
        let address = format!("{TUNNEL_ADDRESS}/{CLIENT_PREFIX}");
        self.ip(&["-n", &ns, "addr", "add", &address, "dev", &wg_interface]);
        self.ip(&["-n", &ns, "link", "set", &wg_interface, "up"]);
        public.trim().to_owned()
    }

    /// dnsmasq on 10.43.0.10:53, authoritative for `cluster.local`.
    fn dnsmasq(&mut self, deployment: &str, answers: bool) {
        let mut args = vec![
            "--keep-in-foreground".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            format!("--listen-address={DNS_SERVER}"),
            "--local=/cluster.local/".to_owned(),
            "--pid-file=".to_owned(),
            "--log-facility=-".to_owned(),
        ];
        if answers {
            args.push(format!(
                "--host-record={}.{deployment}.svc.cluster.local,{VNC_SERVICE}",
                vmi::VNC_SERVICE
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let program = self.tools.dnsmasq.clone();
        self.spawn("dnsmasq", &program, &args, &[]);
        let udp_and_tcp = format!("{DNS_SERVER}:53");
        self.wait_for("dnsmasq", "DNS socket", |r| r.listening(&udp_and_tcp));
    }

    /// Xvnc on 10.43.1.1:5900, painted red; returns its display number.
    /// The bulk stand-in, in Python (the namespace has no Rust binary of
    /// ours to run), on the VNC service address.
    fn bulk_server(&mut self) {
        const SERVER: &str = r#"
import socket, sys, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(16)
block = bytes(range(256)) * 256
def serve(conn):
    with conn:
        conn.sendall(b"RFB 003.008\n")
        request = conn.recv(64)
        if request.startswith(b"BULK "):
            for _ in range(int(request.split()[1]) * 16):
                conn.sendall(block)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;
        let log = std::fs::File::create(self.log_path("bulk")).unwrap();
        let child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.namespace, "python3", "-c", SERVER])
            .arg(VNC_SERVICE.to_string())
            .arg(vmi::VNC_PORT.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the bulk server ({e})"));
        self.children.push(("bulk", child));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let probe = format!("{VNC_SERVICE}:{}", vmi::VNC_PORT);
        while std::time::Instant::now() < deadline {
            let listening = Command::new(&self.tools.ss)
                .args(["-N", &self.namespace, "-ltn", "src", &probe])
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("LISTEN"));
            if listening {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the bulk server did not start");
    }

    fn xvnc(&mut self, deployment: &str) -> u32 {
        let xvnc = self.tools.xvnc.clone().unwrap();
        let log = std::fs::File::create(self.log_path("Xvnc")).unwrap();
        let geometry = format!("{}x{}", SCREEN_SIZE.0, SCREEN_SIZE.1);
        let interface = VNC_SERVICE.to_string();
        let port = vmi::VNC_PORT.to_string();
        // -displayfd 1: Xvnc picks a free display and writes it to stdout.
        let mut child = Command::new(&self.tools.ip)
            .args(["netns", "exec", &self.namespace])
            .arg(&xvnc)
            .args([
                "-displayfd",
                "1",
                "-rfbport",
                &port,
                "-interface",
                &interface,
            ])
            .args([
                "-SecurityTypes",
                "None",
                "-geometry",
                &geometry,
                "-depth",
                "24",
            ])
            .args([
                "-AlwaysShared",
                "-noreset",
                "-nolisten",
                "tcp",
                "-desktop",
                deployment,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Xvnc ({e})"));
        let stdout = child.stdout.take().unwrap();
        self.children.push(("Xvnc", child));
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = send.send(line);
        });
        // Xvnc reports its display once it is ready; on a loaded machine
        // that took more than 10 s.
        let line = receive
            .recv_timeout(Duration::from_secs(40))
            .unwrap_or_default();
        let log = std::fs::read_to_string(self.log_path("Xvnc")).unwrap_or_default();
        let display: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvnc did not report its display:\n{log}"));
        let service = format!("{VNC_SERVICE}:{}", vmi::VNC_PORT);
        self.wait_for("Xvnc", "RFB listener", |r| r.listening(&service));
        let xsetroot = self.tools.xsetroot.clone().unwrap();
        let display_arg = format!(":{display}");
        self.netns_output(&xsetroot, &["-display", &display_arg, "-solid", "red"]);
        display
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if let Some(tier1) = self.tier1.take() {
            tier1.stop();
        }
        for (_, child) in self.children.iter_mut().rev() {
            terminate(&self.tools.kill, child);
        }
        // Anything else still inside (a client's `dig`, a viewer, …).
        if let Ok(output) = Command::new(&self.tools.ip)
            .args(["netns", "pids", &self.namespace])
            .output()
        {
            for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                let _ = Command::new(&self.tools.kill)
                    .args(["-KILL", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = Command::new(&self.tools.ip)
            .args(["netns", "delete", &self.namespace])
            .stderr(Stdio::null())
            .status();
        // Deleting the namespace destroys the pair; this is for a veth whose
        // other end never got into it.
        if let Some(host) = &self.host_veth {
            let _ = Command::new(&self.tools.ip)
                .args(["link", "delete", host])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(wg_interface) = &self.wg_interface {
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{wg_interface}.sock"));
        }
    }
}

/// SIGTERM (the helpers clean up their sockets and locks), then SIGKILL
/// after a second; always reaps.
fn terminate(kill: &Path, child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new(kill)
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Runs a command and returns its stdout; panics with its output when it
/// fails.
fn run_checked(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?} ({e})"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn run_with_input(command: &mut Command, input: &str) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?} ({e})"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{command:?} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The /30 slots of 10.200.0.0/16 that hold a host address.
fn used_link_slots(ip: &Path) -> BTreeSet<u32> {
    let output = run_checked(Command::new(ip).args(["-o", "-4", "addr", "show"]));
    output
        .split_whitespace()
        .filter_map(|word| word.split('/').next()?.parse::<Ipv4Addr>().ok())
        .filter(|address| address.octets()[..2] == [10, 200])
        .map(|address| (u32::from(address) - u32::from(Ipv4Addr::new(10, 200, 0, 0))) / 4)
        .collect()
}

/// What the tier-1 stand-in needs to add peers and answer.
struct Tier1Config {
    ip: PathBuf,
    wg: PathBuf,
    namespace: String,
    wg_interface: String,
    deployment: String,
    public_key: String,
    endpoint: SocketAddr,
}

#[derive(Default)]
struct Tier1State {
    requests: Vec<String>,
    /// Client key (32 bytes) → its tunnel address and creation time.
    deployments: HashMap<[u8; 32], (Ipv4Addr, String)>,
    next_host: u32,
}

/// The tier-1 stand-in's listener thread.
struct Tier1 {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tier1 {
    fn start(config: Tier1Config, state: Arc<Mutex<Tier1State>>) -> Tier1 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let config = Arc::new(config);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, state) = (Arc::clone(&config), Arc::clone(&state));
                std::thread::spawn(move || {
                    let _ = serve(stream, &config, &state);
                });
            }
        });
        Tier1 {
            address,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 exchange (`Connection: close`).
fn serve(
    stream: TcpStream,
    config: &Tier1Config,
    state: &Mutex<Tier1State>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0u64;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    state
        .lock()
        .unwrap()
        .requests
        .push(format!("{method} {target}"));
    let (status, content_type, body) = answer(method, target, config, state);
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn problem(status: u16, title: &str, detail: &str) -> (u16, &'static str, String) {
    let body = Problem::new(status, title, detail).to_json();
    (status, PROBLEM_JSON, body)
}

/// Routes `POST|GET|DELETE /api/v1/deploy/{uuid}/{key}` (GET and DELETE as
/// tier 2 has them); everything else is a 404 problem.
fn answer(
    method: &str,
    target: &str,
    config: &Tier1Config,
    state: &Mutex<Tier1State>,
) -> (u16, &'static str, String) {
    let path = target.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let ["", "api", "v1", "deploy", uuid, key] = parts[..] else {
        return problem(404, "Not Found", &format!("no such endpoint: {path}"));
    };
    let Some(uuid) = parse_uuid(uuid) else {
        return problem(400, "Bad Request", &format!("not a UUID: {uuid}"));
    };
    let Some(key) = decode_key(key) else {
        return problem(
            400,
            "Bad Request",
            "application key is not a base64 WireGuard public key (32 bytes)",
        );
    };
    let key_b64 = STANDARD.encode(key);
    let mut state = state.lock().unwrap();
    match method {
        "POST" => {
            let known = state.deployments.get(&key).cloned();
            let (address, created) = known.unwrap_or_else(|| {
                state.next_host += 1;
                let host = 1 + state.next_host;
                let address = Ipv4Addr::from(u32::from(CLIENT_NETWORK) + host);
                (address, rfc3339_now())
            });
            // Again for a known key: the peer may have been removed.
            let added = Command::new(&config.ip)
                .args(["netns", "exec", &config.namespace])
                .arg(&config.wg)
                .args(["set", &config.wg_interface, "peer", &key_b64, "allowed-ips"])
                .arg(format!("{address}/32"))
                .arg("persistent-keepalive")
                .arg(SERVER_KEEPALIVE_SECS.to_string())
                .output();
            match added {
                Ok(output) if output.status.success() => {}
                Ok(output) => {
                    let error = String::from_utf8_lossy(&output.stderr).into_owned();
                    return problem(500, "Internal Server Error", &error);
                }
                Err(e) => return problem(500, "Internal Server Error", &e.to_string()),
            }
            state.deployments.insert(key, (address, created.clone()));
            let body = deployment_json(config, &uuid, &key_b64, address, &created);
            (200, "application/json", body)
        }
        "GET" => match state.deployments.get(&key) {
            Some((address, created)) => {
                let body = deployment_json(config, &uuid, &key_b64, *address, created);
                (200, "application/json", body)
            }
            None => problem(404, "Not Found", "no deployment for this key"),
        },
        "DELETE" => match state.deployments.remove(&key) {
            Some(_) => {
                let _ = Command::new(&config.ip)
                    .args(["netns", "exec", &config.namespace])
                    .arg(&config.wg)
                    .args(["set", &config.wg_interface, "peer", &key_b64, "remove"])
                    .status();
                (204, "application/json", String::new())
            }
            None => problem(404, "Not Found", "no deployment for this key"),
        },
        _ => problem(
            405,
            "Method Not Allowed",
            &format!("{method} is not allowed"),
        ),
    }
}

/// The answer's JSON: an array of one deployment, as sinfonia.md shows.
fn deployment_json(
    config: &Tier1Config,
    uuid: &str,
    key: &str,
    address: Ipv4Addr,
    created: &str,
) -> String {
    let name = &config.deployment;
    let deployment = Deployment {
        name: Some(name.clone()),
        uuid: Uuid::parse_str(uuid).unwrap(),
        application_key: key.to_owned(),
        status: DeploymentStatus::Deployed,
        created: Some(created.to_owned()),
        tunnel_config: TunnelConfig {
            public_key: config.public_key.clone(),
            endpoint: config.endpoint.to_string(),
            allowed_ips: ALLOWED_IPS.iter().map(|ip| ip.to_string()).collect(),
            address: vec![address.to_string()],
            dns: vec![
                DNS_SERVER.to_string(),
                format!("{name}.svc.cluster.local"),
                "svc.cluster.local".to_owned(),
                "cluster.local".to_owned(),
            ],
        },
        disk: None,
    };
    serde_json::to_string(&[deployment]).unwrap()
}

/// A UUID in its hyphenated or plain hex form, or the alias `helloworld`
/// (the nil UUID); returned lower-case and hyphenated.
fn parse_uuid(text: &str) -> Option<String> {
    if text == "helloworld" {
        return Some("00000000-0000-0000-0000-000000000000".to_owned());
    }
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let hyphens_ok = text.len() == 32
        || (text.len() == 36 && [8, 13, 18, 23].iter().all(|&i| text.as_bytes()[i] == b'-'));
    if hex.len() != 32 || !hyphens_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A WireGuard public key in URL-safe or standard base64, padded or not,
/// possibly percent-encoded.
fn decode_key(text: &str) -> Option<[u8; 32]> {
    let text = percent_decode(text)?;
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(&text).ok())
        .and_then(|bytes| bytes.try_into().ok())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Now as `YYYY-MM-DDTHH:MM:SS+00:00`.
fn rfc3339_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (seconds / 86400, seconds % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "install the Debian package `no-such-package`")]
    fn a_missing_tool_names_its_package() {
        find_tool("no-such-tool-olive", "no-such-package");
    }

    /// `loss_percent` is checked after the namespace and the veth pair
    /// exist: the failed start must remove them.
    #[test]
    fn a_failed_start_removes_what_it_made() {
        let options = CloudletOptions {
            loss_percent: 101,
            ..CloudletOptions::default()
        };
        let before = NEXT_FIXTURE.load(Ordering::SeqCst);
        let result = std::panic::catch_unwind(|| Cloudlet::start(options));
        let payload = result.err().unwrap();
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap();
        assert!(message.contains("loss_percent"), "{message}");
        let after = NEXT_FIXTURE.load(Ordering::SeqCst);
        let namespaces = run_checked(Command::new("ip").args(["netns", "list"]));
        for n in before..after {
            let name = format!("olv-{}-{n}", std::process::id());
            assert!(!namespaces.contains(&name), "{name} survived");
            let veth = format!("olvh{}-{}", base36(std::process::id()), base36(n));
            let links = run_checked(Command::new("ip").args(["-o", "link"]));
            assert!(!links.contains(&veth), "{veth} survived");
        }
    }

    #[test]
    fn keys_decode_in_every_base64_form() {
        let key = [0xfbu8; 32];
        for text in [
            URL_SAFE_NO_PAD.encode(key),
            URL_SAFE.encode(key),
            STANDARD.encode(key),
            STANDARD_NO_PAD.encode(key),
            STANDARD
                .encode(key)
                .replace('/', "%2F")
                .replace('+', "%2B")
                .replace('=', "%3D"),
        ] {
            assert_eq!(decode_key(&text), Some(key), "{text}");
        }
        assert_eq!(decode_key(&STANDARD.encode([1u8; 31])), None);
        assert_eq!(decode_key("not base64!"), None);
    }

    #[test]
    fn uuids_and_names() {
        assert_eq!(
            parse_uuid("ABCDEF01-2345-6789-abcd-ef0123456789").as_deref(),
            Some("abcdef01-2345-6789-abcd-ef0123456789")
        );
        assert_eq!(
            parse_uuid("helloworld").as_deref(),
            Some("00000000-0000-0000-0000-000000000000")
        );
        assert_eq!(parse_uuid("abcdef01-2345-6789-abcd-ef012345678"), None);
        assert_eq!(parse_uuid("zbcdef01-2345-6789-abcd-ef0123456789"), None);
        assert_eq!(deployment_name(0), "bold-tesla");
        assert_eq!(base36(36 * 36 + 35), "10z");
        let now = rfc3339_now();
        assert_eq!((now.len(), &now[10..11], &now[19..]), (25, "T", "+00:00"));
    }
}
