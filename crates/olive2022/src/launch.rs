//! `uuid`, `launch` and `stage2`: from a click to the VM's screen.
//!
//! `launch` deploys the VM through Sinfonia, brings the WireGuard tunnel up
//! inside this process (no namespace, no root, no helper binary), waits
//! until the VM's VNC server answers through the tunnel, and runs a viewer
//! on a local port forwarded to it. The tunnel lives until the viewer
//! exits; launch returns the viewer's exit status.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sinfonia::deploy::{Deployment, Tier1};
use sinfonia::keys::{CachedKey, KeyCache, KeyOrigin};
use sinfonia::wireguard::{self, QrStyle};
use tunnel::{Tunnel, TunnelConfig, TunnelHandle};
use vmnetx::url::VmnetxUrl;

use crate::cli::{Cli, LaunchArgs, QrCodeArg, Stage2Args, UuidArgs};
use crate::progress::Verbosity;
use crate::viewer::{self, Viewer};

/// The VNC service of a deployment, as the `vmi` chart names it.
const VNC_SERVICE: &str = "vmi-vnc";
const VNC_PORT: u16 = 5900;
/// How long the cloudlet may take to answer the WireGuard handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// First and longest pause between two probes of the VM's display.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// `olive2022 uuid URL`: prints the Sinfonia UUID.
pub fn uuid(args: &UuidArgs) -> Result<ExitCode> {
    let url = parse(&args.url)?;
    println!("{}", url.sinfonia_uuid());
    Ok(ExitCode::SUCCESS)
}

fn parse(url: &str) -> Result<VmnetxUrl> {
    VmnetxUrl::parse(url).context("not a usable VMNetX URL")
}

