//! `olive2022 extract` end to end: real packages in, QEMU-checked images out.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testkit::{assert_same_disk, ext4_disk, hidden_files, package, package_with_domain, qcow2_of};

fn olive(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn extract(package: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["extract", "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(package.to_str().unwrap());
    olive(&args)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_ok(output: &Output) {
    assert!(output.status.success(), "failed: {}", stderr(output));
}

/// Starts `olive2022 ARGS`, presses Ctrl-C once it has temporaries in
/// `out_dir`, and checks that it stops with 130 and leaves nothing there.
fn interrupt(args: &[&str], out_dir: &Path) {
    interrupt_with("-INT", args, out_dir);
}

/// [`interrupt`] with another signal (`-TERM`: what `kill`, `systemctl`
/// and `docker stop` send).
fn interrupt_with(signal: &str, args: &[&str], out_dir: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while hidden_files(out_dir).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    testkit::run("kill", &[signal, &child.id().to_string()]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        hidden_files(out_dir).is_empty(),
        "temporaries left: {:?}",
        hidden_files(out_dir)
    );
}

/// A workspace with a small real disk, raw and qcow2.
struct Fixture {
    dir: tempfile::TempDir,
    raw: PathBuf,
    qcow2: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let raw = ext4_disk(dir.path(), "48M");
    let qcow2 = qcow2_of(&raw, &[]);
    Fixture { dir, raw, qcow2 }
}

#[test]
fn every_disk_layout_extracts_to_an_identical_disk() {
    let f = fixture();
    let cases = [
        ("qcow2 stored", &f.qcow2, "qcow2", false),
        ("raw stored", &f.raw, "raw", false),
        ("qcow2 deflated", &f.qcow2, "qcow2", true),
        ("raw deflated", &f.raw, "raw", true),
    ];
    for (what, disk, format, deflated) in cases {
        let pkg = f.dir.path().join("vm.nxpk");
        package(&pkg, "Windows 3.1", disk, format, deflated);
        for compression in ["deflate", "zstd"] {
            let out = f.dir.path().join("out.qcow2");
            let output = extract(
                &pkg,
                &out,
                &["--compression", compression, "--threads", "2"],
            );
            assert!(
                output.status.success(),
                "{what} {compression}: {}",
                stderr(&output)
            );
            assert_same_disk(&out, &f.raw);
        }
    }
}

#[test]
fn json_summary_and_determinism() {
    let f = fixture();
    let pkg = f.dir.path().join("vm.nxpk");
    package(&pkg, "Mac OS 7", &f.qcow2, "qcow2", false);
    let (a, b) = (f.dir.path().join("a.qcow2"), f.dir.path().join("b.qcow2"));
    let first = extract(&pkg, &a, &["--json"]);
    assert_ok(&first);
    assert_ok(&extract(&pkg, &b, &["--json", "--threads", "1"]));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same input, same bytes"
    );
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["name"], "Mac OS 7");
    assert_eq!(summary["vcpus"], 2);
    assert_eq!(summary["memory_mib"], 256);
    assert_eq!(summary["disk_bus"], "ide");
    assert_eq!(summary["kubevirt_bus"], "sata");
    assert_eq!(summary["input_format"], "qcow2");
    assert_eq!(summary["virtual_size"], 48 << 20);
    assert_eq!(summary["output_size"], std::fs::metadata(&a).unwrap().len());
    assert_eq!(summary["network"], true);
    assert!(summary["elapsed_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        first.stderr.is_empty(),
        "--json prints nothing else: {}",
        stderr(&first)
    );
}

#[test]
fn unnamed_vm_needs_a_name_when_not_interactive() {
    let f = fixture();
    let pkg = f.dir.path().join("vm.nxpk");
    let out = f.dir.path().join("out.qcow2");
    for placeholder in ["", "Virtual Machine"] {
        package(&pkg, placeholder, &f.qcow2, "qcow2", false);
        let output = extract(&pkg, &out, &[]);
        assert!(!output.status.success());
        assert!(stderr(&output).contains("--name"), "{}", stderr(&output));
        assert!(!out.exists());
    }
    let output = extract(&pkg, &out, &["--name", "DOS 6.22", "--json"]);
    assert_ok(&output);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["name"], "DOS 6.22");
}

#[test]
fn bad_packages_fail_cleanly_and_leave_nothing() {
    let f = fixture();
    let dir = f.dir.path();
    let good = dir.join("good.nxpk");
    package(&good, "VM", &f.qcow2, "qcow2", false);
    let bytes = std::fs::read(&good).unwrap();
    let backed = dir.join("backed.qcow2");
    testkit::qcow2_with_backing(&backed, &f.raw, "48M");
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><domain><name>&d;&d;&d;&d;</name></domain>"#;
    let domain = testkit::domain_xml("qcow2", "ide");
    type MakePackage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, MakePackage, &str)> = vec![
        (
            "not a zip",
            Box::new(|p| std::fs::write(p, b"hello world, not a package").unwrap()),
            "neither",
        ),
        (
            "truncated",
            Box::new(|p| std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap()),
            "package",
        ),
        (
            "tail cut",
            Box::new(|p| std::fs::write(p, &bytes[..bytes.len() - 10]).unwrap()),
            "package",
        ),
        (
            "backing file",
            Box::new(|p| package_with_domain(p, &domain, Some(&backed))),
            "backing file",
        ),
        (
            "entity bomb",
            Box::new(|p| package_with_domain(p, bomb, Some(&f.qcow2))),
            "domain",
        ),
        (
            "missing disk",
            Box::new(|p| package_with_domain(p, &domain, None)),
            "disk.img",
        ),
    ];
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("vm.qcow2");
    for (what, make, expected) in cases {
        let pkg = dir.join("bad.nxpk");
        make(&pkg);
        let output = extract(&pkg, &out, &[]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{what}: {message}");
        assert!(message.contains("error:"), "{what}: {message}");
        assert!(
            message.to_lowercase().contains(expected),
            "{what}: expected `{expected}` in {message}"
        );
        assert!(!message.contains("panicked"), "{what}: {message}");
        assert!(!out.exists(), "{what}: an output was left");
        assert!(
            hidden_files(&out_dir).is_empty(),
            "{what}: temporaries left: {:?}",
            hidden_files(&out_dir)
        );
    }
}

#[test]
fn ctrl_c_and_sigterm_stop_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 512 MiB of compressible, non-zero data takes seconds to compress.
    let raw = dir.path().join("big.raw");
    let text: Vec<u8> = b"Olive Archive preserves software. "
        .iter()
        .cycle()
        .take(1 << 20)
        .copied()
        .collect();
    let mut file = std::fs::File::create(&raw).unwrap();
    for _ in 0..512 {
        std::io::Write::write_all(&mut file, &text).unwrap();
    }
    drop(file);
    let pkg = dir.path().join("big.nxpk");
    package(&pkg, "Big", &raw, "raw", false);
    std::fs::remove_file(&raw).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("big.qcow2");
    let (out_str, pkg_str) = (out.to_str().unwrap(), pkg.to_str().unwrap());
    interrupt(
        &["extract", "--threads", "1", "-o", out_str, pkg_str],
        &out_dir,
    );
    assert!(!out.exists());
    // SIGTERM cleans up the same way.
    interrupt_with(
        "-TERM",
        &["extract", "--threads", "1", "-o", out_str, pkg_str],
        &out_dir,
    );
    assert!(!out.exists());
}

