//! `olive2022 tier1`: a Sinfonia tier 1 alone. Cloudlets (`olive2022
//! cloudlet`, or real Sinfonia tier 2s) report to it; it places each
//! deploy on the best of them and forwards it
//! ([`cloudlet::tier1`]). Serves until SIGTERM, SIGINT or
//! SIGHUP.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cloudlet::tier1::settings::Tier1Settings;
use cloudlet::tier1::{Tier1, Tier1Config};

use crate::cli::{Cli, Tier1Args};
use crate::cloudlet::stop_signal;

/// Runs `tier1` until a stop signal.
pub fn run(cli: &Cli, args: &Tier1Args) -> Result<ExitCode> {
    let config = settings(args)?;
    if args.print_config {
        print!("{}", Tier1Settings::shown(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    if cli.dry_run {
        println!(
            "Would serve the Sinfonia tier-1 API on http://{} (reports {})",
            config.listen,
            if config.federation.cloudlet_token.is_some() {
                "need the cloudlet token"
            } else {
                "open to any cloudlet"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tier 1's runtime")?;
    runtime.block_on(serve(config, args.announce))?;
    Ok(ExitCode::SUCCESS)
}

/// The settings: flags (and their variables, which clap reads) over the
/// `--config` file, over the defaults.
fn settings(args: &Tier1Args) -> Result<Tier1Config> {
    let given = Tier1Settings {
        listen: args.listen,
        recipes: args.recipes.clone(),
        cloudlet_token: args.cloudlet_token.clone(),
        forward_timeout: args.forward_timeout,
        geoip_db: args.geoip_db.clone(),
        deploy_rate: args.deploy_rate,
        trusted_proxy: args.trusted_proxy.clone(),
    };
    let file = match &args.config {
        Some(path) => Tier1Settings::from_file(path)?,
        None => Tier1Settings::default(),
    };
    Ok(given.or(file).resolve()?)
}

async fn serve(config: Tier1Config, announce: bool) -> Result<()> {
    let authenticated = config.federation.cloudlet_token.is_some();
    let tier1 = Tier1::bind(config)
        .await
        .context("cannot start the tier 1")?;
    let api = tier1
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(api = %format!("http://{api}"), authenticated, "tier 1 ready");
    if announce {
        let line = serde_json::json!({ "api": api.to_string() });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .context("cannot announce the tier 1's address")?;
    }
    tier1
        .run(async {
            let signal = stop_signal().await;
            tracing::info!(signal, "stopping");
        })
        .await
        .context("the tier 1 stopped")
}
