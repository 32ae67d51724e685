//! What the wireguard-go tests run inside the namespace: `dig` for DNS,
//! Python sockets for TCP (banner, echo, bulk).

use std::net::Ipv4Addr;

use super::namespace::Namespace;

impl Namespace {
    /// `dig @10.5.0.1 NAME TYPE` inside the namespace: (status, answers).
    pub fn dig(&self, name: &str, qtype: &str) -> (String, Vec<String>) {
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
    pub fn banner_and_echo(&self, ip: Ipv4Addr, connections: usize) -> Result<String, String> {
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
    pub fn bulk(&self, ip: Ipv4Addr, mib: usize) -> f64 {
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
