//! Test helpers shared by the workspace's integration tests.
//!
//! They make real inputs with real tools (`mke2fs`, `qemu-img`) and real
//! VMNetX packages, so that tests exercise what the archive ships. A missing
//! tool fails the test with a message naming the package to install: tests
//! never pass by skipping what they need.
//!
//! The real components and the rules of the test environment are described
//! in `docs/test-environment.md`.
#![allow(clippy::unwrap_used)]

pub mod boot;
pub mod cloudlet;
pub mod credential_helper;
pub mod geoip;
pub mod http;
pub mod process;
pub mod registry;
pub mod throttle;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;

use vmnetx::bus::DiskBus;
use vmnetx::domain::DiskFormat;
use vmnetx::package::Manifest;
use vmnetx::package::write::{Compression, PackageContents, write_package};
use vmnetx::package::xml::DomainSpec;

/// Panics with the command line and its output unless `output` is a
/// success.
pub fn assert_succeeded(program: &str, args: &[&str], output: &std::process::Output) {
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a tool and returns its standard output; panics with its output when
/// it fails or is missing.
pub fn run(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run_bytes(program, args)).into_owned()
}

/// Runs a tool and returns its standard output as bytes; panics as [`run`].
pub fn run_bytes(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): install it (see .ci/run)"));
    assert_succeeded(program, args, &output);
    output.stdout
}

/// The Python of the original olive2022 0.1.7 (with sinfonia-tier3), the
/// side-by-side oracle: `$OLIVE2022_ORACLE_PYTHON`, else the venv that
/// `scripts/setup.sh` makes. Panics, saying how to install it, if missing.
pub fn oracle_python() -> PathBuf {
    let python = std::env::var_os("OLIVE2022_ORACLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/olive-oracle/bin/python3"));
    assert!(
        python.exists(),
        "the original olive2022 / sinfonia-tier3 is missing ({}); scripts/setup.sh installs it \
         (or set OLIVE2022_ORACLE_PYTHON)",
        python.display()
    );
    python
}

/// Real files (text and binary) that every machine of this kind has.
const REAL_TREES: &[&str] = &[
    "/usr/share/perl5",
    "/usr/share/zoneinfo",
    "/usr/share/common-licenses",
];

/// A raw ext4 disk of `size` (as `truncate -s` takes it) filled with a few
/// MiB of real files, at `dir/disk.raw`. Each of [`REAL_TREES`] goes in
/// while the files stay within half the disk (as this machine stores
/// them, block by block): how big those trees are depends on the packages
/// installed, and a fixed list once outgrew the smaller test disks.
pub fn ext4_disk(dir: &Path, size: &str) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let budget_kib = size_in_bytes(size) / 2 / 1024;
    for source in REAL_TREES.iter().filter(|path| Path::new(path).is_dir()) {
        run("cp", &["-a", source, tree.to_str().unwrap()]);
        if disk_usage_kib(&tree) > budget_kib {
            let copied = tree.join(Path::new(source).file_name().unwrap());
            std::fs::remove_dir_all(copied).unwrap();
        }
    }
    let disk = dir.join("disk.raw");
    run("truncate", &["-s", size, disk.to_str().unwrap()]);
    run(
        "mke2fs",
        &[
            "-q",
            "-t",
            "ext4",
            "-d",
            tree.to_str().unwrap(),
            disk.to_str().unwrap(),
        ],
    );
    disk
}

/// `24M`, `1G`, `512K` or a plain byte count, in bytes.
fn size_in_bytes(size: &str) -> u64 {
    let (number, unit) = size.split_at(size.trim_end_matches(['K', 'M', 'G']).len());
    let number: u64 = number.parse().unwrap();
    number
        << match unit {
            "K" => 10,
            "M" => 20,
            "G" => 30,
            _ => 0,
        }
}

/// What `path` takes on this machine's disk (`du -sk`), in KiB.
fn disk_usage_kib(path: &Path) -> u64 {
    let output = run("du", &["-sk", path.to_str().unwrap()]);
    output.split_whitespace().next().unwrap().parse().unwrap()
}

/// `qemu-img convert -c -O qcow2` of `raw` (the archive's usual disk).
pub fn qcow2_of(raw: &Path, extra: &[&str]) -> PathBuf {
    let out = raw.with_extension("qcow2");
    let mut args = vec!["convert", "-c", "-O", "qcow2"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[raw.to_str().unwrap(), out.to_str().unwrap()]);
    run("qemu-img", &args);
    out
}

/// Asserts that `image` passes `qemu-img check` and has the same guest
/// contents as `reference`.
pub fn assert_same_disk(image: &Path, reference: &Path) {
    run(
        "qemu-img",
        &["check", "-f", "qcow2", image.to_str().unwrap()],
    );
    run(
        "qemu-img",
        &[
            "compare",
            image.to_str().unwrap(),
            reference.to_str().unwrap(),
        ],
    );
}

/// The test VM's libvirt domain (2 vCPUs, 256 MiB, a user-mode NIC) with
/// the given disk format and bus (libvirt names), by vmnetx's generator.
pub fn domain_xml(format: &str, bus: &str) -> String {
    DomainSpec {
        name: "test".to_owned(),
        vcpus: 2,
        memory_mib: 256,
        arch: "i686".to_owned(),
        machine: "pc-1.0".to_owned(),
        disk_format: DiskFormat::from_libvirt(format)
            .unwrap_or_else(|| panic!("no disk format {format:?}")),
        disk_bus: DiskBus::from_libvirt(bus).unwrap_or_else(|| panic!("no disk bus {bus:?}")),
        network: true,
    }
    .xml()
}

