//! The settings of `olive2022 cloudlet`: one typed record for its flags,
//! its environment variables and its TOML settings file.
//!
//! [`CloudletSettings`] has one optional field per option, named as the
//! flag (`--max-vms` is `max-vms = 4` in the file). The sources are merged
//! field by field, the first that sets a field wins:
//!
//! 1. flags (`--max-vms 8`),
//! 2. environment variables (`OLIVE2022_CLOUDLET_MAX_VMS=8`),
//! 3. the file of `--config FILE` (or `OLIVE2022_CLOUDLET_CONFIG`),
//! 4. the defaults below and, for the two directories, those of
//!    [`crate::data_dir`] (which honour systemd's `STATE_DIRECTORY` and
//!    `CACHE_DIRECTORY`).
//!
//! The binary's argument parser handles 1 and 2 (each flag reads its own
//! variable); [`CloudletSettings::from_file`] reads 3, [`CloudletSettings::or`]
//! merges and [`CloudletSettings::resolve`] fills in 4, giving the
//! [`LocalCloudletConfig`] the cloudlet starts from.
//! [`CloudletSettings::shown`] turns that back into a complete file, which is
//! what `--print-config` prints.
//!
//! The file is read with bounds (a regular file of at most
//! [`MAX_SETTINGS_FILE`] bytes, UTF-8), unknown keys are refused, and
//! every error names the file and the line. Relative paths in the file are
//! taken from the file's directory, so that a file means the same whatever
//! the working directory of the service; relative paths given as flags or
//! variables are taken from the working directory as usual.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerdisk::lazy::{DEFAULT_THRESHOLD, LazyMode};
use serde::{Deserialize, Serialize};
use sinfonia::deploy::IpNet;
use vmrunner::Accel;

use crate::data_dir::{DataDirError, default_cache_dir, default_data_dir};
use crate::federation::{BearerToken, DEFAULT_FORWARD_TIMEOUT, FederationConfig};
use crate::reporter::Federation;
use crate::standalone::LocalCloudletConfig;

/// The largest settings file read: a complete one is under 1 KiB.
pub const MAX_SETTINGS_FILE: u64 = 64 * 1024;
pub use crate::config::{DEFAULT_DEPLOY_RATE, DEFAULT_LISTEN, DEFAULT_MAX_VMS};
/// The WireGuard endpoint's default address: every interface.
pub const DEFAULT_WG_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 51820);
/// The default recipe directory, relative to the working directory.
pub const DEFAULT_RECIPES: &str = "RECIPES";
/// Seconds without traffic after which a VM is stopped, by default.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = crate::config::DEFAULT_IDLE_TIMEOUT.as_secs();

/// Every option of `olive2022 cloudlet`, each possibly unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CloudletSettings {
    /// Address of the Sinfonia API (tier 1 and tier 2).
    pub listen: Option<SocketAddr>,
    /// Directory of the recipes (`<uuid>.yaml`).
    pub recipes: Option<PathBuf>,
    /// UDP address of the WireGuard endpoint.
    pub wg_listen: Option<SocketAddr>,
    /// The endpoint clients are told to use (`HOST:PORT`).
    pub public_endpoint: Option<String>,
    /// Where the key and the VMs are kept.
    pub data_dir: Option<PathBuf>,
    /// Where the pulled disk images are kept.
    pub cache_dir: Option<PathBuf>,
    /// Most VMs running at once.
    pub max_vms: Option<usize>,
    /// Deploy requests a minute per client address; 0 for no limit.
    pub deploy_rate: Option<u32>,
    /// Most bytes the image cache may hold; 0 for no limit.
    pub cache_max_bytes: Option<u64>,
    /// Seconds without traffic after which a VM is stopped.
    pub idle_timeout: Option<u64>,
    /// How QEMU runs the VMs.
    pub accel: Option<AccelSetting>,
    /// When VMs start before their disk is downloaded.
    pub lazy_pull: Option<LazyMode>,
    /// In `auto`, the smallest image (bytes) started before its download.
    pub lazy_threshold: Option<u64>,
    /// PEM file of CA certificates trusted for registries, besides the
    /// system's.
    pub registry_ca: Option<PathBuf>,
    /// Tier 1 base URLs to report to.
    #[serde(rename = "tier1-url")]
    pub tier1_url: Option<Vec<String>>,
    /// The base URL tier 1 and clients reach the API at.
    pub public_url: Option<String>,
    /// The bearer token of cloudlet reports: sent with this cloudlet's
    /// reports, and required from the cloudlets that report here. Never
    /// printed.
    pub cloudlet_token: Option<String>,
    /// `[latitude, longitude]` of this cloudlet, reported to tier 1.
    pub location: Option<Vec<[f64; 2]>>,
    /// Client networks considered close, reported to tier 1.
    pub local_network: Option<Vec<String>>,
    /// Client networks accepted, reported to tier 1.
    pub accept_clients: Option<Vec<String>>,
    /// Client networks refused, reported to tier 1.
    pub reject_clients: Option<Vec<String>>,
    /// Seconds a forwarded deploy may take before the next cloudlet is
    /// tried.
    pub forward_timeout: Option<u64>,
    /// MaxMind city database (GeoLite2 City `.mmdb`) that locates the
    /// clients of deploys without `X-Location`, as a tier 1.
    pub geoip_db: Option<PathBuf>,
    /// Announce the cloudlet on the local network over mDNS.
    pub zeroconf: Option<bool>,
    /// Proxies (a tier 1 that forwards here, a reverse proxy) whose
    /// `X-ClientIP` the deploy limit believes, as CIDRs.
    pub trusted_proxy: Option<Vec<String>>,
}

