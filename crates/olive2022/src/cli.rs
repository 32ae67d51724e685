//! The command line: the original tool's subcommands (`install`,
//! `uninstall`, `launch`, `stage2`, `convert`), flags and environment
//! variables, plus our own `uuid`, `extract`, `cloudlet`, `demo`,
//! `completions`, `man` and the hidden `rfb-snapshot`. Only parsing lives here; each command's module
//! turns its arguments into a library call.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use containerdisk::lazy::LazyMode;

/// The tier-1 Sinfonia service of the original.
pub const DEFAULT_TIER1_URL: &str = "https://cmu.findcloudlet.org";
/// The registry of the original.
pub const DEFAULT_REGISTRY: &str = "registry.cmusatyalab.org/cloudlet-discovery/olive2022";

/// Launch and convert VMs of the Olive Archive on nearby cloudlets.
#[derive(Debug, Parser)]
#[command(name = "olive2022", version, about, max_term_width = 100)]
pub struct Cli {
    /// Print what would be done instead of doing it.
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,
    /// Print only errors and final results.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what happens (`-vv`: more still).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log events are written to standard error: for people, or one
    /// JSON object per line (for journald, Loki and the like).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Human,
        env = "OLIVE2022_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The format of log events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event, for a terminal (colours only on a terminal).
    Human,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// Whether `-v` was given at least once.
    pub fn is_verbose(&self) -> bool {
        self.verbose > 0
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the desktop handler for vmnetx:// URLs.
    Install(InstallArgs),
    /// Remove the desktop handler for vmnetx:// URLs.
    Uninstall(UninstallArgs),
    /// Launch a Virtual Machine (VM) image with Sinfonia.
    Launch(LaunchArgs),
    /// Wait for the VM's display and start a VNC viewer (inside a tunnel).
    Stage2(Stage2Args),
    /// Convert a VMNetX package to a containerDisk image and a recipe.
    Convert(ConvertArgs),
    /// Print the Sinfonia UUID of a VMNetX URL.
    Uuid(UuidArgs),
    /// Extract the disk of a VMNetX package as a compressed qcow2 image.
    Extract(ExtractArgs),
    /// Run an embedded single-machine Sinfonia cloudlet (tier 1 + tier 2).
    Cloudlet(Box<CloudletArgs>),
    /// Run a Sinfonia tier 1 alone: cloudlets report to it, deploys are
    /// placed on the best of them and forwarded.
    Tier1(Tier1Args),
    /// Build a small VM, convert it, serve it with the embedded cloudlet and
    /// show its screen (a viewer, or a PNG screenshot without a display).
    Demo(DemoArgs),
    /// Print a completion script for a shell (e.g. `source <(olive2022
    /// completions bash)`).
    Completions(CompletionsArgs),
    /// Write the manual pages (olive2022.1 and one per subcommand) to a
    /// directory, or print the main page.
    Man(ManArgs),
    /// Save a screenshot of a VNC server as a PNG (the demo's headless
    /// viewer).
    #[command(hide = true)]
    RfbSnapshot(RfbSnapshotArgs),
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page into DIR (created if missing) instead of printing
    /// the main page to standard output.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install in the user's data directory (the default).
    #[arg(long, overrides_with = "system")]
    pub user: bool,
    /// Install system-wide.
    #[arg(long, visible_alias = "no-user")]
    pub system: bool,
    /// Make the handler run `olive2022 convert` instead of `launch`.
    #[arg(long)]
    pub convert: bool,
    /// With --dry-run: print the plan (files, default handlers) as one
    /// JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// With --dry-run: print the plan (files, default handlers) as one
    /// JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Sinfonia tier-1 instance to use.
    #[arg(long, env = "OLIVE2022_TIER1_URL", default_value = DEFAULT_TIER1_URL)]
    pub tier1_url: String,
    /// Find a cloudlet on the local network over mDNS (Sinfonia's
    /// `_sinfonia._tcp.local.`, a few seconds) and deploy through it
    /// instead of --tier1-url.
    #[arg(long)]
    pub zeroconf: bool,
    /// VNC viewer to run with the single argument vnc://127.0.0.1:PORT
    /// (`browser`: the same as --browser).
    #[arg(long, env = "OLIVE2022_VIEWER", value_name = "PROGRAM")]
    pub viewer: Option<String>,
    /// Show the VM in the web browser ($BROWSER, else xdg-open) with
    /// noVNC served by this process (also the fallback when no VNC viewer
    /// is installed); wins over --viewer.
    #[arg(long)]
    pub browser: bool,
    /// Where noVNC's files are [default: /usr/share/novnc, Debian's
    /// novnc package].
    #[arg(long, value_name = "DIR")]
    pub novnc_dir: Option<PathBuf>,
    /// Seconds the whole launch may take, from the deploy request to the
    /// VM's display answering (in the browser: to the page connecting).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
    /// Write wg.conf and resolv.conf to the current directory and stop.
    #[arg(long)]
    pub config_debug: bool,
    /// With --dry-run: print the plan as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print the WireGuard configuration as a QR code and stop.
    #[arg(long, value_enum)]
    pub qrcode: Option<QrCodeArg>,
    /// The vmnetx+https:// URL of the VM.
    #[arg(value_name = "VMNETX_URL")]
    pub url: String,
}

/// `stage2`.
#[derive(Debug, Args)]
pub struct Stage2Args {
    /// VNC viewer to run with the single argument vnc://HOST:PORT.
    #[arg(long, env = "OLIVE2022_VIEWER", value_name = "PROGRAM")]
    pub viewer: Option<String>,
    /// Seconds to wait for the VM's display.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
    /// With --dry-run: print the plan as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// QR code styles of `--qrcode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QrCodeArg {
    /// Half blocks, two rows per line.
    Compact,
    /// Full blocks, one module per character.
    Alt,
}

/// `convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Directory to keep intermediate files (kept afterwards).
    #[arg(long)]
    pub tmp_dir: Option<PathBuf>,
    /// Registry (and path) where to store the containerDisk.
    #[arg(long, env = "OLIVE2022_REGISTRY", default_value = DEFAULT_REGISTRY)]
    pub registry: String,
    /// Pull credentials (USER:TOKEN) to add to the recipe; makes it
    /// restricted.
    #[arg(long, env = "OLIVE2022_CREDENTIALS", hide_env_values = true)]
    pub deploy_token: Option<String>,
    /// Directory of the Sinfonia recipes.
    #[arg(long, default_value = "RECIPES")]
    pub recipes: PathBuf,
    /// Write an OCI image layout (`oci:DIR`) instead of pushing.
    #[arg(long, value_name = "oci:DIR")]
    pub output: Option<String>,
    /// Push a public image without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Allow plain HTTP to a registry that is not on this machine.
    #[arg(long)]
    pub insecure_registry: bool,
    /// PEM file of CA certificates to trust for the registry, besides the
    /// system's (SSL_CERT_FILE replaces those); also means HTTPS to a
    /// registry on this machine.
    #[arg(long, env = "OLIVE2022_REGISTRY_CA", value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// How to read and compress the disk.
    #[command(flatten)]
    pub disk: DiskArgs,
    /// Helm chart of the recipe.
    #[arg(long, default_value = sinfonia::vmi::ORIGINAL_CHART)]
    pub chart: String,
    /// Version of the Helm chart.
    #[arg(long, default_value = sinfonia::vmi::ORIGINAL_CHART_VERSION)]
    pub chart_version: String,
    /// Print one JSON object per job on standard output, failures included
    /// (with --dry-run: one plan per job); nothing else goes there.
    #[arg(long)]
    pub json: bool,
    /// Convert every `VMNETX_URL [PACKAGE_FILE]` line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "package"])]
    pub batch: Option<PathBuf>,
    /// The vmnetx+https:// URL of the VM.
    #[arg(value_name = "VMNETX_URL", required_unless_present = "batch")]
    pub url: Option<String>,
    /// A local copy of the package (skips the download).
    #[arg(value_name = "PACKAGE_FILE")]
    pub package: Option<PathBuf>,
}