/// Writes a package of the VM `name` with the given `domain.xml` and
/// optionally a disk (stored, or deflated if `deflated`).
fn write_test_package(out: &Path, name: &str, domain: &str, disk: Option<(&Path, bool)>) {
    let manifest = Manifest {
        name: name.to_owned(),
        domain_path: "domain.xml".to_owned(),
        disk_path: "disk.img".to_owned(),
        memory_path: None,
    };
    let compression = |deflated| {
        if deflated {
            Compression::Deflated
        } else {
            Compression::Stored
        }
    };
    let contents = PackageContents {
        manifest: &manifest,
        domain_xml: domain,
        disk: disk.map(|(path, deflated)| (path, compression(deflated))),
    };
    write_package(std::fs::File::create(out).unwrap(), &contents).unwrap();
}

/// A complete package of `disk` (declared as `format`) named `name`.
pub fn package(out: &Path, name: &str, disk: &Path, format: &str, deflated: bool) {
    let domain = domain_xml(format, "ide");
    write_test_package(out, name, &domain, Some((disk, deflated)));
}

/// Files in `dir` whose name starts with a dot: temporaries left behind.
pub fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with('.'))
        .collect()
}

/// A fast deterministic pseudo-random generator (xorshift64) for test data.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` random (incompressible) bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Fills `buf` eight bytes per step (much faster than [`Self::bytes`]
    /// for gigabytes; a different sequence).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// An empty qcow2 image of `size` whose backing file is `backing`: the
/// classic attack that makes `qemu-img` read a host file.
pub fn qcow2_with_backing(image: &Path, backing: &Path, size: &str) {
    let option = format!("backing_file={},backing_fmt=raw", backing.display());
    run(
        "qemu-img",
        &[
            "create",
            "-f",
            "qcow2",
            "-u",
            "-o",
            &option,
            image.to_str().unwrap(),
            size,
        ],
    );
}

/// A package with a regular manifest, the given `domain.xml` and optionally
/// a stored disk.
pub fn package_with_domain(out: &Path, domain: &str, disk: Option<&Path>) {
    write_test_package(out, "VM", domain, disk.map(|disk| (disk, false)));
}

/// What [`run_until_written`] saw.
pub struct Finished {
    /// The exit status, if the program ended by itself in time.
    pub status: Option<std::process::ExitStatus>,
    /// Its standard output and error, together.
    pub output: String,
}

/// Runs `command` until it has written `file` (or `timeout` passed, or
/// its output contains `failed_when`), then gives it `grace` to end by
/// itself and kills its whole process group otherwise. For third-party
/// programs (the original sinfonia-tier3) whose teardown can hang: the
/// file proves what the test needs, and a hang must never stall the suite.
pub fn run_until_written(
    command: &mut Command,
    file: &Path,
    failed_when: &str,
    timeout: std::time::Duration,
    grace: std::time::Duration,
) -> Finished {
    use std::os::unix::process::CommandExt;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !file.exists() && started.elapsed() < timeout {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let output = std::fs::read_to_string(log.path()).unwrap_or_default();
        if output.contains(failed_when) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Only a program that did its job is given time to end by itself.
    let grace = if file.exists() {
        grace
    } else {
        std::time::Duration::ZERO
    };
    let written = std::time::Instant::now();
    let status = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break Some(exit);
        }
        if written.elapsed() >= grace {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if status.is_none() {
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
    // Reaps it (a status already taken by try_wait is kept by std).
    let _ = child.wait();
    Finished {
        status,
        output: std::fs::read_to_string(log.path()).unwrap_or_default(),
    }
}

/// Runs the original `sinfonia-tier3 TIER1 UUID <stage2> stage2 --viewer
/// VIEWER` (its own namespace and wireguard-go, our `stage2` inside) with
/// its key cache in `cache`, and returns the JSON report the viewer wrote
/// to `$RFB_REPORT`. `stage2` waits up to `timeout`; the whole run gets 30 s
/// more, after which the tool is killed (see [`run_until_written`]).
pub fn original_stage2_report(
    tier1: &str,
    uuid: &str,
    stage2: &str,
    viewer: &Path,
    cache: &Path,
    timeout: std::time::Duration,
) -> serde_json::Value {
    let report = cache.join("report.json");
    let mut command = Command::new(oracle_python().with_file_name("sinfonia-tier3"));
    command
        .args([
            tier1,
            uuid,
            stage2,
            "stage2",
            "--timeout",
            &timeout.as_secs().to_string(),
        ])
        .args(["--viewer", viewer.to_str().unwrap()])
        .env("XDG_CACHE_HOME", cache)
        .env("RFB_REPORT", &report);
    // The viewer's report proves the path; sinfonia-tier3's own teardown
    // (its namespace helper) now and then hangs, and must not stall a suite.
    let grace = std::time::Duration::from_secs(10);
    // sinfonia-tier3 starts `unshare --user --net` and, without waiting
    // for it, has a child join that process's user namespace. When the
    // child wins the race, it joins its own namespace and setns(2) says
    // EINVAL, after which the tool hangs. A defect of the original, seen
    // under load (CI): such a run proves nothing either way, so it is
    // stopped at once and tried again.
    const TIER3_NAMESPACE_RACE: &str = "OSError: [Errno 22] EINVAL";
    let mut finished = None;
    for _attempt in 0..3 {
        let run = run_until_written(
            &mut command,
            &report,
            TIER3_NAMESPACE_RACE,
            timeout + std::time::Duration::from_secs(30),
            grace,
        );
        let lost_the_race = !report.exists() && run.output.contains(TIER3_NAMESPACE_RACE);
        finished = Some(run);
        if !lost_the_race {
            break;
        }
    }
    let finished = finished.expect("at least one attempt");
    assert!(report.exists(), "no viewer report: {}", finished.output);
    assert!(
        finished.status.is_none_or(|status| status.success()),
        "{}",
        finished.output
    );
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}
