//! wireguard-go as a client of the server under test: a network
//! namespace with a veth pair to the host and a wireguard-go interface,
//! configured with `wg` and `ip`. Everything is removed on drop. What runs
//! inside (dig, Python sockets) is in `probes`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use testkit::run;

/// A network namespace with a veth pair to the host and wireguard-go as a
/// WireGuard client; everything is removed on drop.
pub struct Namespace {
    name: String,
    host_veth: String,
    wg_interface: String,
    pub host_ip: Ipv4Addr,
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
    pub fn create() -> Namespace {
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
    pub fn connect(
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
    pub fn try_exec(&self, args: &[&str]) -> Result<String, String> {
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

    pub fn exec(&self, args: &[&str]) -> String {
        self.try_exec(args)
            .unwrap_or_else(|e| panic!("{args:?} in the namespace failed: {e}"))
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

/// The namespace's end of the /30 whose host end is `host`.
pub fn inside_of(host: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(host) + 1)
}
