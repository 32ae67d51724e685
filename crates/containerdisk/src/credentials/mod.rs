//! Registry credentials, wherever container tools keep them: the `auths`
//! entries of the auth files ([`crate::auth`]) and Docker's credential
//! helpers (`helper`, run as `docker-credential-NAME get`).
//!
//! The auth files are searched in [`AuthEnv::auth_files`] order
//! (`$REGISTRY_AUTH_FILE`, podman's, then `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`); within one file, the precedence is Docker's:
//!
//! 1. `credHelpers[HOST]`: that helper;
//! 2. `credsStore`: the helper for every registry;
//! 3. `auths[HOST]`: the base64 `user:password` written by `login`.
//!
//! The first file that yields credentials wins. A helper that holds nothing
//! for the registry lets the search go on; a helper that is missing, fails,
//! hangs or answers garbage is an error (as with Docker), rather than a push
//! that goes on anonymously. Where the search looked travels with the result
//! ([`CredentialOrigin`]), so that a registry's 401 can say it.

pub mod helper;

use std::fmt;
use std::path::PathBuf;

use crate::auth::{self, AuthEnv, Credentials};

pub use self::helper::{HELPER_OUTPUT_MAX, HELPER_PREFIX, HELPER_TIMEOUT, Helper, HelperError};

/// The credentials found for a registry (if any), and where they came from
/// or where they were looked for.
#[derive(Debug, Clone)]
pub struct Found {
    /// The credentials; `None` is anonymous.
    pub credentials: Option<Credentials>,
    /// Their origin, or where the search looked.
    pub origin: CredentialOrigin,
}

/// Where credentials came from, or where they were looked for in vain;
/// shown in authentication errors (it never holds a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialOrigin {
    /// Given by the caller (a command-line flag, a recipe).
    Given,
    /// The `auths` entry of an auth file.
    AuthFile(PathBuf),
    /// A credential helper named by a config file.
    Helper {
        /// `docker-credential-NAME`.
        program: String,
        /// The config file that names it.
        config: PathBuf,
    },
    /// Nothing anywhere.
    NotFound {
        /// The registry.
        registry: String,
        /// The auth files searched (existing or not).
        searched: Vec<PathBuf>,
        /// The helpers asked, which held nothing for the registry.
        helpers: Vec<String>,
    },
}

impl fmt::Display for CredentialOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialOrigin::Given => write!(f, "credentials given on the command line"),
            CredentialOrigin::AuthFile(file) => write!(f, "credentials from {}", file.display()),
            CredentialOrigin::Helper { program, config } => write!(
                f,
                "credentials from credential helper {program} (named in {})",
                config.display()
            ),
            CredentialOrigin::NotFound {
                registry,
                searched,
                helpers,
            } if searched.is_empty() => write!(f, "no credentials for {registry}"),
            CredentialOrigin::NotFound {
                registry,
                searched,
                helpers,
            } => {
                let files: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "no credentials configured for {registry} (looked in {}",
                    files.join(", ")
                )?;
                if !helpers.is_empty() {
                    write!(f, "; asked {}", helpers.join(", "))?;
                }
                write!(f, ")")
            }
        }
    }
}

/// The credentials for `repository` on `registry` (`host[:port]`) from the
/// process environment's auth files and helpers.
pub fn lookup_from_env(registry: &str, repository: &str) -> Result<Found, HelperError> {
    lookup(&AuthEnv::from_env(), registry, repository)
}

/// The credentials for `repository` on `registry` with an explicit
/// environment; see the module documentation for the order.
pub fn lookup(env: &AuthEnv, registry: &str, repository: &str) -> Result<Found, HelperError> {
    let searched = env.auth_files();
    let mut helpers = Vec::new();
    for file in &searched {
        let Some(json) = auth::read_auth_file(file) else {
            continue;
        };
        if let Some(name) = helper_name(&json, registry) {
            let helper = Helper {
                name: &name,
                config: file,
                env: &env.helper_env,
            };
            let program = helper.program();
            if let Some(credentials) = helper.get(&server_url(registry), registry)? {
                return Ok(Found {
                    credentials: Some(credentials),
                    origin: CredentialOrigin::Helper {
                        program,
                        config: file.clone(),
                    },
                });
            }
            helpers.push(program);
        }
        if let Some(credentials) = auth::from_auths(&json, registry, repository) {
            return Ok(Found {
                credentials: Some(credentials),
                origin: CredentialOrigin::AuthFile(file.clone()),
            });
        }
    }
    Ok(Found {
        credentials: None,
        origin: CredentialOrigin::NotFound {
            registry: registry.to_owned(),
            searched,
            helpers,
        },
    })
}

/// The helper a config file names for `registry`: `credHelpers[HOST]`, else
/// `credsStore`.
fn helper_name(json: &serde_json::Value, registry: &str) -> Option<String> {
    let registry = auth::canonical_host(registry);
    let per_host = json
        .get("credHelpers")
        .and_then(|helpers| helpers.as_object())
        .and_then(|helpers| {
            helpers.iter().find_map(|(key, name)| {
                let (host, _) = auth::normalize_key(key);
                (auth::canonical_host(host) == registry).then(|| name.as_str())?
            })
        });
    per_host
        .or_else(|| json.get("credsStore").and_then(|name| name.as_str()))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// The server URL a helper knows a registry by: what `docker login` stores,
/// the host as typed, except Docker Hub's historical URL.
fn server_url(registry: &str) -> String {
    match auth::canonical_host(registry).as_str() {
        "docker.io" => "https://index.docker.io/v1/".to_owned(),
        _ => registry.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn helper_precedence_within_a_file() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"credsStore": "store", "credHelpers": {"a.example": "per-host", "https://B.example/v1/": "b"}}"#,
        )
        .unwrap();
        assert_eq!(helper_name(&json, "a.example").as_deref(), Some("per-host"));
        assert_eq!(helper_name(&json, "b.example").as_deref(), Some("b"));
        assert_eq!(helper_name(&json, "c.example").as_deref(), Some("store"));
        let none: serde_json::Value = serde_json::from_str(r#"{"credsStore": ""}"#).unwrap();
        assert_eq!(helper_name(&none, "a.example"), None);
        assert_eq!(server_url("index.docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_url("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
