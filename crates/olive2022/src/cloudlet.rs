//! `olive2022 cloudlet`: this machine as a Sinfonia cloudlet.
//!
//! Tier 1 and tier 2 in one process: the Sinfonia API, VMs under QEMU from
//! the recipes' containerDisks, and a user-space WireGuard endpoint that
//! shows each client its own deployment's VNC service and nothing else.
//! The `cloudlet` crate does all of it ([`cloudlet::LocalCloudlet`]); this
//! command turns flags, `OLIVE2022_CLOUDLET_*` variables and the `--config`
//! file into its settings (merged in that order of precedence, over the
//! defaults, by [`cloudlet::settings`]), prints them with `--print-config`,
//! reports, and waits for Ctrl-C.
//! Single machine by design; beyond one, the same recipes, images and
//! clients work with real Sinfonia + Kubernetes + KubeVirt.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cloudlet::settings::CloudletSettings;
use cloudlet::{LocalCloudlet, LocalCloudletConfig};

use crate::cli::{Cli, CloudletArgs};
use crate::progress::Verbosity;

/// Runs `cloudlet` until Ctrl-C.
pub fn run(cli: &Cli, args: &CloudletArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let config = settings(args)?;
    if args.print_config {
        print!("{}", CloudletSettings::shown(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    if cli.dry_run {
        println!(
            "Would serve the Sinfonia API on http://{} with recipes from {}",
            config.listen,
            config.recipes_dir.display()
        );
        println!(
            "Would listen for WireGuard on {} (clients told {})",
            config.wg_listen,
            config.public_endpoint()
        );
        println!(
            "Would keep keys and VMs in {}, images in {}",
            config.data_dir.display(),
            config.cache_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the cloudlet's runtime")?;
    runtime.block_on(serve(config, args.announce, verbosity))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: LocalCloudletConfig, announce: bool, verbosity: Verbosity) -> Result<()> {
    let recipes = config.recipes_dir.clone();
    let cloudlet = LocalCloudlet::start(config)
        .await
        .context("cannot start the cloudlet")?;
    verbosity.status(format!(
        "Cloudlet ready: API http://{}, WireGuard {} ({}), recipes {}",
        cloudlet.api_addr(),
        cloudlet.wireguard_addr(),
        cloudlet.public_endpoint(),
        recipes.display()
    ));
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
    cloudlet
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the cloudlet stopped")
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
        idle_timeout: args.idle_timeout,
        accel: args.accel.map(Into::into),
    };
    let file = match &args.config {
        Some(path) => CloudletSettings::from_file(path)?,
        None => CloudletSettings::default(),
    };
    Ok(given.or(file).resolve()?)
}
