//! `olive2022 cloudlet`: this machine as a Sinfonia cloudlet.
//!
//! Tier 1 and tier 2 in one process: the Sinfonia API, VMs under QEMU from
//! the recipes' containerDisks, and a user-space WireGuard endpoint that
//! shows each client its own deployment's VNC service and nothing else.
//! The `cloudlet` crate does all of it ([`cloudlet::LocalCloudlet`]); this
//! command turns flags, `OLIVE2022_CLOUDLET_*` variables and the `--config`
//! file into its settings (merged in that order of precedence, over the
//! defaults, by [`cloudlet::settings`]), prints them with `--print-config`,
//! reports to the `--tier1-url` tier 1s ([`cloudlet::reporter`]), and
//! serves (announced over mDNS with `--zeroconf`, by
//! [`cloudlet::zeroconf`]) until SIGTERM, SIGINT or SIGHUP: then it says
//! goodbye to the tier 1s, withdraws the announcement, stops taking
//! deploys, stops every VM and exits 0, or gives up after
//! [`STOP_GRACE`] (its VMs end with it: each QEMU has a parent-death
//! signal).
//! Single machine by design; beyond one, the same recipes, images and
//! clients work with real Sinfonia + Kubernetes + KubeVirt.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cloudlet::settings::CloudletSettings;
use cloudlet::{CloudletPlan, LocalCloudlet, LocalCloudletConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{Cli, CloudletArgs};

/// Runs `cloudlet` until SIGTERM, SIGINT or SIGHUP.
pub fn run(cli: &Cli, args: &CloudletArgs) -> Result<ExitCode> {
    let config = settings(args)?;
    if args.print_config {
        print!("{}", CloudletSettings::shown(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    crate::json::plan_only(args.json, cli.dry_run)?;
    if cli.dry_run {
        return dry_run(&CloudletPlan::new(&config), args.json);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the cloudlet's runtime")?;
    runtime.block_on(serve(config, args.announce))?;
    Ok(ExitCode::SUCCESS)
}

/// What `--dry-run` prints: the plan as sentences, or as one JSON object.
fn dry_run(plan: &CloudletPlan, json: bool) -> Result<ExitCode> {
    if json {
        crate::json::print_line(plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Would serve the Sinfonia API on http://{} with recipes from {}",
        plan.api,
        plan.recipes.display()
    );
    println!(
        "Would listen for WireGuard on {} (clients told {})",
        plan.wireguard, plan.public_endpoint
    );
    println!(
        "Would keep keys and VMs in {}, images in {}",
        plan.data_dir.display(),
        plan.cache_dir.display()
    );
    for tier1 in &plan.report_to {
        println!("Would report to the Sinfonia tier 1 at {tier1} every 15 s");
    }
    if let Some(name) = &plan.zeroconf {
        println!("Would announce {name} over mDNS on the local network");
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: LocalCloudletConfig, announce: bool) -> Result<()> {
    let recipes = config.recipes_dir.clone();
    let cloudlet = LocalCloudlet::start(config)
        .await
        .context("cannot start the cloudlet")?;
    tracing::info!(
        api = %format!("http://{}", cloudlet.api_addr()),
        wireguard = %cloudlet.wireguard_addr(),
        public_endpoint = %cloudlet.public_endpoint(),
        recipes = %recipes.display(),
        uuid = %cloudlet.uuid(),
        endpoint = cloudlet.deploy_endpoint(),
        "cloudlet ready"
    );
    if announce {
        let line = serde_json::json!({
            "api": cloudlet.api_addr().to_string(),
            "wireguard": cloudlet.wireguard_addr().to_string(),
        });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .context("cannot announce the cloudlet's addresses")?;
    }
    let (stopping, stop_requested) = tokio::sync::watch::channel(false);
    let run = cloudlet.run(async move {
        let signal = stop_signal().await;
        tracing::info!(signal, "stopping: no new deploys, every VM stopped");
        let _ = stopping.send(true);
    });
    tokio::select! {
        served = run => served.context("the cloudlet stopped"),
        () = stop_overdue(stop_requested) => {
            // The process ends now; each QEMU has a parent-death signal.
            tracing::error!(grace_seconds = STOP_GRACE.as_secs(), "stopping took too long");
            anyhow::bail!(
                "the cloudlet did not stop within {} s; its VMs end with it",
                STOP_GRACE.as_secs()
            )
        }
    }
}

/// How long a graceful stop may take once asked for: VMs get QMP `quit`
/// then SIGKILL within a few seconds each, all at once; a deploy still
/// pulling an image may hold its slot longer. The unit file's
/// `TimeoutStopSec` is above this.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// The first of SIGTERM (`systemctl stop`, `docker stop`), SIGINT (Ctrl-C)
/// and SIGHUP (the terminal gone); its name.
pub(crate) async fn stop_signal() -> &'static str {
    tokio::select! {
        () = delivered(SignalKind::terminate(), "SIGTERM") => "SIGTERM",
        () = delivered(SignalKind::interrupt(), "SIGINT") => "SIGINT",
        () = delivered(SignalKind::hangup(), "SIGHUP") => "SIGHUP",
    }
}

/// Resolves when `kind` arrives (never, if it cannot be handled).
async fn delivered(kind: SignalKind, name: &'static str) {
    match signal(kind) {
        Ok(mut stream) => {
            stream.recv().await;
        }
        Err(error) => {
            tracing::warn!(signal = name, %error, "cannot handle a signal");
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves [`STOP_GRACE`] after a stop was asked for.
async fn stop_overdue(mut stop_requested: tokio::sync::watch::Receiver<bool>) {
    if stop_requested.wait_for(|asked| *asked).await.is_err() {
        return std::future::pending().await;
    }
    tokio::time::sleep(STOP_GRACE).await;
}

/// The settings: flags and their variables (already merged by clap), over
/// the `--config` file, over the defaults.
fn settings(args: &CloudletArgs) -> Result<LocalCloudletConfig> {
    let given = CloudletSettings {
        listen: args.listen,
        recipes: args.recipes.clone(),
        wg_listen: args.wg_listen,
        public_endpoint: args.public_endpoint.clone(),
        data_dir: args.data_dir.clone(),
        cache_dir: args.cache_dir.clone(),
        max_vms: args.max_vms,
        deploy_rate: args.deploy_rate,
        cache_max_bytes: args.cache_max_bytes,
        idle_timeout: args.idle_timeout,
        accel: args.accel.map(Into::into),
        lazy_pull: args.lazy_pull,
        lazy_threshold: args.lazy_threshold,
        registry_ca: args.registry_ca.clone(),
        tier1_url: args.tier1_url.clone(),
        public_url: args.public_url.clone(),
        cloudlet_token: args.cloudlet_token.clone(),
        location: args.location.clone(),
        local_network: args.local_network.clone(),
        accept_clients: args.accept_clients.clone(),
        reject_clients: args.reject_clients.clone(),
        trusted_proxy: args.trusted_proxy.clone(),
        forward_timeout: args.forward_timeout,
        geoip_db: args.geoip_db.clone(),
        // Unset unless given: the file may turn it on.
        zeroconf: args.zeroconf.then_some(true),
    };
    let file = match &args.config {
        Some(path) => CloudletSettings::from_file(path)?,
        None => CloudletSettings::default(),
    };
    Ok(given.or(file).resolve()?)
}
