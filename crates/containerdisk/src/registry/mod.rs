//! The OCI distribution API (`/v2/…`): push and pull blobs and manifests.
//!
//! [`Registry`] is a client for one registry, configured by
//! [`RegistryOptions`]; transfers report to a [`PushProgress`]. This file
//! holds those public types, the client's construction and the checks every
//! request shares; the work is split by job:
//!
//! - `error`: [`RegistryError`], and how responses and transport failures
//!   become one;
//! - `http`: building and sending requests, reading response headers;
//! - `challenge`: `WWW-Authenticate` challenges, `Basic` credentials and
//!   `Bearer` tokens;
//! - `token`: fetching a `Bearer` token from the challenge's realm (with
//!   the credentials, or an identity token);
//! - `tls`: the registry CA file, and recognising a TLS failure;
//! - `retry`: pauses between attempts, and when to give up;
//! - `upload`: pushing a blob in chunks, resuming a broken upload;
//! - `manifest`: pushing and pulling manifests;
//! - `download`: pulling a blob through the `transfer` crate's resumable
//!   ranged GET;
//! - `range`: reading one byte range of a blob (lazy pulls).
//!
//! Blobs go up in chunks of [`RegistryOptions::chunk_size`] (one in memory
//! at a time) and come down as a stream; both resume where a broken
//! connection left them, and give up after [`RegistryOptions::max_retries`]
//! failures in a row without progress.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge:
//! `Basic` with the credentials, or `Bearer` with a token fetched from the
//! challenge's realm (with the credentials as Basic auth, or anonymously),
//! cached per scope. Credentials and tokens are only sent to the registry's
//! own origin (and to its token realm), never printed.

mod challenge;
mod download;
mod error;
mod http;
mod manifest;
mod range;
mod retry;
mod tls;
mod token;
mod upload;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Method, StatusCode, Url};

use crate::auth::Credentials;
use crate::credentials::CredentialOrigin;
use crate::digest::Digest;
use crate::reference::{check_registry, is_loopback, is_valid_repository};

use self::challenge::AuthState;
pub use self::error::RegistryError;
use self::error::describe;

/// The largest manifest [`Registry::pull_manifest`] accepts (its home is
/// [`crate::manifest`]).
pub use crate::manifest::MANIFEST_MAX;

/// How a [`Registry`] talks to its server.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Allow plain HTTP to a host that is not loopback (loopback registries
    /// get plain HTTP unless [`Self::ca_file`] is set).
    pub insecure: bool,
    /// Credentials for Basic auth or the token server; `None` is anonymous.
    pub credentials: Option<Credentials>,
    /// Where [`Self::credentials`] came from (or were looked for), for
    /// authentication errors; `None` when the caller gave them.
    pub credentials_origin: Option<CredentialOrigin>,
    /// A PEM file of CA certificates trusted for this registry, on top of
    /// the system's (which `SSL_CERT_FILE` and `SSL_CERT_DIR` replace). A
    /// CA means the registry speaks TLS: HTTPS even on loopback.
    pub ca_file: Option<PathBuf>,
    /// Bytes per `PATCH` request (and the memory an upload holds).
    pub chunk_size: u64,
    /// Failures in a row without progress before giving up (0: no retry).
    pub max_retries: u32,
    /// The longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// The longest a request may go without an answer or without data. A
    /// chunk upload gets this plus the time to send the chunk at 64 KiB/s.
    pub idle_timeout: Duration,
    /// The first pause before a retry; each further one doubles it.
    pub backoff: Duration,
    /// The longest pause before a retry.
    pub max_backoff: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: false,
            credentials: None,
            credentials_origin: None,
            ca_file: None,
            chunk_size: 16 << 20,
            max_retries: 5,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Hears how a transfer goes (progress bars); one trait for every transfer
/// (its home is the `transfer` crate).
pub use transfer::{NoProgress, Progress as PushProgress};

/// A client for one registry.
#[derive(Debug)]
pub struct Registry {
    name: String,
    base: Url,
    client: Client,
    options: RegistryOptions,
    auth: Mutex<AuthState>,
}

impl Registry {
    /// A client for `registry` (`host[:port]`): HTTPS, or plain HTTP for a
    /// loopback host or when `options.insecure` is set, unless
    /// `options.ca_file` names the registry's CA. Nothing is sent yet.
    pub fn new(registry: &str, options: RegistryOptions) -> Result<Registry, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidRegistry {
            registry: registry.to_owned(),
            reason,
        };
        check_registry(registry).map_err(|e| invalid(e.to_string()))?;
        let plain = options.insecure || is_loopback(registry);
        let scheme = if plain && options.ca_file.is_none() {
            "http"
        } else {
            "https"
        };
        // Docker Hub's API is not at the name images use.
        let host = match registry.to_ascii_lowercase().as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            _ => registry,
        };
        let base =
            Url::parse(&format!("{scheme}://{host}/")).map_err(|e| invalid(e.to_string()))?;
        if base.path() != "/" || base.query().is_some() {
            return Err(invalid("expected host[:port] only".into()));
        }
        let mut builder = Client::builder()
            .user_agent(concat!(
                "olive2022-containerdisk/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(options.connect_timeout)
            .timeout(options.idle_timeout);
        if is_loopback(registry) {
            // A proxy from the environment cannot reach our own loopback.
            builder = builder.no_proxy();
        }
        if let Some(path) = &options.ca_file {
            let certificates = tls::read_ca_file(path).map_err(|reason| RegistryError::CaFile {
                path: path.clone(),
                reason,
            })?;
            builder = builder.tls_certs_merge(certificates);
        }
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        {
            builder = builder.tcp_user_timeout(options.idle_timeout);
        }
        let client = builder.build().map_err(|e| {
            invalid(format!(
                "cannot set up an HTTP client: {}",
                describe(&e.without_url())
            ))
        })?;
        Ok(Registry {
            name: registry.to_owned(),
            base,
            client,
            options,
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The registry name, as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether requests go over plain HTTP.
    pub fn is_plain_http(&self) -> bool {
        self.base.scheme() == "http"
    }

    /// Whether the registry has the blob `digest` in `repository`.
    pub fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool, RegistryError> {
        check_repository(repository)?;
        self.blob_exists_once(repository, digest)
    }

    fn blob_exists_once(&self, repository: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let request = self.request(Method::HEAD, url.clone()).build();
        let response = self.send(request, &scope(repository, true))?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(&Method::HEAD, &url, response)),
        }
    }
}

/// The scope a request needs from a token server.
fn scope(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

fn check_repository(repository: &str) -> Result<(), RegistryError> {
    if is_valid_repository(repository) {
        Ok(())
    } else {
        Err(RegistryError::InvalidRepository(repository.to_owned()))
    }
}
