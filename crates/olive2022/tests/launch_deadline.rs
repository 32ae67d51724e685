//! `launch --timeout` bounds the whole launch, from the deploy request to
//! the viewer: a tier 1 that never answers, answers one byte at a time or
//! without end, and a deployment whose name server never answers, all end
//! within the limit (issue: the deploy request had its own fixed 60 s, the
//! body read had none, and name lookups began before the deadline).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use testkit::cloudlet::{Cloudlet, CloudletOptions};

const URL: &str = "vmnetx+https://olivearchive.org/launch/win31/package.nxpk";

/// Runs `launch --timeout SECS` against `tier1` with a throw-away key cache.
fn launch(tier1: &str, seconds: u32) -> (Output, Duration) {
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_olive2022"))
        .args(["launch", "--tier1-url", tier1, "--timeout"])
        .arg(seconds.to_string())
        .args(["--viewer", env!("CARGO_BIN_EXE_rfb-probe"), URL])
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (output, started.elapsed())
}

fn assert_timed_out(output: &Output, elapsed: Duration, seconds: u32, expected: &str) {
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(expected), "expected `{expected}` in: {text}");
    assert!(!text.contains("panicked"), "{text}");
    let bound = Duration::from_secs(u64::from(seconds) + 2);
    assert!(
        elapsed < bound,
        "took {elapsed:?} with --timeout {seconds}: {text}"
    );
}

/// A tier 1 that reads each request and then runs `answer` on the
/// connection; the thread ends with the test process.
fn tier1(answer: fn(&mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                answer(&mut stream);
            });
        }
    });
    url
}

#[test]
fn a_tier1_that_never_answers() {
    let url = tier1(|_| thread::sleep(Duration::from_secs(120)));
    let (output, elapsed) = launch(&url, 3);
    assert_timed_out(&output, elapsed, 3, "did not answer within");
}

#[test]
fn a_tier1_that_sends_its_body_a_byte_every_two_seconds() {
    let url = tier1(|stream| {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
        let _ = stream.write_all(head.as_bytes());
        for _ in 0..60 {
            if stream.write_all(b" ").is_err() {
                return;
            }
            thread::sleep(Duration::from_secs(2));
        }
    });
    let (output, elapsed) = launch(&url, 3);
    assert_timed_out(&output, elapsed, 3, "did not answer within");
}

#[test]
fn a_tier1_whose_chunked_body_never_ends() {
    let url = tier1(|stream| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = stream.write_all(head.as_bytes());
        let chunk = format!("1000\r\n{}\r\n", " ".repeat(0x1000));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    });
    let (output, elapsed) = launch(&url, 3);
    // Either bound may be reached first: 1 MiB at ~800 KiB/s, or 3 s.
    let text = String::from_utf8_lossy(&output.stderr);
    let expected = if text.contains("larger than") {
        "larger than"
    } else {
        "did not answer within"
    };
    assert_timed_out(&output, elapsed, 3, expected);
}

#[test]
fn a_deployment_whose_name_server_never_answers() {
    let cloudlet = Cloudlet::start(CloudletOptions {
        dns_server: false,
        ..CloudletOptions::default()
    });
    let (output, elapsed) = launch(&cloudlet.tier1_url(), 4);
    assert_timed_out(&output, elapsed, 4, "did not answer within 4 s");
}
