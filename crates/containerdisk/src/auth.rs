//! Registry credentials, from the files where container tools keep them.
//!
//! `podman login`, `skopeo login` and `docker login` write
//! `{"auths": {"<key>": {"auth": "<base64 of user:password>"}}}`. The files
//! are searched in this order, and the first file with an entry for the
//! registry wins:
//!
//! 1. `$REGISTRY_AUTH_FILE`;
//! 2. `$XDG_RUNTIME_DIR/containers/auth.json` (podman's default);
//! 3. `$XDG_CONFIG_HOME/containers/auth.json` (default
//!    `~/.config/containers/auth.json`);
//! 4. `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`).
//!
//! Unreadable or malformed files are skipped; entries without `auth` (an
//! `identitytoken` only) are ignored. This module reads the `auths` entries
//! only: [`crate::credentials::lookup`] searches the same files and also
//! runs the credential helpers they name (`credHelpers`, `credsStore`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token; never printed.
    pub password: String,
}

/// The user name that marks the password as an identity token (a refresh
/// token for the registry's token server), as Docker's credential helpers
/// return it.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// The identity token, when these credentials are one (user name
    /// [`IDENTITY_TOKEN_USER`]).
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }

    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A malformed credentials string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not `USER:TOKEN` (the text is not repeated: it may hold a secret).
    #[error("credentials must be USER:TOKEN, with a non-empty user and token")]
    InvalidUserToken,
}

/// Parses `USER:TOKEN` (split at the first `:`, so the token may contain
/// colons; both parts non-empty).
pub fn parse_user_token(text: &str) -> Result<Credentials, AuthError> {
    match text.split_once(':') {
        Some((user, token)) if !user.is_empty() && !token.is_empty() => {
            Ok(Credentials::new(user, token))
        }
        _ => Err(AuthError::InvalidUserToken),
    }
}

/// The environment that decides where the auth files are; [`AuthEnv::from_env`]
/// reads the process environment, tests build one by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthEnv {
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$DOCKER_CONFIG`.
    pub docker_config: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// Variables added to the inherited environment of credential helpers
    /// (empty from [`AuthEnv::from_env`]: they inherit the process's).
    pub helper_env: Vec<(OsString, OsString)>,
}

impl AuthEnv {
    /// The process environment (empty variables count as unset).
    pub fn from_env() -> AuthEnv {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthEnv {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            docker_config: var("DOCKER_CONFIG"),
            home: var("HOME"),
            helper_env: Vec::new(),
        }
    }

    /// The auth files to search, in order (whether they exist or not).
    pub fn auth_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Some(file) = &self.registry_auth_file {
            files.push(file.clone());
        }
        if let Some(dir) = &self.xdg_runtime_dir {
            files.push(dir.join("containers/auth.json"));
        }
        match (&self.xdg_config_home, &self.home) {
            (Some(config), _) => files.push(config.join("containers/auth.json")),
            (None, Some(home)) => files.push(home.join(".config/containers/auth.json")),
            (None, None) => {}
        }
        match (&self.docker_config, &self.home) {
            (Some(dir), _) => files.push(dir.join("config.json")),
            (None, Some(home)) => files.push(home.join(".docker/config.json")),
            (None, None) => {}
        }
        files
    }
}

/// Credentials for `registry` (`host[:port]`) from the auth files of the
/// process environment, if any.
pub fn from_auth_files(registry: &str) -> Option<Credentials> {
    from_auth_files_for(registry, "")
}

/// Credentials for `repository` on `registry`: like [`from_auth_files`], but
/// a key scoped to a namespace (`host/namespace`, as podman allows) applies
/// when it is a prefix of `repository`, and the longest such key wins.
pub fn from_auth_files_for(registry: &str, repository: &str) -> Option<Credentials> {
    from_auth_files_in(&AuthEnv::from_env(), registry, repository)
}

/// [`from_auth_files_for`] with an explicit environment.
pub fn from_auth_files_in(env: &AuthEnv, registry: &str, repository: &str) -> Option<Credentials> {
    env.auth_files()
        .iter()
        .find_map(|file| from_auth_file(file, registry, repository))
}

/// The credentials one auth file holds for `repository` on `registry`;
/// `None` when the file is missing, unreadable, malformed or has no entry.
pub fn from_auth_file(file: &Path, registry: &str, repository: &str) -> Option<Credentials> {
    let json = read_auth_file(file)?;
    from_auths(&json, registry, repository)
}

/// An auth file's JSON; `None` when it is missing, unreadable or malformed.
pub(crate) fn read_auth_file(file: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read(file).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The credentials the `auths` of an auth file's `json` hold for
/// `repository` on `registry`.
pub(crate) fn from_auths(
    json: &serde_json::Value,
    registry: &str,
    repository: &str,
) -> Option<Credentials> {
    let auths = json.get("auths")?.as_object()?;
    let registry = canonical_host(registry);
    let mut best: Option<(usize, Credentials)> = None;
    for (key, entry) in auths {
        let Some(specificity) = key_matches(key, &registry, repository) else {
            continue;
        };
        if best
            .as_ref()
            .is_some_and(|(longest, _)| *longest >= specificity)
        {
            continue;
        }
        let Some(credentials) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .and_then(decode_auth)
        else {
            continue;
        };
        best = Some((specificity, credentials));
    }
    best.map(|(_, credentials)| credentials)
}

/// How specifically `key` matches (the length of its namespace path, 0 for
/// a whole-registry key), or `None` when it does not apply.
fn key_matches(key: &str, registry: &str, repository: &str) -> Option<usize> {
    let (host, path) = normalize_key(key);
    if canonical_host(host) != registry {
        return None;
    }
    if path.is_empty() {
        return Some(0);
    }
    let applies = repository == path
        || repository
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('/'));
    applies.then_some(path.len())
}

/// Splits an auth-file key into host and namespace path. Keys with a scheme
/// (`https://host/v1/`, `http://host/v2/`) name the whole registry, as
/// Docker writes them.
pub(crate) fn normalize_key(key: &str) -> (&str, &str) {
    let scheme_less = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"));
    match scheme_less {
        Some(rest) => (rest.split('/').next().unwrap_or(rest), ""),
        None => {
            let key = key.trim_end_matches('/');
            key.split_once('/').unwrap_or((key, ""))
        }
    }
}

/// Lower-cases a host and folds Docker Hub's several names into one.
pub(crate) fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

/// Decodes the `auth` field: base64 of `user:password`.
fn decode_auth(auth: &str) -> Option<Credentials> {
    let auth = auth.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some(Credentials::new(user, password))
}
