//! `olive2022 cloudlet` as a child process, and `olive2022 launch` with
//! the test viewer (`rfb-probe`) against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::registry::free_port;

use super::olive;

/// The test viewer: reports what it saw over RFB to `$RFB_REPORT`.
pub fn viewer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rfb-probe"))
}

/// `olive2022 cloudlet` as a child process, stopped with Ctrl-C (SIGINT)
/// on drop. Global flags (`-vv`) may come among the `extra` flags.
pub struct CloudletProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT` of its API.
    pub api: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl CloudletProcess {
    pub fn start(recipes: &Path, data_dir: &Path, extra: &[&str]) -> CloudletProcess {
        CloudletProcess::start_with_env(recipes, data_dir, extra, &[])
    }

    pub fn start_with_env(
        recipes: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> CloudletProcess {
        CloudletProcess::start_as(&[], recipes, data_dir, extra, env)
    }

    /// The cloudlet run through `wrapper` (a program that ends by executing
    /// its arguments, such as `setpriv … --`), so its PID is the cloudlet's.
    pub fn start_as(
        wrapper: &[&str],
        recipes: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> CloudletProcess {
        let (api_port, wg_port) = (free_port(), free_port());
        let default_cache = data_dir.join("cache");
        let cache: &[&std::ffi::OsStr] = if extra.contains(&"--cache-dir") {
            &[]
        } else {
            &["--cache-dir".as_ref(), default_cache.as_os_str()]
        };
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_olive2022"));
                command
            }
            None => olive(),
        };
        let child = command
            .envs(env.iter().copied())
            .args(["cloudlet", "--recipes", recipes.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .args(["--wg-listen", &format!("127.0.0.1:{wg_port}")])
            .args(["--data-dir", data_dir.to_str().unwrap()])
            .args(cache)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data_dir.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        let cloudlet = CloudletProcess {
            child,
            api: format!("http://127.0.0.1:{api_port}"),
            data_dir: data_dir.to_owned(),
        };
        // Generous for a loaded machine; it returns as soon as it serves.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", api_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the cloudlet did not start: {}",
                cloudlet.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cloudlet
    }

    /// What the cloudlet logged (its standard error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// QEMU processes whose work directory lies in this cloudlet's data dir.
    pub fn vms(&self) -> Vec<u32> {
        let pattern = self.data_dir.join("vms").display().to_string();
        let output = Command::new("pgrep")
            .args(["-f", &format!("qemu-system.*{pattern}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// Its UUID, as it reports it to tier 1s (`DATA/cloudlet.uuid`).
    pub fn uuid(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("cloudlet.uuid"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Ctrl-C (SIGINT); killed after 15 s.
    pub fn interrupt(&mut self) {
        testkit::process::stop(&mut self.child, "INT", Duration::from_secs(15));
    }

    /// SIGTERM, as `systemctl stop` sends; the exit status, or `None` when
    /// it had to be killed after 30 s.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        testkit::process::stop(&mut self.child, "TERM", Duration::from_secs(30))
    }
}

impl Drop for CloudletProcess {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// [`launch_url`] with more environment variables.
pub fn launch_with_env(
    api: &str,
    url: &str,
    cache: &Path,
    env: &[(&str, &str)],
) -> (Output, Option<Value>) {
    let report = cache.join("report.json");
    let _ = std::fs::remove_file(&report);
    let output = olive()
        .args([
            "launch",
            "--timeout",
            "60",
            "--tier1-url",
            api,
            "--viewer",
            viewer().to_str().unwrap(),
            url,
        ])
        .env("XDG_CACHE_HOME", cache)
        .env("RFB_REPORT", &report)
        .env_remove("OLIVE2022_VIEWER")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&report)
        .ok()
        .map(|text| serde_json::from_str(&text).unwrap());
    (output, report)
}
