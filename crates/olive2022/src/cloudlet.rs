//! `olive2022 cloudlet`: this machine as a Sinfonia cloudlet.
//!
//! Tier 1 and tier 2 in one process: the Sinfonia API (the `cloudlet`
//! crate), VMs under QEMU from the recipes' containerDisks, and a user-space
//! WireGuard endpoint (the `tunnel` crate's server) that shows each client
//! its own deployment's VNC service and nothing else. Single machine by
//! design; beyond one, the same recipes, images and clients work with real
//! Sinfonia + Kubernetes + KubeVirt.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cloudlet::local::LocalBackend;
use cloudlet::{Cloudlet, CloudletConfig};
use sinfonia::keys::{KeyPair, decode_key, encode_key};
use sinfonia::tier2::{SERVER_KEEPALIVE_SECS, TUNNEL_ADDRESS};
use tunnel::server::{ServerConfig, TunnelServer};

use crate::cli::{Cli, CloudletArgs};
use crate::progress::Verbosity;

/// Runs `cloudlet` until Ctrl-C.
pub fn run(cli: &Cli, args: &CloudletArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let data_dir = args.data_dir.clone().map_or_else(default_data_dir, Ok)?;
    let public_endpoint = args
        .public_endpoint
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", args.wg_listen.port()));
    if cli.dry_run {
        println!(
            "Would serve the Sinfonia API on http://{} with recipes from {}",
            args.listen,
            args.recipes.display()
        );
        println!(
            "Would listen for WireGuard on {} (clients told {public_endpoint})",
            args.wg_listen
        );
        println!("Would keep keys, images and VMs in {}", data_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = load_or_create_key(&data_dir.join("wireguard.key"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the cloudlet's runtime")?;
    runtime.block_on(serve(args, &data_dir, key, public_endpoint, verbosity))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    args: &CloudletArgs,
    data_dir: &Path,
    key: [u8; 32],
    public_endpoint: String,
    verbosity: Verbosity,
) -> Result<()> {
    let server = TunnelServer::start(ServerConfig {
        private_key: key,
        listen: args.wg_listen,
        address: TUNNEL_ADDRESS,
        mtu: tunnel::DEFAULT_MTU,
        keepalive: Some(SERVER_KEEPALIVE_SECS),
    })
    .await
    .context("cannot start the WireGuard endpoint")?;
    let tunnel = server.handle();
    let backend = LocalBackend::new(data_dir, tunnel.clone(), args.accel.into())
        .with_context(|| format!("cannot use {}", data_dir.display()))?;
    let mut config =
        CloudletConfig::new(&args.recipes, public_endpoint.clone(), tunnel.public_key());
    config.listen = args.listen;
    config.max_vms = args.max_vms;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    let cloudlet = Cloudlet::bind(config, backend)
        .await
        .context("cannot start the cloudlet")?;
    let registry = cloudlet.registry();
    tunnel.on_activity(move |address| {
        registry.touch(address);
    });
    verbosity.status(format!(
        "Cloudlet ready: API http://{}, WireGuard {} ({public_endpoint}), recipes {}",
        cloudlet.local_addr(),
        tunnel.local_addr(),
        args.recipes.display()
    ));
    let result = cloudlet
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    server.shutdown().await;
    result.context("the cloudlet stopped")
}

fn default_data_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|dir| Path::new(dir).is_absolute()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set: give --data-dir")?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(base.join("olive2022").join("cloudlet"))
}

/// The cloudlet's WireGuard key, kept across restarts (clients' cached
/// deployments name it): a private key in base64, mode 0600.
fn load_or_create_key(path: &Path) -> Result<[u8; 32]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return decode_key(text.trim())
            .with_context(|| format!("{} holds no WireGuard key", path.display()));
    }
    let pair = KeyPair::generate();
    let private = pair.secret().to_bytes();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{}", encode_key(&private))?;
    Ok(private)
}