/// `cloudlet`. Every setting is optional here: a flag wins over its
/// `OLIVE2022_CLOUDLET_*` variable (clap reads both), which wins over the
/// `--config` file, which wins over the defaults (`cloudlet::settings`).
#[derive(Debug, Args)]
pub struct CloudletArgs {
    /// Read the settings from this TOML file (keys named as the flags;
    /// flags and OLIVE2022_CLOUDLET_* variables override it).
    #[arg(long, env = "OLIVE2022_CLOUDLET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resolved settings as a complete TOML file and exit.
    #[arg(long)]
    pub print_config: bool,
    /// With --dry-run: print the plan (addresses and directories) as one
    /// JSON object.
    #[arg(long, conflicts_with = "print_config")]
    pub json: bool,
    /// Address of the Sinfonia API (tier 1 and tier 2) [default:
    /// 127.0.0.1:8080].
    #[arg(long, env = "OLIVE2022_CLOUDLET_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory of the recipes (`<uuid>.yaml`) [default: RECIPES].
    #[arg(long, env = "OLIVE2022_CLOUDLET_RECIPES", value_name = "DIR")]
    pub recipes: Option<PathBuf>,
    /// UDP address of the WireGuard endpoint [default: 0.0.0.0:51820].
    #[arg(long, env = "OLIVE2022_CLOUDLET_WG_LISTEN", value_name = "IP:PORT")]
    pub wg_listen: Option<std::net::SocketAddr>,
    /// The endpoint clients are told to use (default: 127.0.0.1 and the
    /// port of --wg-listen).
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_PUBLIC_ENDPOINT",
        value_name = "HOST:PORT"
    )]
    pub public_endpoint: Option<String>,
    /// Where the cloudlet keeps its key and VMs (default: $STATE_DIRECTORY,
    /// else $XDG_DATA_HOME/olive2022/cloudlet).
    #[arg(long, env = "OLIVE2022_CLOUDLET_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the cloudlet keeps the pulled disk images (default:
    /// $CACHE_DIRECTORY, else $XDG_CACHE_HOME/olive2022/cloudlet).
    #[arg(long, env = "OLIVE2022_CLOUDLET_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most VMs running at once [default: 4].
    #[arg(long, env = "OLIVE2022_CLOUDLET_MAX_VMS", value_name = "COUNT")]
    pub max_vms: Option<usize>,
    /// Deploy requests a minute per client address, in bursts of as many;
    /// more get 429 with Retry-After; 0 for no limit [default: 60].
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_DEPLOY_RATE",
        value_name = "PER_MINUTE"
    )]
    pub deploy_rate: Option<u32>,
    /// Most bytes the image cache may hold (`20G`, `500M`…): after a pull,
    /// images no VM uses are evicted, least recently used first; 0 for no
    /// limit [default: 0].
    #[arg(long, env = "OLIVE2022_CLOUDLET_CACHE_MAX_BYTES", value_name = "SIZE", value_parser = parse_size)]
    pub cache_max_bytes: Option<u64>,
    /// Seconds without traffic after which a VM is stopped [default: 600].
    #[arg(long, env = "OLIVE2022_CLOUDLET_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Start a VM while its disk is still downloading, reading what it
    /// needs first: for registry images of at least --lazy-threshold
    /// (auto), for every registry image (always), or never [default: auto].
    #[arg(long, env = "OLIVE2022_CLOUDLET_LAZY_PULL", value_name = "WHEN", value_parser = lazy_modes())]
    pub lazy_pull: Option<LazyMode>,
    /// The smallest image `--lazy-pull auto` starts before it is downloaded
    /// (`256M`, `1G`…) [default: 256M].
    #[arg(long, env = "OLIVE2022_CLOUDLET_LAZY_THRESHOLD", value_name = "SIZE", value_parser = parse_size)]
    pub lazy_threshold: Option<u64>,
    /// How QEMU runs the VMs: KVM when /dev/kvm works (auto), or always
    /// KVM, or always emulation (TCG) [default: auto].
    #[arg(long, env = "OLIVE2022_CLOUDLET_ACCEL", value_enum)]
    pub accel: Option<AccelArg>,
    /// PEM file of CA certificates to trust for the registries images are
    /// pulled from, besides the system's (SSL_CERT_FILE replaces those);
    /// also means HTTPS to a registry on this machine.
    #[arg(long, env = "OLIVE2022_CLOUDLET_REGISTRY_CA", value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// Report to this Sinfonia tier 1 every 15 s, as a tier 2 does
    /// (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "tier1-url",
        env = "OLIVE2022_CLOUDLET_TIER1_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub tier1_url: Option<Vec<String>>,
    /// The base URL tier 1 and clients reach this cloudlet's API at
    /// (default: http:// and the address of --listen).
    #[arg(long, env = "OLIVE2022_CLOUDLET_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// The bearer token of cloudlet reports: sent (`Authorization: Bearer
    /// TOKEN`) with every report to a tier 1, and required from the
    /// cloudlets that report here (reports are open when unset). Never
    /// logged nor printed.
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_CLOUDLET_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub cloudlet_token: Option<String>,
    /// Where this cloudlet is, reported to tier 1 (repeatable; the
    /// variable takes a `;`-separated list).
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_LOCATION",
        value_name = "LAT,LON",
        value_delimiter = ';',
        value_parser = parse_location
    )]
    pub location: Option<Vec<[f64; 2]>>,
    /// A client network considered close, reported to tier 1 (repeatable).
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_LOCAL_NETWORK",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub local_network: Option<Vec<String>>,
    /// A client network this cloudlet accepts, reported to tier 1
    /// (repeatable) [default: 0.0.0.0/0].
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_ACCEPT_CLIENTS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub accept_clients: Option<Vec<String>>,
    /// A client network this cloudlet refuses, reported to tier 1
    /// (repeatable).
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_REJECT_CLIENTS",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub reject_clients: Option<Vec<String>>,
    /// Seconds a deploy forwarded to a cloudlet that reports here may take
    /// before the next one is tried [default: 10].
    #[arg(long, env = "OLIVE2022_CLOUDLET_FORWARD_TIMEOUT", value_name = "SECS")]
    pub forward_timeout: Option<u64>,
    /// A MaxMind city database (GeoLite2 City `.mmdb`): the client of a
    /// deploy without `X-Location` is located by its address, as Sinfonia's
    /// tier 1 does (a given `X-Location` wins; an unknown address has no
    /// location).
    #[arg(long, env = "OLIVE2022_CLOUDLET_GEOIP_DB", value_name = "FILE")]
    pub geoip_db: Option<PathBuf>,
    /// A proxy whose `X-ClientIP` header names the client for the
    /// per-address deploy limit: a tier 1 that forwards deploys here, a
    /// reverse proxy (CIDR, repeatable). Others' headers are not believed.
    #[arg(
        long,
        env = "OLIVE2022_CLOUDLET_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Option<Vec<String>>,
    /// Once ready, print the addresses bound as one JSON line on standard
    /// output, `{"api": "IP:PORT", "wireguard": "IP:PORT"}`: lets a parent
    /// process ask for port 0 and learn the port (no bind-and-release race).
    #[arg(long, hide = true)]
    pub announce: bool,
    /// Announce the cloudlet on the local network(s) over mDNS, as
    /// Sinfonia's tier 2 does (`cloudlet._sinfonia._tcp.local.`, the API's
    /// port): `launch --zeroconf` finds it without a tier 1.
    #[arg(long, env = "OLIVE2022_CLOUDLET_ZEROCONF")]
    pub zeroconf: bool,
}