/// `olive2022 launch URL`.
pub fn launch(cli: &Cli, args: &LaunchArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let url = parse(&args.url)?;
    let uuid = url.sinfonia_uuid();
    let tier1 = Tier1::new(&args.tier1_url).context("invalid tier-1 URL")?;
    if cli.dry_run {
        return dry_run(args, &url, &tier1);
    }
    // Find the viewer before deploying anything: no viewer, no VM.
    let viewer = match (args.config_debug, args.qrcode) {
        (false, None) => Some(viewer::find(args.viewer.as_deref())?),
        _ => None,
    };
    let cache = KeyCache::default_location().context("cannot use the key cache")?;
    let key = cache
        .load_or_create(uuid)
        .context("cannot use the key cache")?;
    note_key_origin(&key, verbosity);
    let started = Instant::now();
    verbosity.status(format!("Deploying {uuid} through {}…", tier1.origin()));
    let deployment = tier1.deploy(uuid, &key.keys).context("deployment failed")?;
    let name = deployment
        .name
        .clone()
        .unwrap_or_else(|| "the deployment".into());
    verbosity.status(format!(
        "Deployed {name} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    if args.config_debug {
        return write_debug_config(&key, &deployment);
    }
    if let Some(style) = args.qrcode {
        return print_qrcode(&key, &deployment, style);
    }
    let config = tunnel_config(&key, &deployment)?;
    let viewer = viewer.context("no viewer")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tunnel's runtime")?;
    runtime.block_on(connect_and_view(
        config,
        &viewer,
        Duration::from_secs(args.timeout),
        verbosity,
        started,
    ))
}

fn dry_run(args: &LaunchArgs, url: &VmnetxUrl, tier1: &Tier1) -> Result<ExitCode> {
    let uuid = url.sinfonia_uuid();
    println!("UUID: {uuid}");
    println!("Canonical URL: {}", url.canonical());
    println!("Tier 1: {}", args.tier1_url);
    println!(
        "Would deploy {uuid} through {}, open a WireGuard tunnel to it in this process, \
         forward 127.0.0.1:59xx to {VNC_SERVICE}:{VNC_PORT} and start a VNC viewer.",
        tier1.origin()
    );
    Ok(ExitCode::SUCCESS)
}

fn note_key_origin(key: &CachedKey, verbosity: Verbosity) {
    match &key.origin {
        KeyOrigin::Cached => verbosity.detail("Using the cached key for this VM"),
        KeyOrigin::Created => verbosity.detail("Created a key for this VM"),
        KeyOrigin::Replaced { reason } => {
            verbosity.status(format!(
                "The cached key was unusable ({reason}); using a new one"
            ));
        }
    }
}

/// `--config-debug`: what the original writes, to the current directory.
fn write_debug_config(key: &CachedKey, deployment: &Deployment) -> Result<ExitCode> {
    for (file, text) in [
        ("wg.conf", wireguard::wg_conf(&key.keys, &deployment.tunnel)),
        ("resolv.conf", wireguard::resolv_conf(&deployment.tunnel)),
    ] {
        write_private(file, &text).with_context(|| format!("cannot write {file}"))?;
        println!("Wrote {file}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file only the user can read: wg.conf holds the private key.
fn write_private(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn print_qrcode(key: &CachedKey, deployment: &Deployment, style: QrCodeArg) -> Result<ExitCode> {
    let style = match style {
        QrCodeArg::Compact => QrStyle::Compact,
        QrCodeArg::Alt => QrStyle::Alt,
    };
    let config = wireguard::wg_quick_conf(&key.keys, &deployment.tunnel, &[]);
    println!("{}", wireguard::qrcode(&config, style)?);
    Ok(ExitCode::SUCCESS)
}

/// The tunnel settings from the deployment: our first IPv4 address, its
/// IPv4 name servers and its search domains.
fn tunnel_config(key: &CachedKey, deployment: &Deployment) -> Result<TunnelConfig> {
    let settings = &deployment.tunnel;
    let address = settings
        .addresses
        .iter()
        .find_map(|net| match net.addr {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .context("the deployment gave the tunnel no IPv4 address")?;
    let dns_servers: Vec<Ipv4Addr> = settings
        .dns_servers
        .iter()
        .filter_map(|ip| match ip {
            std::net::IpAddr::V4(ip) => Some(*ip),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    let endpoint = settings
        .endpoint
        .resolve()
        .context("cannot find the cloudlet's endpoint")?;
    Ok(TunnelConfig {
        private_key: key.keys.secret().to_bytes(),
        peer_public_key: settings.peer_public_key,
        endpoint,
        address,
        dns_servers,
        search_domains: settings.search_domains.clone(),
        keepalive: Some(tunnel::DEFAULT_KEEPALIVE),
        mtu: tunnel::DEFAULT_MTU,
    })
}

async fn connect_and_view(
    config: TunnelConfig,
    viewer: &Viewer,
    timeout: Duration,
    verbosity: Verbosity,
    started: Instant,
) -> Result<ExitCode> {
    let endpoint = config.endpoint;
    let tunnel = Tunnel::start(config).await?;
    let handle = tunnel.handle();
    handle
        .wait_handshake(HANDSHAKE_TIMEOUT.min(timeout))
        .await?;
    verbosity.detail(format!("Tunnel to {endpoint} up"));
    let target = wait_for_display(&handle, timeout, verbosity).await?;
    let listener = local_listener().await?;
    let port = listener.local_addr()?.port();
    verbosity.status(format!(
        "VM display ready after {:.1} s: vnc://127.0.0.1:{port}",
        started.elapsed().as_secs_f64()
    ));
    let forwarder = tokio::spawn(tunnel::forward(handle, listener, target));
    verbosity.detail(format!(
        "Starting {}",
        viewer.command_line("127.0.0.1", port)
    ));
    let mut child = viewer
        .command("127.0.0.1", port)
        .spawn()
        .with_context(|| format!("cannot start {}", viewer.program().display()))?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    forwarder.abort();
    tunnel.shutdown().await;
    Ok(exit_code(status))
}

/// The viewer's exit status as ours.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// 127.0.0.1 on a port of 5900–5999 when one is free (viewers that take
/// display numbers then work), else any port.
async fn local_listener() -> Result<tokio::net::TcpListener> {
    for port in 5900..=5999 {
        if let Ok(listener) = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return Ok(listener);
        }
    }
    tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("cannot listen on 127.0.0.1")
}

/// Resolves `vmi-vnc` and waits until its VNC server sends the `RFB`
/// banner through the tunnel, with a spinner; gives up after `timeout`.
async fn wait_for_display(
    handle: &TunnelHandle,
    timeout: Duration,
    verbosity: Verbosity,
) -> Result<SocketAddrV4> {
    let spinner = verbosity.spinner("Waiting for the VM's display");
    let deadline = Instant::now() + timeout;
    let ip = handle.resolve(VNC_SERVICE).await;
    let result = match ip {
        Err(error) => Err(anyhow::Error::new(error).context("the deployment has no VNC service")),
        Ok(ip) => {
            let target = SocketAddrV4::new(ip, VNC_PORT);
            let mut pause = FIRST_BACKOFF;
            loop {
                if probe(handle, target).await {
                    break Ok(target);
                }
                if Instant::now() + pause > deadline {
                    break Err(anyhow::anyhow!(
                        "the VM's display ({VNC_SERVICE}:{VNC_PORT}) did not answer within {} s",
                        timeout.as_secs()
                    ));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    };
    spinner.finish_and_clear();
    result
}

/// Whether a VNC server answers at `target`: its banner starts with `RFB`.
async fn probe(handle: &TunnelHandle, target: SocketAddrV4) -> bool {
    let attempt = async {
        let mut stream = handle.connect(target).await.ok()?;
        let mut banner = Vec::new();
        while banner.len() < 3 {
            banner.extend(stream.recv().await?);
        }
        Some(banner.starts_with(b"RFB"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(true))
    )
}

/// `olive2022 stage2`: inside a namespace made by the Python
/// sinfonia-tier3, wait for `vmi-vnc:5900` with the system resolver, then
/// start a viewer on it.
pub fn stage2(cli: &Cli, args: &Stage2Args) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let viewer = viewer::find(args.viewer.as_deref())?;
    if cli.dry_run {
        println!(
            "Would wait for {VNC_SERVICE}:{VNC_PORT}, then run {}",
            viewer.command_line(VNC_SERVICE, VNC_PORT)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let spinner = verbosity.spinner("Waiting for the VM's display");
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while !probe_system(VNC_SERVICE, VNC_PORT) {
        if Instant::now() >= deadline {
            spinner.finish_and_clear();
            bail!(
                "the VM's display ({VNC_SERVICE}:{VNC_PORT}) did not answer within {} s",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    spinner.finish_and_clear();
    let status = viewer::run(&viewer, VNC_SERVICE, VNC_PORT)?;
    Ok(exit_code(status))
}

/// The original's probe: TCP with a 1 s timeout, then the 3-byte banner.
fn probe_system(host: &str, port: u16) -> bool {
    use std::io::Read;
    let Ok(addresses) = (host, port).to_socket_addrs() else {
        return false;
    };
    addresses.into_iter().any(|address: SocketAddr| {
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut banner = [0u8; 3];
        stream.read_exact(&mut banner).is_ok() && &banner == b"RFB"
    })
}
