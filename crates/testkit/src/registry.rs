//! A real OCI registry for tests: the CNCF distribution registry
//! (Debian's `docker-registry`) on loopback, storage in a temporary
//! directory, optionally behind htpasswd authentication, optionally over
//! HTTPS with a certificate from a throw-away CA ([`crate::tls::TestCa`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run;
use crate::tls::TestCa;

/// A running registry, stopped when dropped.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The registry's storage and config.
    pub dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    /// Starts a registry; with `user`, it requires that user and password.
    pub fn start(user: Option<(&str, &str)>) -> TestRegistry {
        TestRegistry::start_with(user, None)
    }

    /// Starts a registry as [`Self::start`], serving HTTPS with the server
    /// certificate of `tls` when given.
    pub fn start_with(user: Option<(&str, &str)>, tls: Option<&TestCa>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let auth = match user {
            Some((name, password)) => {
                let htpasswd = run("htpasswd", &["-Bbn", name, password]);
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, htpasswd).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: olive2022-test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let tls = match tls {
            Some(ca) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.cert_pem.display(),
                ca.key_pem.display()
            ),
            None => String::new(),
        };
        let storage = dir.path().join("storage");
        // A fixed secret keeps upload sessions valid across a restart.
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: olive2022-test-secret\n{tls}{auth}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = spawn(&config_path);
        let registry = TestRegistry { host, dir, child };
        registry.wait_until_ready();
        registry
    }

    /// Where the registry keeps its blobs and repositories.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The largest file in the registry's storage: the data of its
    /// largest blob (a disk's layer), for tests that corrupt or hash it.
    pub fn largest_blob(&self) -> PathBuf {
        let mut largest = (0, PathBuf::new());
        let mut pending = vec![self.storage()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    pending.push(entry.path());
                } else if meta.len() > largest.0 {
                    largest = (meta.len(), entry.path());
                }
            }
        }
        largest.1
    }

    /// Stops the registry (it can be started again with [`Self::restart`]).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again with the same storage and port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.dir.path().join("config.yml"));
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&self.host) {
                let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
                let mut answer = [0u8; 12];
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", self.host);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(config: &Path) -> Child {
    Command::new("docker-registry")
        .args(["serve", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start docker-registry ({e}): apt-get install docker-registry")
        })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
