//! The settings of `olive2022 tier1`, as the cloudlet's
//! ([`crate::settings`]): one optional field per flag, from flags, then
//! `OLIVE2022_TIER1_*` variables (the binary's parser reads both), then the
//! TOML file of `--config`, then the defaults; [`Tier1Settings::shown`] is
//! what `--print-config` prints, a file that gives the same settings back.
//! The file is read with the same bounds and its errors name the file and
//! the line; the cloudlet token is never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{DEFAULT_DEPLOY_RATE, DEFAULT_LISTEN};
use crate::settings::{SettingsError, absolute, federation, invalid, read_bounded};
use crate::tier1::Tier1Config;

/// Every option of `olive2022 tier1`, each possibly unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Tier1Settings {
    /// Address of the tier-1 API.
    pub listen: Option<SocketAddr>,
    /// Recipes: backends without one are refused before any forward.
    pub recipes: Option<PathBuf>,
    /// The token reporting cloudlets must send. Never printed.
    pub cloudlet_token: Option<String>,
    /// Seconds a forwarded deploy may take before the next cloudlet.
    pub forward_timeout: Option<u64>,
    /// MaxMind city database locating clients without `X-Location`.
    pub geoip_db: Option<PathBuf>,
    /// Deploy requests a minute per client address; 0 for no limit.
    pub deploy_rate: Option<u32>,
    /// Reverse proxies whose `X-ClientIP` the deploy limit believes.
    pub trusted_proxy: Option<Vec<String>>,
}

impl Tier1Settings {
    /// The settings of a TOML file; relative paths are taken from its
    /// directory.
    pub fn from_file(path: &Path) -> Result<Tier1Settings, SettingsError> {
        let text = read_bounded(path)?;
        let mut settings: Tier1Settings =
            toml::from_str(&text).map_err(|error| invalid(path, &text, &error))?;
        if let Some(dir) = path.parent() {
            for file in [&mut settings.recipes, &mut settings.geoip_db]
                .into_iter()
                .flatten()
            {
                *file = dir.join(&*file);
            }
        }
        Ok(settings)
    }

    /// These settings, with every unset field taken from `lower`.
    pub fn or(self, lower: Tier1Settings) -> Tier1Settings {
        Tier1Settings {
            listen: self.listen.or(lower.listen),
            recipes: self.recipes.or(lower.recipes),
            cloudlet_token: self.cloudlet_token.or(lower.cloudlet_token),
            forward_timeout: self.forward_timeout.or(lower.forward_timeout),
            geoip_db: self.geoip_db.or(lower.geoip_db),
            deploy_rate: self.deploy_rate.or(lower.deploy_rate),
            trusted_proxy: self.trusted_proxy.or(lower.trusted_proxy),
        }
    }

    /// Tier 1's configuration: these settings, and the defaults for what
    /// they leave unset.
    pub fn resolve(self) -> Result<Tier1Config, SettingsError> {
        Ok(Tier1Config {
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            recipes_dir: self.recipes,
            deploy_rate: self.deploy_rate.unwrap_or(DEFAULT_DEPLOY_RATE),
            federation: federation(
                self.cloudlet_token.as_deref(),
                self.forward_timeout,
                self.geoip_db,
                &self.trusted_proxy.unwrap_or_default(),
            )?,
        })
    }

    /// `config` as a complete settings file: every key (paths absolute),
    /// the unset ones as comments, the token only said to be set or not.
    pub fn shown(config: &Tier1Config) -> Result<String, SettingsError> {
        let federation = &config.federation;
        let settings = Tier1Settings {
            listen: Some(config.listen),
            recipes: config.recipes_dir.as_deref().map(absolute),
            cloudlet_token: None,
            forward_timeout: Some(federation.forward_timeout.as_secs()),
            geoip_db: federation.geoip_db.as_deref().map(absolute),
            deploy_rate: Some(config.deploy_rate),
            trusted_proxy: Some(
                federation
                    .trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
        };
        let mut text = String::from(
            "# olive2022 tier1 settings, resolved from flags, OLIVE2022_TIER1_*\n\
             # variables, the --config file and the defaults (in that order).\n",
        );
        text += &toml::to_string(&settings).map_err(|e| SettingsError::Show(e.to_string()))?;
        if config.recipes_dir.is_none() {
            text += "# recipes = \"DIR\"  # unset: every backend is passed on\n";
        }
        if federation.geoip_db.is_none() {
            text += "# geoip-db = \"FILE\"  # unset: clients are located by X-Location only\n";
        }
        text += match federation.cloudlet_token {
            Some(_) => "# cloudlet-token: set (never shown)\n",
            None => "# cloudlet-token: unset (reports are open to any cloudlet)\n",
        };
        Ok(text)
    }
}
