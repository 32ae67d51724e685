//! `throttle_proxy UPSTREAM BYTES_PER_SECOND LATENCY_MS`: the tests'
//! [`ThrottleProxy`] as a program, for the benchmarks (`bench/lazy.sh`).
//! Prints `127.0.0.1:PORT`, then proxies until killed; on standard input
//! closing or SIGTERM it prints what it counted and exits.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use testkit::throttle::{Shape, ThrottleProxy};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, rate, latency] = args.as_slice() else {
        eprintln!("usage: throttle_proxy UPSTREAM BYTES_PER_SECOND LATENCY_MS");
        std::process::exit(2);
    };
    let shape = Shape {
        rate: rate.parse().unwrap(),
        latency: Duration::from_millis(latency.parse().unwrap()),
    };
    let proxy = ThrottleProxy::start(upstream, shape);
    println!("{}", proxy.host);
    // Runs until its standard input closes (the benchmark holds it open).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let counters = proxy.counters();
    // The reader may be gone already: nothing to report to then.
    let _ = writeln!(
        std::io::stdout(),
        "bytes_down={} requests={} blob_gets={}",
        counters.bytes_down.load(Ordering::Relaxed),
        counters.requests.load(Ordering::Relaxed),
        counters.blob_gets.load(Ordering::Relaxed)
    );
}