#[test]
fn downloads_from_urls_and_references_with_resume() {
    let f = fixture();
    let site = f.dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    package(
        &site.join("vm.nxpk"),
        "Windows 95",
        &f.qcow2,
        "qcow2",
        false,
    );
    // The first response breaks after 100 KiB: the download must resume.
    let faults = testkit::http::Faults {
        cut_first_after: Some(100 << 10),
        ..Default::default()
    };
    let server = testkit::http::serve(site.clone(), faults);
    let url = format!("{}/vm.nxpk?token=SECRET", server.base).replace("http://", "vmnetx+http://");
    let out_dir = f.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("vm.qcow2");
    let output = olive(&["extract", "--json", "-o", out.to_str().unwrap(), &url]);
    assert_ok(&output);
    assert_same_disk(&out, &f.raw);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let uuid = olive(&["uuid", &url]);
    assert_eq!(
        summary["uuid"],
        String::from_utf8_lossy(&uuid.stdout).trim()
    );
    let requests = server.requests.lock().unwrap().clone();
    assert!(
        requests.len() >= 2 && requests[1].contains("range=Some(102400)"),
        "{requests:?}"
    );
    assert!(
        hidden_files(&out_dir).is_empty(),
        "the download was not removed"
    );

    // A .netx reference to the same package.
    let reference = f.dir.path().join("vm.netx");
    let xml = format!(
        r#"<?xml version="1.0"?><reference xmlns="http://olivearchive.org/xmlns/vmnetx/reference"><url>{}/vm.nxpk</url></reference>"#,
        server.base
    );
    std::fs::write(&reference, xml).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_ok(&extract(&reference, &out, &[]));
    assert_same_disk(&out, &f.raw);

    // A missing package: a clear error without the secret token.
    let missing = format!("{}/nothing.nxpk?token=SECRET", server.base);
    let output = olive(&[
        "extract",
        "-o",
        out_dir.join("x.qcow2").to_str().unwrap(),
        &missing,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("404") && !stderr(&output).contains("SECRET"),
        "{}",
        stderr(&output)
    );
    assert!(hidden_files(&out_dir).is_empty());
}

#[test]
fn ctrl_c_during_a_download_leaves_nothing() {
    let f = fixture();
    let site = f.dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    package(&site.join("vm.nxpk"), "Slow", &f.raw, "raw", false);
    let pause = Some(std::time::Duration::from_millis(50));
    let server = testkit::http::serve(
        site,
        testkit::http::Faults {
            pause,
            ..Default::default()
        },
    );
    let out_dir = f.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("vm.qcow2");
    let url = format!("{}/vm.nxpk", server.base);
    interrupt(&["extract", "-o", out.to_str().unwrap(), &url], &out_dir);
    assert!(!out.exists());
}