/// `tier1`. As for `cloudlet`, a flag wins over its `OLIVE2022_TIER1_*`
/// variable, which wins over the `--config` file, which wins over the
/// defaults (`cloudlet::tier1::settings`).
#[derive(Debug, Args)]
pub struct Tier1Args {
    /// Read the settings from this TOML file (keys named as the flags;
    /// flags and OLIVE2022_TIER1_* variables override it).
    #[arg(long, env = "OLIVE2022_TIER1_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resolved settings as a complete TOML file and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Address of the Sinfonia tier-1 API [default: 127.0.0.1:8080].
    #[arg(long, env = "OLIVE2022_TIER1_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory of the recipes (`<uuid>.yaml`): an unknown backend is
    /// then refused with 404 before any forward (default: none, every
    /// backend is passed on).
    #[arg(long, env = "OLIVE2022_TIER1_RECIPES", value_name = "DIR")]
    pub recipes: Option<PathBuf>,
    /// The token cloudlets must send with their reports (`Authorization:
    /// Bearer TOKEN`); reports are open when unset. Never printed.
    #[arg(
        long,
        env = "OLIVE2022_TIER1_CLOUDLET_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub cloudlet_token: Option<String>,
    /// Seconds a forwarded deploy may take before the next cloudlet is
    /// tried [default: 10].
    #[arg(long, env = "OLIVE2022_TIER1_FORWARD_TIMEOUT", value_name = "SECS")]
    pub forward_timeout: Option<u64>,
    /// A MaxMind city database (GeoLite2 City `.mmdb`): the client of a
    /// deploy without `X-Location` is located by its address, as Sinfonia's
    /// tier 1 does (a given `X-Location` wins; an unknown address has no
    /// location).
    #[arg(long, env = "OLIVE2022_TIER1_GEOIP_DB", value_name = "FILE")]
    pub geoip_db: Option<PathBuf>,
    /// Deploy requests a minute per client address; 0 for no limit
    /// [default: 60].
    #[arg(long, env = "OLIVE2022_TIER1_DEPLOY_RATE", value_name = "PER_MINUTE")]
    pub deploy_rate: Option<u32>,
    /// A reverse proxy whose `X-ClientIP` header names the client for the
    /// per-address deploy limit (CIDR, repeatable). Others' headers are
    /// not believed.
    #[arg(
        long,
        env = "OLIVE2022_TIER1_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Option<Vec<String>>,
    /// Once ready, print `{"api": "IP:PORT"}` on standard output.
    #[arg(long, hide = true)]
    pub announce: bool,
}

