//! The in-process NBD server against the real QEMU tools (`qemu-img`,
//! `qemu-io` from qemu-utils, Debian 7.2) and against raw clients written
//! here: QEMU reads a qcow2 image served from memory, a read blocked on
//! bytes "still downloading" does not hold up the others, a failing source
//! is an I/O error rather than a hang, hostile clients get bounded answers
//! (`nbd/hostile.rs`), and a stop is bounded even with a read blocked.
#![allow(clippy::unwrap_used)]

#[path = "nbd/hostile.rs"]
mod hostile;
#[path = "nbd/support.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::XorShift;
use vmrunner::nbd::{self, NbdError, NbdServer};

use support::*;

const EXPORT: &str = "disk";

/// A 64 MiB qcow2 image whose first MiB is 0xab, written by `qemu-io`.
fn qcow2_image(dir: &Path) -> Vec<u8> {
    let image = dir.join("disk.qcow2");
    let image = image.to_str().unwrap();
    run_ok(
        dir,
        "qemu-img",
        &["create", "-q", "-f", "qcow2", image, "64M"],
    );
    run_ok(
        dir,
        "qemu-io",
        &["-f", "qcow2", "-c", "write -q -P 0xab 0 1M", image],
    );
    fs::read(image).unwrap()
}

#[test]
fn qemu_reads_a_qcow2_image_served_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = qcow2_image(dir.path());
    let socket = dir.path().join("nbd.sock");
    let server = NbdServer::serve(&socket, EXPORT, Arc::new(MemorySource(bytes))).unwrap();
    let uri = nbd::uri(server.socket(), EXPORT);
    let qcow2_over_nbd = format!(
        r#"json:{{"driver":"qcow2","file":{{"driver":"nbd","server":{{"type":"unix","path":"{}"}},"export":"{EXPORT}"}}}}"#,
        socket.display()
    );
    let info: Value = serde_json::from_str(&run_ok(
        dir.path(),
        "qemu-img",
        &["info", "--output=json", &qcow2_over_nbd],
    ))
    .unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 64 << 20);
    let original = dir.path().join("disk.qcow2");
    let compare = [
        "compare",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        original.to_str().unwrap(),
        &uri,
    ];
    assert!(run_ok(dir.path(), "qemu-img", &compare).contains("Images are identical"));
    let pattern = run_bounded(
        dir.path(),
        "qemu-io",
        &["-r", "-f", "qcow2", "-c", "read -P 0xab 0 1M", &uri],
    );
    let said = String::from_utf8_lossy(&pattern.stdout);
    assert!(said.contains("read 1048576/1048576 bytes"), "{said}");
    server.stop();
}

#[test]
fn qemu_img_convert_copies_the_export_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = XorShift::new(42).bytes((8 << 20) + 3 * 512);
    let socket = dir.path().join("nbd.sock");
    let server = NbdServer::serve(&socket, EXPORT, Arc::new(MemorySource(bytes.clone()))).unwrap();
    let uri = nbd::uri(&socket, EXPORT);
    let info: Value = serde_json::from_str(&run_ok(
        dir.path(),
        "qemu-img",
        &["info", "--output=json", "-f", "raw", &uri],
    ))
    .unwrap();
    assert_eq!(info["virtual-size"], bytes.len());
    let copy = dir.path().join("copy.raw");
    let convert = [
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        "-m",
        "16",
        &uri,
        copy.to_str().unwrap(),
    ];
    run_ok(dir.path(), "qemu-img", &convert);
    assert!(
        fs::read(&copy).unwrap() == bytes,
        "the copy differs from the export"
    );
    drop(server);
    assert!(!socket.exists(), "dropping the server removes its socket");
}

#[test]
fn a_blocked_read_does_not_hold_up_reads_of_bytes_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = XorShift::new(3).bytes(1 << 20);
    let source = Arc::new(GateSource::new(bytes.clone(), 512 << 10));
    let server = NbdServer::serve(&dir.path().join("nbd.sock"), EXPORT, source.clone()).unwrap();
    let (mut client, _, _) = open_export(server.socket(), EXPORT);
    send_request(&mut client, CMD_READ, 1, 768 << 10, 4096); // still downloading
    let started = Instant::now();
    assert_eq!(read_export(&mut client, 2, 0, 4096), bytes[..4096]);
    assert_eq!(read_export(&mut client, 3, 4096, 65536), bytes[4096..69632]);
    assert!(started.elapsed() < Duration::from_secs(2));
    source.open();
    assert_eq!(read_simple_reply(&mut client), (0, 1));
    let mut late = vec![0; 4096];
    std::io::Read::read_exact(&mut client, &mut late).unwrap();
    assert!(late == bytes[768 << 10..(768 << 10) + 4096]);
    server.stop();
}

#[test]
fn a_failing_source_is_an_io_error_in_qemu_io_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let server = NbdServer::serve(&socket, EXPORT, Arc::new(FailingSource(1 << 20))).unwrap();
    let uri = nbd::uri(&socket, EXPORT);
    let output = run_bounded(
        dir.path(),
        "qemu-io",
        &["-r", "-f", "raw", "-c", "read 0 4k", &uri],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("Input/output error"), "{said}");
    server.stop();
}

#[test]
fn stop_is_bounded_with_a_read_blocked_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = XorShift::new(5).bytes(1 << 20);
    let source = Arc::new(GateSource::new(bytes, 0));
    let socket = dir.path().join("nbd.sock");
    let server = NbdServer::serve(&socket, EXPORT, source.clone()).unwrap();
    let (mut blocked, _, _) = open_export(&socket, EXPORT);
    send_request(&mut blocked, CMD_READ, 1, 0, 4096);
    let mut handshaking = connect(&socket);
    greet(&mut handshaking, 3);
    std::thread::sleep(Duration::from_millis(100)); // the read reaches the source
    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!socket.exists());
    assert_closed(&mut blocked);
    assert_closed(&mut handshaking);
    source.open(); // the detached read ends; its reply goes nowhere
}

#[test]
fn the_socket_is_private_and_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nbd.sock");
    let source = Arc::new(MemorySource(vec![0; 4096]));
    let server = NbdServer::serve(&socket, EXPORT, source.clone()).unwrap();
    let mode = fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = NbdServer::serve(&socket, EXPORT, source.clone());
    assert!(matches!(again, Err(NbdError::SocketExists(_))), "{again:?}");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["nbd.sock"], "no staging directory left behind");
    server.stop();
    let file = dir.path().join("file");
    fs::write(&file, "keep").unwrap();
    let refused = NbdServer::serve(&file, EXPORT, source);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains(file.to_str().unwrap())
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
    assert_eq!(
        nbd::uri(Path::new("/run/a b/nbd.sock"), "disk"),
        "nbd+unix:///disk?socket=/run/a%20b/nbd.sock"
    );
}
