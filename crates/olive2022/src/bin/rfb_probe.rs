//! `rfb-probe vnc://HOST:PORT`: the test suite's VNC viewer.
//!
//! `launch --viewer` (ours, or the original sinfonia-tier3 inside its
//! network namespace) runs it with the one argument `vnc://HOST:PORT`. It
//! asks the server for one full framebuffer update (Raw) with the `rfb`
//! crate and writes what it saw as JSON to the file named by `$RFB_REPORT`:
//! the banner, the size, the desktop name, the update's rectangles, the
//! fraction of pure red pixels, and the argument it was given. With
//! `RFB_CONNECTIONS=N` it first opens N-1 extra connections at once and
//! reads their banners (several connections through one tunnel), then
//! closes them and runs the session on a new one. With
//! `RFB_WAIT_RGB=R,G,B` it keeps asking for updates until at least
//! `RFB_WAIT_PIXELS` (default 1000) pixels have that colour, for at most
//! `RFB_WAIT_SECONDS` (default 60), and reports how many it saw and when.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rfb::Client;
use rfb::capture::connect_tcp;
use rfb::handshake::read_banner;
use serde_json::{Value, json};

/// How long connecting, and then the first update, may take.
const TIMEOUT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match probe(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rfb-probe: {error}");
            ExitCode::FAILURE
        }
    }
}

fn probe(argv: &[String]) -> Result<(), String> {
    let address = argv
        .first()
        .and_then(|arg| arg.strip_prefix("vnc://"))
        .ok_or_else(|| format!("expected vnc://HOST:PORT, got {argv:?}"))?;
    let connections: usize = std::env::var("RFB_CONNECTIONS")
        .unwrap_or_else(|_| "1".to_owned())
        .parse()
        .map_err(|e| format!("RFB_CONNECTIONS: {e}"))?;
    let report_path = std::env::var_os("RFB_REPORT").ok_or("RFB_REPORT is not set")?;
    let extra_banners = extra_banners(address, connections.saturating_sub(1))?;
    let mut report = session(address).map_err(|e| error_chain(&e))?;
    report["extra_banners"] = json!(extra_banners);
    report["argv"] = json!(argv);
    std::fs::write(&report_path, report.to_string()).map_err(|e| e.to_string())
}

/// Opens `count` connections at once, reads their banners, closes them.
fn extra_banners(address: &str, count: usize) -> Result<Vec<String>, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(connect_tcp(address, deadline).map_err(|e| error_chain(&e))?);
    }
    held.iter_mut()
        .map(|stream| read_banner(stream).map_err(|e| error_chain(&e)))
        .collect()
}

/// One session: a full Raw update, described.
fn session(address: &str) -> Result<Value, rfb::RfbError> {
    let stream = connect_tcp(address, Instant::now() + TIMEOUT)?;
    let mut client = Client::connect(stream)?;
    client.use_raw()?;
    client.request_update(false)?;
    let update = client.wait_for_update(TIMEOUT)?;
    let waited = wait_for_colour(address)?;
    let server = client.server();
    let screen = client.screen();
    let red = screen
        .pixels()
        .filter(|pixel| *pixel == [255, 0, 0])
        .count();
    let total = screen.pixels().count().max(1);
    let first = update.rectangles.first();
    Ok(json!({
        "banner": server.banner,
        "width": server.width,
        "height": server.height,
        "name": server.name,
        "rects": update.rectangles.len(),
        "encoding": first.map(|r| r.encoding),
        "rect": first.map(|r| [r.x, r.y, r.width, r.height]),
        "red_fraction": red as f64 / total as f64,
        "wait": waited,
    }))
}

/// With `RFB_WAIT_RGB`: looks again, on a new connection each second
/// (a guest that switches video modes changes the screen's size, which a
/// Raw-only session cannot follow), until enough pixels have that colour
/// or the time is up; how many did, and after how long.
fn wait_for_colour(address: &str) -> Result<Value, rfb::RfbError> {
    let Some(rgb) = std::env::var("RFB_WAIT_RGB")
        .ok()
        .and_then(|text| parse_rgb(&text))
    else {
        return Ok(Value::Null);
    };
    let wanted: usize = env_number("RFB_WAIT_PIXELS", 1000);
    let limit = Duration::from_secs(env_number("RFB_WAIT_SECONDS", 60));
    let started = Instant::now();
    loop {
        let stream = connect_tcp(address, Instant::now() + TIMEOUT)?;
        let mut client = Client::connect(stream)?;
        client.use_raw()?;
        client.request_update(false)?;
        client.wait_for_update(TIMEOUT)?;
        let pixels = client
            .screen()
            .pixels()
            .filter(|pixel| *pixel == rgb)
            .count();
        if pixels >= wanted || started.elapsed() >= limit {
            return Ok(json!({
                "rgb": rgb,
                "pixels": pixels,
                "width": client.server().width,
                "height": client.server().height,
                "seconds": started.elapsed().as_secs_f64(),
            }));
        }
        drop(client);
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn parse_rgb(text: &str) -> Option<[u8; 3]> {
    let parts: Vec<u8> = text
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    parts.try_into().ok()
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// An error with its causes, one after the other.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