/// QEMU accelerators of `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when /dev/kvm can be opened, else TCG.
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// Emulation: slower, but works everywhere.
    Tcg,
}

impl From<AccelArg> for vmrunner::Accel {
    fn from(arg: AccelArg) -> Self {
        match arg {
            AccelArg::Auto => vmrunner::Accel::Auto,
            AccelArg::Kvm => vmrunner::Accel::Kvm,
            AccelArg::Tcg => vmrunner::Accel::Tcg,
        }
    }
}

impl From<AccelArg> for cloudlet::settings::AccelSetting {
    fn from(arg: AccelArg) -> Self {
        match arg {
            AccelArg::Auto => Self::Auto,
            AccelArg::Kvm => Self::Kvm,
            AccelArg::Tcg => Self::Tcg,
        }
    }
}

impl AccelArg {
    /// The value as typed.
    pub fn name(self) -> &'static str {
        match self {
            AccelArg::Auto => "auto",
            AccelArg::Kvm => "kvm",
            AccelArg::Tcg => "tcg",
        }
    }
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's disk, package, image, recipe and cloudlet
    /// (kept afterwards; default: a temporary directory, removed).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Where to save the screenshot of the VM's screen when there is no
    /// display (or with --headless).
    #[arg(long, value_name = "PNG", default_value = "olive2022-demo.png")]
    pub screenshot: PathBuf,
    /// Seconds to wait for the VM's screen.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,
    /// Keep the cloudlet, the VM and the tunnel running until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Save the screenshot even when a display and a viewer are available.
    #[arg(long, conflicts_with = "browser")]
    pub headless: bool,
    /// Show the VM in the web browser (as `launch --browser`) until the
    /// page is closed.
    #[arg(long)]
    pub browser: bool,
    /// Where noVNC's files are (with --browser) [default:
    /// /usr/share/novnc].
    #[arg(long, value_name = "DIR", requires = "browser")]
    pub novnc_dir: Option<PathBuf>,
    /// How QEMU runs the demo VM (TCG by default: the tiny guest boots in
    /// a second, and works where nested KVM cannot run its boot loader).
    #[arg(long, value_enum, default_value_t = AccelArg::Tcg)]
    pub accel: AccelArg,
    /// With --dry-run: print the plan as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `rfb-snapshot` (hidden): run as `olive2022-rfb-snapshot vnc://HOST:PORT`
