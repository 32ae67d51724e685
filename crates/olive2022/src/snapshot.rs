//! `olive2022 rfb-snapshot` (hidden): a screenshot of a VNC server as a PNG.
//!
//! The demo's viewer when there is no display: `launch` runs it with the
//! single argument `vnc://127.0.0.1:PORT` (the tunnel's local end), so it is
//! reached through a symbolic link named [`ALIAS`] to this binary and takes
//! the rest from the environment (see [`crate::cli::RfbSnapshotArgs`]).
//!
//! The RFB client, the wait for a settled screen and the PNG encoder are
//! the `rfb` crate's ([`rfb::capture`]); this module parses the address,
//! writes the file atomically and, when asked, keeps the connection's
//! tunnel up.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rfb::capture::SETTLE;

use crate::cli::RfbSnapshotArgs;

/// The name under which this binary acts as `rfb-snapshot` (a symbolic
/// link the demo makes, given to `launch --viewer`).
pub const ALIAS: &str = "olive2022-rfb-snapshot";

/// The arguments as clap should see them: when this binary runs as
/// [`ALIAS`], the hidden `rfb-snapshot` subcommand is put first.
pub fn args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let alias = args
        .first()
        .and_then(|argv0| Path::new(argv0).file_name())
        .is_some_and(|name| name == ALIAS);
    if alias {
        args.insert(1, OsString::from("rfb-snapshot"));
    }
    args
}

/// `olive2022 rfb-snapshot ADDRESS OUT.png`.
pub fn run(args: &RfbSnapshotArgs) -> Result<ExitCode> {
    let address = parse_address(&args.address)?;
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout);
    let capture = rfb::capture(&address, timeout, SETTLE)?;
    write_png_atomically(&args.output, &capture.screen)?;
    println!(
        "VM screen at vnc://{address}: {}×{} saved to {} after {:.1} s{}",
        capture.screen.width,
        capture.screen.height,
        args.output.display(),
        started.elapsed().as_secs_f64(),
        if capture.settled {
            ""
        } else {
            " (it had not settled yet)"
        }
    );
    if args.hold {
        // `launch` keeps the tunnel up while its viewer (this process)
        // runs: wait until interrupted, or until `launch` itself is gone.
        println!("The VM stays reachable at vnc://{address}; press Ctrl-C to stop the demo");
        let parent = std::os::unix::process::parent_id();
        while std::os::unix::process::parent_id() == parent {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vnc://HOST:PORT`, `HOST::PORT` or `HOST:PORT` as `HOST:PORT`.
fn parse_address(text: &str) -> Result<String> {
    let rest = text.strip_prefix("vnc://").unwrap_or(text);
    let rest = rest.trim_end_matches('/');
    let split = if rest.starts_with('[') {
        rest.split_once("]:")
            .map(|(host, port)| (&rest[..=host.len()], port))
    } else {
        rest.split_once("::").or_else(|| rest.rsplit_once(':'))
    };
    let (host, port) = split.context("the VNC address has no port")?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("bad port in the VNC address {text:?}"))?;
    if host.is_empty() {
        bail!("the VNC address {text:?} has no host");
    }
    Ok(format!("{host}:{port}"))
}

/// Writes `screen` as a PNG at `path`, complete or not at all.
fn write_png_atomically(path: &Path, screen: &rfb::Framebuffer) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".olive2022-screenshot")
        .suffix(".png")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(&screen.to_png()?)?;
    // A picture, not a secret: readable like any new file (tempfile makes
    // it 0600).
    std::fs::set_permissions(
        file.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("vnc://127.0.0.1:5901").unwrap(),
            "127.0.0.1:5901"
        );
        assert_eq!(parse_address("127.0.0.1::5902").unwrap(), "127.0.0.1:5902");
        assert_eq!(parse_address("localhost:5903").unwrap(), "localhost:5903");
        assert_eq!(parse_address("vnc://[::1]:5904").unwrap(), "[::1]:5904");
        assert!(parse_address("vnc://127.0.0.1").is_err());
        assert!(parse_address(":5900").is_err());
    }
}
