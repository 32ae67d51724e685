//! `uuid`, `launch` and `stage2`: the flags mapped onto the `launch`
//! library, its results printed.
//!
//! `launch` deploys the VM through Sinfonia, brings the WireGuard tunnel up
//! inside this process, waits until the VM's VNC server answers through the
//! tunnel, and runs a viewer on a local port forwarded to it; it returns the
//! viewer's exit status. With `--browser` the viewer is noVNC in the web
//! browser, served by this process until the page is closed. How is the library's business (`launch` crate).

use std::process::ExitCode;
use std::time::Duration;

use ::launch::{BROWSER_CHOICE, Frontend, Observer, PageEnded, viewer};
use anyhow::{Context, Result};
use sinfonia::deploy::Tier1;
use sinfonia::vmi::{VNC_PORT, VNC_SERVICE};
use sinfonia::wireguard::QrStyle;
use sinfonia::zeroconf;
use vmnetx::url::VmnetxUrl;

use crate::cli::{Cli, LaunchArgs, QrCodeArg, Stage2Args, UuidArgs};
use crate::interrupt;
use crate::progress::{TerminalObserver, Verbosity};

/// `olive2022 uuid URL`: prints the Sinfonia UUID.
pub fn uuid(args: &UuidArgs) -> Result<ExitCode> {
    let url = parse(&args.url)?;
    if args.json {
        crate::json::print_line(&url.identity())?;
    } else {
        println!("{}", url.sinfonia_uuid());
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(url: &str) -> Result<VmnetxUrl> {
    VmnetxUrl::parse(url).context("not a usable VMNetX URL")
}

fn observer(cli: &Cli) -> TerminalObserver {
    TerminalObserver {
        verbosity: Verbosity {
            quiet: cli.quiet,
            verbose: cli.is_verbose(),
        },
    }
}

/// `olive2022 launch URL`.
pub fn launch(cli: &Cli, args: &LaunchArgs) -> Result<ExitCode> {
    // The whole launch, from the deploy request to the viewer, within it.
    let deadline = ::launch::Deadline::after(Duration::from_secs(args.timeout));
    let url = parse(&args.url)?;
    let mut observer = observer(cli);
    let tier1_url = tier1_url(args, &mut observer)?;
    let tier1 = Tier1::new(&tier1_url).context("invalid tier-1 URL")?;
    crate::json::plan_only(args.json, cli.dry_run)?;
    if cli.dry_run {
        return dry_run(args, &url, &tier1_url, &tier1);
    }
    // Find the viewer (or browser) before deploying anything: no viewer,
    // no VM.
    let frontend = match (args.config_debug, args.qrcode) {
        (false, None) => Some(Frontend::choose(
            args.viewer.as_deref(),
            args.browser,
            args.novnc_dir.as_deref(),
        )?),
        _ => None,
    };
    let deployed = ::launch::deploy(url.sinfonia_uuid(), &tier1, deadline, &mut observer)?;
    if args.config_debug {
        for (file, text) in deployed.debug_config() {
            ::launch::write_private(file, &text).with_context(|| format!("cannot write {file}"))?;
            println!("Wrote {file}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(style) = args.qrcode {
        let style = match style {
            QrCodeArg::Compact => QrStyle::Compact,
            QrCodeArg::Alt => QrStyle::Alt,
        };
        println!("{}", deployed.qrcode(style)?);
        return Ok(ExitCode::SUCCESS);
    }
    match frontend.context("no viewer")? {
        Frontend::Viewer(viewer) => {
            // From here on Ctrl-C and SIGTERM stop the viewer and close the
            // tunnel (before, there is nothing of ours to tidy up: the
            // default action ends the process at once).
            let stop = interrupt::flag();
            let status = ::launch::view(&deployed, &viewer, deadline, &stop, &mut observer)?;
            Ok(exit_code(status))
        }
        Frontend::Browser(browser) => {
            // Ctrl-C and SIGTERM end the page's wait; the tunnel is then
            // torn down before we exit.
            let stop = interrupt::flag();
            let ended =
                ::launch::view_in_browser(&deployed, &browser, deadline, &mut observer, stop)?;
            Ok(match ended {
                PageEnded::Closed => ExitCode::SUCCESS,
                PageEnded::Stopped => {
                    eprintln!("olive2022: interrupted");
                    ExitCode::from(crate::INTERRUPTED)
                }
            })
        }
    }
}

/// Where to deploy: `--tier1-url`, or with `--zeroconf` the cloudlet found
/// on the local network (Sinfonia's tier 3 would send the request there
/// instead of to tier 1, too).
fn tier1_url(args: &LaunchArgs, observer: &mut TerminalObserver) -> Result<String> {
    if !args.zeroconf {
        return Ok(args.tier1_url.clone());
    }
    observer.status("Looking for a cloudlet on the local network (mDNS)…");
    let found = zeroconf::discover(zeroconf::BROWSE_TIME)
        .context("cannot find a cloudlet with --zeroconf")?;
    observer.status(&format!("Found cloudlet {} at {}", found.name, found.url));
    Ok(found.url)
}

fn dry_run(args: &LaunchArgs, url: &VmnetxUrl, tier1_url: &str, tier1: &Tier1) -> Result<ExitCode> {
    let uuid = url.sinfonia_uuid();
    if args.json {
        let plan = ::launch::LaunchPlan::new(url.canonical(), uuid, tier1);
        crate::json::print_line(&plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("UUID: {uuid}");
    println!("Canonical URL: {}", url.canonical());
    println!("Tier 1: {tier1_url}");
    let shown = if args.browser || args.viewer.as_deref() == Some(BROWSER_CHOICE) {
        "serve noVNC to the web browser on 127.0.0.1 and open it"
    } else {
        "start a VNC viewer"
    };
    println!(
        "Would deploy {uuid} through {}, open a WireGuard tunnel to it in this process, \
         forward 127.0.0.1:59xx to {VNC_SERVICE}:{VNC_PORT} and {shown}.",
        tier1.origin()
    );
    Ok(ExitCode::SUCCESS)
}

/// The viewer's exit status as ours.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// `olive2022 stage2`: inside a namespace made by the Python
/// sinfonia-tier3, wait for the VM's VNC service with the system resolver,
/// then start a viewer on it.
pub fn stage2(cli: &Cli, args: &Stage2Args) -> Result<ExitCode> {
    crate::json::plan_only(args.json, cli.dry_run)?;
    let viewer = viewer::find(args.viewer.as_deref())?;
    if cli.dry_run {
        let plan = ::launch::stage2_plan(&viewer);
        if args.json {
            crate::json::print_line(&plan)?;
        } else {
            println!("{plan}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let timeout = Duration::from_secs(args.timeout);
    let status = ::launch::stage2(&viewer, timeout, &mut observer(cli))?;
    Ok(exit_code(status))
}