/// by `launch --viewer`, so everything but the address can also come from
/// the environment.
#[derive(Debug, Args)]
pub struct RfbSnapshotArgs {
    /// Seconds to wait for the screen to show something and settle.
    #[arg(
        long,
        env = "OLIVE2022_SNAPSHOT_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub timeout: u64,
    /// After saving, keep the connection (and so the tunnel) open until
    /// interrupted.
    #[arg(long, env = "OLIVE2022_SNAPSHOT_HOLD")]
    pub hold: bool,
    /// The VNC server: vnc://HOST:PORT, HOST::PORT or HOST:PORT.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// Where to write the PNG.
    #[arg(value_name = "OUT.png", env = "OLIVE2022_SNAPSHOT_OUTPUT")]
    pub output: PathBuf,
}

/// `uuid`.
#[derive(Debug, Args)]
pub struct UuidArgs {
    /// Print `{"url": CANONICAL_URL, "uuid": UUID}` instead.
    #[arg(long)]
    pub json: bool,
    /// The vmnetx+https:// URL of the VM.
    #[arg(value_name = "VMNETX_URL")]
    pub url: String,
}

/// Compression of the output clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// Deflate, readable by every QEMU.
    Deflate,
    /// zstd: much faster, needs QEMU ≥ 5.1.
    Zstd,
}

