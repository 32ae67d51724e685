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

use serde::{Deserialize, Serialize};
use vmrunner::Accel;

use crate::data_dir::{DataDirError, default_cache_dir, default_data_dir};
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Announce the cloudlet on the local network over mDNS.
    pub zeroconf: Option<bool>,
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
            zeroconf: self.zeroconf.or(lower.zeroconf),
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
        Ok(LocalCloudletConfig {
            recipes_dir: self.recipes.unwrap_or_else(|| DEFAULT_RECIPES.into()),
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            wg_listen: self.wg_listen.unwrap_or(DEFAULT_WG_LISTEN),
            public_endpoint: self.public_endpoint,
            data_dir,
            cache_dir,
            accel: self.accel.unwrap_or(AccelSetting::Auto).into(),
            max_vms: self.max_vms.unwrap_or(DEFAULT_MAX_VMS),
            deploy_rate: self.deploy_rate.unwrap_or(DEFAULT_DEPLOY_RATE),
            cache_max_bytes: self.cache_max_bytes.unwrap_or(0),
            idle_timeout: Duration::from_secs(
                self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
            ),
            zeroconf: self.zeroconf.unwrap_or(false),
        })
    }

    /// `config` as a complete settings file: every key, the unset
    /// `public-endpoint` as a comment showing what clients are told, and
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
            zeroconf: Some(config.zeroconf),
        };
        let mut text = String::from(
            "# olive2022 cloudlet settings, resolved from flags, OLIVE2022_CLOUDLET_*\n\
             # variables, the --config file and the defaults (in that order).\n",
        );
        text += &toml::to_string(&settings).map_err(|e| SettingsError::Show(e.to_string()))?;
        if config.public_endpoint.is_none() {
            text += &format!(
                "# public-endpoint = \"{}\"  # unset: loopback and the WireGuard port\n",
                config.public_endpoint()
            );
        }
        Ok(text)
    }

    /// Relative paths taken from `dir`.
    fn anchor_paths(&mut self, dir: &Path) {
        for path in [&mut self.recipes, &mut self.data_dir, &mut self.cache_dir]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }
}

/// `path` from the working directory, when it can be found.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The file's text, refused beyond [`MAX_SETTINGS_FILE`] or when it is not
/// a regular file (a FIFO would block the start forever).
fn read_bounded(path: &Path) -> Result<String, SettingsError> {
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
fn invalid(path: &Path, text: &str, error: &toml::de::Error) -> SettingsError {
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