/// The accelerator as written in the file (`auto`, `kvm` or `tcg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelSetting {
    /// KVM when `/dev/kvm` can be opened, else TCG.
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// Emulation.
    Tcg,
}

impl From<AccelSetting> for Accel {
    fn from(setting: AccelSetting) -> Accel {
        match setting {
            AccelSetting::Auto => Accel::Auto,
            AccelSetting::Kvm => Accel::Kvm,
            AccelSetting::Tcg => Accel::Tcg,
        }
    }
}

impl From<Accel> for AccelSetting {
    fn from(accel: Accel) -> AccelSetting {
        match accel {
            Accel::Auto => AccelSetting::Auto,
            Accel::Kvm => AccelSetting::Kvm,
            Accel::Tcg => AccelSetting::Tcg,
        }
    }
}

/// Why the settings cannot be read, resolved or shown.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file cannot be opened or read.
    #[error("cannot read the settings file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path names a directory, a device or a pipe.
    #[error("the settings file {} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is larger than [`MAX_SETTINGS_FILE`].
    #[error("the settings file {} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// The file is not TOML, or not these settings.
    #[error("the settings file {}, line {line}{}: {message}", path.display(), key_part(key))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The key written on that line, when there is one.
        key: Option<String>,
        /// What is wrong (the TOML parser's words).
        message: String,
    },
    /// A default directory cannot be found.
    #[error(transparent)]
    Directory(#[from] DataDirError),
    /// A setting is not usable (a federation URL, the token, a location,
    /// a timeout out of its range).
    #[error("--{key}: {reason}")]
    Value {
        /// The setting, named as its flag.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// A setting cannot be written as TOML (a path that is not UTF-8).
    #[error("cannot show the settings as TOML: {0}")]
    Show(String),
}

fn key_part(key: &Option<String>) -> String {
    key.as_ref()
        .map(|key| format!(" (key `{key}`)"))
        .unwrap_or_default()
}

impl CloudletSettings {
    /// Reads a settings file: a regular file of at most
    /// [`MAX_SETTINGS_FILE`] bytes, only known keys, values of the right
    /// type. Relative paths in it are taken from its directory.
    pub fn from_file(path: &Path) -> Result<CloudletSettings, SettingsError> {
        let text = read_bounded(path)?;
        let mut settings: CloudletSettings =
            toml::from_str(&text).map_err(|error| invalid(path, &text, &error))?;
        if let Some(dir) = path.parent() {
            settings.anchor_paths(dir);
        }
        Ok(settings)
    }

    /// These settings, with every unset field taken from `lower`.
    pub fn or(self, lower: CloudletSettings) -> CloudletSettings {
        CloudletSettings {
            listen: self.listen.or(lower.listen),
            recipes: self.recipes.or(lower.recipes),
            wg_listen: self.wg_listen.or(lower.wg_listen),
            public_endpoint: self.public_endpoint.or(lower.public_endpoint),
            data_dir: self.data_dir.or(lower.data_dir),
            cache_dir: self.cache_dir.or(lower.cache_dir),
            max_vms: self.max_vms.or(lower.max_vms),
            deploy_rate: self.deploy_rate.or(lower.deploy_rate),
            cache_max_bytes: self.cache_max_bytes.or(lower.cache_max_bytes),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            accel: self.accel.or(lower.accel),
            lazy_pull: self.lazy_pull.or(lower.lazy_pull),
            lazy_threshold: self.lazy_threshold.or(lower.lazy_threshold),
            registry_ca: self.registry_ca.or(lower.registry_ca),
            tier1_url: self.tier1_url.or(lower.tier1_url),
            public_url: self.public_url.or(lower.public_url),
            cloudlet_token: self.cloudlet_token.or(lower.cloudlet_token),
            location: self.location.or(lower.location),
            local_network: self.local_network.or(lower.local_network),
            accept_clients: self.accept_clients.or(lower.accept_clients),
            reject_clients: self.reject_clients.or(lower.reject_clients),
            forward_timeout: self.forward_timeout.or(lower.forward_timeout),
            geoip_db: self.geoip_db.or(lower.geoip_db),
            zeroconf: self.zeroconf.or(lower.zeroconf),
            trusted_proxy: self.trusted_proxy.or(lower.trusted_proxy),
        }
    }

    /// The cloudlet's configuration: these settings, and the defaults for
    /// whatever they leave unset.
    pub fn resolve(self) -> Result<LocalCloudletConfig, SettingsError> {
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        let cache_dir = match self.cache_dir {
            Some(dir) => dir,
            None => default_cache_dir()?,
        };
        let reporting = Federation {
            tier1_urls: self.tier1_url.unwrap_or_default(),
            public_url: self.public_url,
            cloudlet_token: self.cloudlet_token,
            locations: self.location.unwrap_or_default(),
            local_networks: self.local_network.unwrap_or_default(),
            accepted_clients: self.accept_clients.unwrap_or_default(),
            rejected_clients: self.reject_clients.unwrap_or_default(),
        };
        check_federation(&reporting)?;
        Ok(LocalCloudletConfig {
            federation: federation(
                reporting.cloudlet_token.as_deref(),
                self.forward_timeout,
                self.geoip_db,
                &self.trusted_proxy.unwrap_or_default(),
            )?,
            reporting,
            recipes_dir: self.recipes.unwrap_or_else(|| DEFAULT_RECIPES.into()),
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            wg_listen: self.wg_listen.unwrap_or(DEFAULT_WG_LISTEN),
            public_endpoint: self.public_endpoint,
            data_dir,
            cache_dir,
            accel: self.accel.unwrap_or(AccelSetting::Auto).into(),
            lazy_pull: self.lazy_pull.unwrap_or_default(),
            lazy_threshold: self.lazy_threshold.unwrap_or(DEFAULT_THRESHOLD),
            max_vms: self.max_vms.unwrap_or(DEFAULT_MAX_VMS),
            deploy_rate: self.deploy_rate.unwrap_or(DEFAULT_DEPLOY_RATE),
            cache_max_bytes: self.cache_max_bytes.unwrap_or(0),
            idle_timeout: Duration::from_secs(
                self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
            ),
            registry_ca: self.registry_ca,
            zeroconf: self.zeroconf.unwrap_or(false),
        })
    }

    /// `config` as a complete settings file: every key, the unset
    /// `registry-ca` as a comment, the unset `public-endpoint` as a comment
    /// showing what clients are told, and
    /// paths made absolute (so that the file means the same wherever it is
    /// saved).
    pub fn shown(config: &LocalCloudletConfig) -> Result<String, SettingsError> {
        let settings = CloudletSettings {
            listen: Some(config.listen),
            recipes: Some(absolute(&config.recipes_dir)),
            wg_listen: Some(config.wg_listen),
            public_endpoint: config.public_endpoint.clone(),
            data_dir: Some(absolute(&config.data_dir)),
            cache_dir: Some(absolute(&config.cache_dir)),
            max_vms: Some(config.max_vms),
            deploy_rate: Some(config.deploy_rate),
            cache_max_bytes: Some(config.cache_max_bytes),
            idle_timeout: Some(config.idle_timeout.as_secs()),
            accel: Some(config.accel.into()),
            lazy_pull: Some(config.lazy_pull),
            lazy_threshold: Some(config.lazy_threshold),
            registry_ca: config.registry_ca.as_deref().map(absolute),
            tier1_url: Some(config.reporting.tier1_urls.clone()),
            public_url: config.reporting.public_url.clone(),
            // Never shown: a comment below says whether it is set.
            cloudlet_token: None,
            location: Some(config.reporting.locations.clone()),
            local_network: Some(config.reporting.local_networks.clone()),
            accept_clients: Some(config.reporting.accepted_clients.clone()),
            reject_clients: Some(config.reporting.rejected_clients.clone()),
            forward_timeout: Some(config.federation.forward_timeout.as_secs()),
            geoip_db: config.federation.geoip_db.as_deref().map(absolute),
            zeroconf: Some(config.zeroconf),
            trusted_proxy: Some(
                config
                    .federation
                    .trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
        };
        let mut text = String::from(
            "# olive2022 cloudlet settings, resolved from flags, OLIVE2022_CLOUDLET_*\n\
             # variables, the --config file and the defaults (in that order).\n",
        );
        text += &toml::to_string(&settings).map_err(|e| SettingsError::Show(e.to_string()))?;
        if config.registry_ca.is_none() {
            text += "# registry-ca = \"FILE\"  # unset: the system's trust store only\n";
        }
        if config.federation.geoip_db.is_none() {
            text += "# geoip-db = \"FILE\"  # unset: clients are located by X-Location only\n";
        }
        if config.public_endpoint.is_none() {
            text += &format!(
                "# public-endpoint = \"{}\"  # unset: loopback and the WireGuard port\n",
                config.public_endpoint()
            );
        }
        if config.reporting.public_url.is_none() {
            text += "# public-url: unset, http:// and the address --listen binds\n";
        }
        text += match config.reporting.cloudlet_token {
            Some(_) => "# cloudlet-token: set (never shown)\n",
            None => "# cloudlet-token: unset\n",
        };
        Ok(text)
    }

    /// Relative paths taken from `dir`.
    fn anchor_paths(&mut self, dir: &Path) {
        for path in [
            &mut self.recipes,
            &mut self.data_dir,
            &mut self.cache_dir,
            &mut self.registry_ca,
            &mut self.geoip_db,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }
}

/// The federation settings that cannot work: URLs that are not http(s), a
/// token that cannot be a header, locations off the globe. (Networks are
/// checked with the API's settings.)
fn check_federation(federation: &Federation) -> Result<(), SettingsError> {
    let urls = federation.tier1_urls.iter().map(|url| ("tier1-url", url));
    for (key, url) in urls.chain(federation.public_url.iter().map(|url| ("public-url", url))) {
        let parsed = url::Url::parse(url).map_err(|e| SettingsError::Value {
            key,
            reason: format!("`{url}` is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(SettingsError::Value {
                key,
                reason: format!("`{url}` is not an http(s) URL"),
            });
        }
    }
    if let Some(token) = &federation.cloudlet_token
        && (token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(SettingsError::Value {
            key: "cloudlet-token",
            reason: "must be printable ASCII without spaces".into(),
        });
    }
    if let Some([lat, lon]) = federation
        .locations
        .iter()
        .find(|[lat, lon]| !crate::api::valid_location(*lat, *lon))
    {
        return Err(SettingsError::Value {
            key: "location",
            reason: format!("{lat},{lon} is not a latitude and a longitude"),
        });
    }
    Ok(())
}

/// Tier 1's settings: the token checked, the timeout at least 1 s, the
/// trusted proxies parsed (the GeoIP database is opened when tier 1
/// starts).
pub fn federation(
    token: Option<&str>,
    forward_timeout: Option<u64>,
    geoip_db: Option<PathBuf>,
    trusted_proxies: &[String],
) -> Result<FederationConfig, SettingsError> {
    let trusted_proxies = trusted_proxies
        .iter()
        .map(|text| {
            text.trim()
                .parse::<IpNet>()
                .map_err(|reason| SettingsError::Value {
                    key: "trusted-proxy",
                    reason,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cloudlet_token =
        token
            .map(BearerToken::new)
            .transpose()
            .map_err(|reason| SettingsError::Value {
                key: "cloudlet-token",
                reason: reason.to_owned(),
            })?;
    let forward_timeout = match forward_timeout {
        Some(0) => {
            return Err(SettingsError::Value {
                key: "forward-timeout",
                reason: "must be at least 1 second".to_owned(),
            });
        }
        Some(seconds) => Duration::from_secs(seconds),
        None => DEFAULT_FORWARD_TIMEOUT,
    };
    Ok(FederationConfig {
        cloudlet_token,
        forward_timeout,
        geoip_db,
        trusted_proxies,
    })
}

/// `path` from the working directory, when it can be found.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The file's text, refused beyond [`MAX_SETTINGS_FILE`] or when it is not
/// a regular file (a FIFO would block the start forever).
pub(crate) fn read_bounded(path: &Path) -> Result<String, SettingsError> {
    let read_error = |source| SettingsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(SettingsError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_SETTINGS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SETTINGS_FILE {
        return Err(SettingsError::TooLarge {
            path: path.to_owned(),
            limit: MAX_SETTINGS_FILE,
        });
    }
    String::from_utf8(bytes).map_err(|_| SettingsError::Invalid {
        path: path.to_owned(),
        line: 1,
        key: None,
        message: "not UTF-8 text".to_owned(),
    })
}

/// A parse error on one line: the line number, the key written on it and
/// the parser's message (without its drawing of the file).
pub(crate) fn invalid(path: &Path, text: &str, error: &toml::de::Error) -> SettingsError {
    let at = error.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    let key = line_text
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"'))
        .filter(|key| !key.is_empty() && key.len() <= 64 && !key.starts_with('#'))
        .map(str::to_owned);
    SettingsError::Invalid {
        path: path.to_owned(),
        line,
        key,
        message: error.message().trim().to_owned(),
    }
}