impl From<CompressionArg> for diskimage::Compression {
    fn from(arg: CompressionArg) -> Self {
        match arg {
            CompressionArg::Deflate => diskimage::Compression::DEFLATE,
            CompressionArg::Zstd => diskimage::Compression::ZSTD,
        }
    }
}

/// The disk options shared by `extract` and `convert`.
#[derive(Debug, Args)]
pub struct DiskArgs {
    /// Name of the VM when the package has none.
    #[arg(long)]
    pub name: Option<String>,
    /// Compression of the disk image.
    #[arg(long, value_enum, default_value_t = CompressionArg::Deflate)]
    pub compression: CompressionArg,
    /// Compressing threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Refuse disks whose virtual size is larger (bytes, or with a K, M, G,
    /// T or P suffix in powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "2T", value_parser = parse_size)]
    pub max_virtual_size: u64,
}

/// A size such as `2T`, `500G` or `1048576`, up to
/// [`diskimage::MAX_VIRTUAL_SIZE`].
/// `LAT,LON` in degrees, e.g. `40.44,-79.94`.
fn parse_location(text: &str) -> Result<[f64; 2], String> {
    let (lat, lon) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}` is not LAT,LON"))?;
    let number = |part: &str| {
        part.trim()
            .parse::<f64>()
            .map_err(|e| format!("`{part}`: {e}"))
    };
    let (lat, lon) = (number(lat)?, number(lon)?);
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("`{text}` is not a latitude and a longitude"));
    }
    Ok([lat, lon])
}

/// `--lazy-pull`'s values, listed for completions and `--help`.
fn lazy_modes() -> impl clap::builder::TypedValueParser<Value = LazyMode> {
    clap::builder::PossibleValuesParser::new(LazyMode::NAMES)
        .map(|name| name.parse::<LazyMode>().unwrap_or_default())
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'P' => 50,
                _ => return Err(format!("unknown unit {unit:?}: use K, M, G, T or P")),
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 2T or 500G"))?;
    number
        .checked_mul(1 << shift)
        .filter(|&size| size <= diskimage::MAX_VIRTUAL_SIZE)
        .ok_or_else(|| {
            format!(
                "{text} is beyond the {} TiB any disk may have",
                diskimage::MAX_VIRTUAL_SIZE >> 40
            )
        })
}

/// `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// How to read and compress the disk.
    #[command(flatten)]
    pub disk: DiskArgs,
    /// Print the summary as one JSON object (with --dry-run: the plan).
    #[arg(long)]
    pub json: bool,
    /// Directory for the downloaded package (default: next to the output).
    #[arg(long)]
    pub tmp_dir: Option<PathBuf>,
    /// Where to write the qcow2 image.
    #[arg(short, long, value_name = "OUT.qcow2")]
    pub output: PathBuf,
    /// A .nxpk package, a .netx reference, or a vmnetx://, vmnetx+https://
    /// or https:// URL.
    #[arg(value_name = "SOURCE")]
    pub source: String,
}
