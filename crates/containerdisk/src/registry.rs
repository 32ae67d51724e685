//! The OCI distribution API (`/v2/…`): push and pull blobs and manifests.
//!
//! Pushing a blob: `HEAD` skips one the registry already has; otherwise
//! `POST …/blobs/uploads/` opens an upload, `PATCH` sends it in chunks read
//! from the [`BlobSource`] (one chunk in memory at a time), and
//! `PUT <location>&digest=…` closes it. A chunk that fails (connection
//! error, timeout, 5xx) is retried after a growing pause, from the offset the
//! registry reports it holds (`GET <location>` → `Range: 0-N`), or from 0
//! with a new upload when the registry dropped the upload (the CNCF registry
//! does that whenever a chunk arrived in part). The push gives up after
//! [`RegistryOptions::max_retries`] failures in a row without new bytes
//! stored.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge:
//! `Basic` with the credentials, or `Bearer` with a token fetched from the
//! challenge's realm (with the credentials as Basic auth, or anonymously),
//! cached per scope. Credentials and tokens are only sent to the registry's
//! own origin (and to its token realm), never printed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Client, Request, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::BlobSource;
use crate::auth::Credentials;
use crate::digest::{Digest, Hasher};
use crate::reference::{check_registry, is_loopback, is_valid_repository, is_valid_tag};

/// The largest manifest [`Registry::pull_manifest`] accepts.
pub const MANIFEST_MAX: u64 = 4 << 20;

/// The slowest upload rate a chunk request is given time for, on top of
/// [`RegistryOptions::idle_timeout`]. A stalled connection is caught sooner
/// by `TCP_USER_TIMEOUT` (set to the idle timeout on Linux).
const MIN_UPLOAD_RATE: u64 = 64 << 10;

/// The most of an error response body that is read to explain it.
const ERROR_BODY_MAX: u64 = 64 << 10;

/// The most of a token response that is read.
const TOKEN_BODY_MAX: u64 = 1 << 20;

/// How a [`Registry`] talks to its server.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Allow plain HTTP to a host that is not loopback (loopback registries
    /// always get plain HTTP).
    pub insecure: bool,
    /// Credentials for Basic auth or the token server; `None` is anonymous.
    pub credentials: Option<Credentials>,
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
            chunk_size: 16 << 20,
            max_retries: 5,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Hears how a transfer goes (progress bars).
pub trait PushProgress {
    /// The transfer of `total` bytes begins (0 when unknown).
    fn start(&mut self, total: u64);
    /// `bytes` more are done (for uploads: stored by the registry).
    fn advance(&mut self, bytes: u64);
    /// The registry already had the blob: nothing to send.
    fn skipped(&mut self) {}
    /// Attempt `attempt` failed with `error`; retrying after a pause.
    fn retry(&mut self, attempt: u32, error: &RegistryError) {
        let _ = (attempt, error);
    }
    /// Whether the caller wants the transfer to stop (Ctrl-C): checked
    /// before every request of an upload.
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`PushProgress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl PushProgress for NoProgress {
    fn start(&mut self, _total: u64) {}
    fn advance(&mut self, _bytes: u64) {}
}

/// What went wrong talking to a registry. Messages are meant for users and
/// never contain passwords or tokens.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// [`PushProgress::cancelled`] asked to stop.
    #[error("transfer cancelled")]
    Cancelled,
    /// The registry name is not `host[:port]`.
    #[error("invalid registry {registry:?}: {reason}")]
    InvalidRegistry {
        /// The name given.
        registry: String,
        /// What is wrong.
        reason: String,
    },
    /// A repository name the registry would reject.
    #[error("invalid repository name {0:?}")]
    InvalidRepository(String),
    /// A tag (or manifest reference) the registry would reject.
    #[error("invalid tag {0:?}")]
    InvalidTag(String),
    /// No connection could be made.
    #[error("cannot connect to registry {registry}: {detail}")]
    Connect {
        /// The registry.
        registry: String,
        /// Why.
        detail: String,
    },
    /// The registry did not answer in time.
    #[error("registry {registry} did not answer in time: {detail}")]
    Timeout {
        /// The registry.
        registry: String,
        /// Which request, and the cause.
        detail: String,
    },
    /// The connection broke.
    #[error("connection to registry {registry} failed: {detail}")]
    Transport {
        /// The registry.
        registry: String,
        /// Why.
        detail: String,
    },
    /// The registry (or its token server) rejected the credentials.
    #[error("authentication failed for {registry} ({status}){}", colon(message))]
    Auth {
        /// The registry.
        registry: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// The registry's explanation.
        message: String,
    },
    /// The registry wants credentials and none were given.
    #[error(
        "registry {registry} requires authentication ({status}{}): no credentials for {registry}; \
         log in with podman/docker or set REGISTRY_AUTH_FILE",
        colon(message)
    )]
    NoCredentials {
        /// The registry.
        registry: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// The registry's explanation.
        message: String,
    },
    /// Any other unexpected HTTP status.
    #[error("registry {registry} answered {status} to {request}{}", colon(message))]
    Status {
        /// The registry.
        registry: String,
        /// The method and path (no query: it may hold upload state).
        request: String,
        /// The HTTP status with its reason.
        status: String,
        /// The status code.
        code: u16,
        /// The registry's explanation.
        message: String,
    },
    /// The registry stored a blob under another digest than ours.
    #[error("registry {registry} returned digest {actual} for a blob of digest {expected}")]
    WrongDigest {
        /// The registry.
        registry: String,
        /// The digest we sent.
        expected: Digest,
        /// What the registry said (`Docker-Content-Digest`).
        actual: String,
    },
    /// Pulled content does not match its digest.
    #[error("registry {registry} sent {what} of digest {actual}, expected {expected}")]
    ContentMismatch {
        /// The registry.
        registry: String,
        /// "a manifest" or "a blob".
        what: &'static str,
        /// The digest asked for (or announced).
        expected: String,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A manifest over [`MANIFEST_MAX`].
    #[error("manifest {reference} from registry {registry} is larger than 4 MiB")]
    ManifestTooLarge {
        /// The registry.
        registry: String,
        /// `repository:tag` or `repository@digest`.
        reference: String,
    },
    /// The registry answered something the protocol does not allow.
    #[error("registry {registry} broke the protocol: {message}")]
    Protocol {
        /// The registry.
        registry: String,
        /// What it did.
        message: String,
    },
    /// Reading the blob to upload failed.
    #[error("cannot read blob {digest} to upload it: {source}")]
    ReadBlob {
        /// The blob.
        digest: Digest,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a pulled blob failed.
    #[error("cannot write the blob pulled from {registry}: {source}")]
    WriteBlob {
        /// The registry.
        registry: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Retries exhausted.
    #[error("{last} (gave up after {attempts} attempts without progress)")]
    GaveUp {
        /// Failed attempts in a row.
        attempts: u32,
        /// The last error.
        last: Box<RegistryError>,
    },
}

fn colon(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl RegistryError {
    /// Whether trying again may help: connection errors, timeouts, 5xx,
    /// 408, 429, and 416 (an upload out of step with the registry).
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Connect { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::Transport { .. } => true,
            RegistryError::Status { code, .. } => *code >= 500 || matches!(code, 408 | 416 | 429),
            _ => false,
        }
    }
}

/// A registry's authentication scheme, learnt from its first challenge.
#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Default)]
struct AuthState {
    scheme: Option<Scheme>,
    /// Bearer tokens by scope.
    tokens: HashMap<String, String>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("scheme", &self.scheme)
            .field("token_scopes", &self.tokens.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What [`Registry::authorize`] attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attached {
    Nothing,
    Basic,
    Bearer,
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A client for one registry.
#[derive(Debug)]
pub struct Registry {
    name: String,
    base: Url,
    client: Client,
    options: RegistryOptions,
    auth: Mutex<AuthState>,
}

/// An open blob upload: where to send the next chunk, and from which offset.
#[derive(Debug, Clone)]
struct Upload {
    location: Url,
    offset: u64,
}

/// A download in progress.
struct Pull {
    done: u64,
    total: Option<u64>,
    started: bool,
    hasher: Hasher,
    buf: Vec<u8>,
}

/// Pauses between retries and counts failures without progress.
struct Retries<'a> {
    options: &'a RegistryOptions,
    failures: u32,
    pause: Duration,
}

impl<'a> Retries<'a> {
    fn new(options: &'a RegistryOptions) -> Self {
        Retries {
            options,
            failures: 0,
            pause: options.backoff,
        }
    }

    /// Records a failure: `Ok` after pausing when another attempt is due,
    /// the error (wrapped when retries happened) when not.
    fn failed(
        &mut self,
        error: RegistryError,
        progress: &mut dyn PushProgress,
    ) -> Result<(), RegistryError> {
        if !error.is_retryable() {
            return Err(error);
        }
        self.count(error, progress)
    }

    /// Like [`Self::failed`], for an error known to be worth a retry here.
    fn count(
        &mut self,
        error: RegistryError,
        progress: &mut dyn PushProgress,
    ) -> Result<(), RegistryError> {
        self.failures += 1;
        if self.failures > self.options.max_retries {
            return Err(if self.failures == 1 {
                error
            } else {
                RegistryError::GaveUp {
                    attempts: self.failures,
                    last: Box::new(error),
                }
            });
        }
        progress.retry(self.failures, &error);
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(self.options.max_backoff.max(self.options.backoff));
        Ok(())
    }

    fn progressed(&mut self) {
        self.failures = 0;
        self.pause = self.options.backoff;
    }
}

/// The scope a request needs from a token server.
fn scope(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

impl Registry {
    /// A client for `registry` (`host[:port]`): HTTPS, or plain HTTP for a
    /// loopback host or when `options.insecure` is set. Nothing is sent yet.
    pub fn new(registry: &str, options: RegistryOptions) -> Result<Registry, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidRegistry {
            registry: registry.to_owned(),
            reason,
        };
        check_registry(registry).map_err(|e| invalid(e.to_string()))?;
        let scheme = if options.insecure || is_loopback(registry) {
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
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        {
            builder = builder.tcp_user_timeout(options.idle_timeout);
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("cannot set up an HTTP client: {}", describe(e))))?;
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

    /// Uploads the blob unless the registry already has it; returns whether
    /// it uploaded.
    pub fn push_blob(
        &self,
        repository: &str,
        blob: &dyn BlobSource,
        progress: &mut dyn PushProgress,
    ) -> Result<bool, RegistryError> {
        check_repository(repository)?;
        let digest = blob.digest();
        let size = blob.size();
        let mut retries = Retries::new(&self.options);
        loop {
            match self.blob_exists_once(repository, digest) {
                Ok(true) => {
                    progress.skipped();
                    return Ok(false);
                }
                Ok(false) => break,
                Err(error) => retries.failed(error, progress)?,
            }
        }
        progress.start(size);
        let scope = scope(repository, true);
        // The highest offset the registry confirmed: progress, reported once.
        let mut stored = 0u64;
        let mut upload: Option<Upload> = None;
        loop {
            if progress.cancelled() {
                return Err(RegistryError::Cancelled);
            }
            let step = match &upload {
                None => self
                    .start_upload(repository, &scope)
                    .map(|location| Upload {
                        location,
                        offset: 0,
                    }),
                Some(open) if open.offset < size => self.send_chunk(open, blob, &scope),
                Some(open) => match self.finish_upload(open, digest, &scope) {
                    Ok(()) => {
                        progress.advance(size - stored);
                        return Ok(true);
                    }
                    Err(error) => Err(error),
                },
            };
            match step {
                Ok(next) => {
                    if next.offset > stored {
                        progress.advance(next.offset - stored);
                        stored = next.offset;
                        retries.progressed();
                    }
                    upload = Some(next);
                }
                Err(error) => {
                    // A 404 for an open upload: the registry lost or dropped
                    // it (expired, or it refuses to resume); start another.
                    let lost = upload.is_some()
                        && matches!(error, RegistryError::Status { code: 404, .. });
                    if lost {
                        retries.count(error, progress)?;
                    } else {
                        retries.failed(error, progress)?;
                    }
                    let Some(open) = upload.take() else {
                        continue;
                    };
                    match self.upload_status(&open, size, &scope) {
                        Ok(Some(resumed)) => upload = Some(resumed),
                        Ok(None) => {
                            // The upload is gone: finished after all, or dropped.
                            if open.offset >= size
                                && self.blob_exists_once(repository, digest).unwrap_or(false)
                            {
                                progress.advance(size - stored);
                                return Ok(true);
                            }
                        }
                        // Try the same chunk again; a mismatch shows as a 416.
                        Err(error) if error.is_retryable() => upload = Some(open),
                        Err(error) => return Err(error),
                    }
                }
            }
        }
    }

    /// `POST /v2/<repository>/blobs/uploads/` → the upload's location.
    fn start_upload(&self, repository: &str, scope: &str) -> Result<Url, RegistryError> {
        let url = self.url(&format!("v2/{repository}/blobs/uploads/"))?;
        let request = self
            .request(Method::POST, url.clone())
            .header(header::CONTENT_LENGTH, "0")
            .build();
        let response = self.send(request, scope)?;
        if !response.status().is_success() {
            return Err(self.status_error(&Method::POST, &url, response));
        }
        self.location(&response, &url)?
            .ok_or_else(|| self.protocol("answered a blob upload POST without a Location".into()))
    }

    /// `PATCH` the chunk at the upload's offset → the upload after it.
    fn send_chunk(
        &self,
        upload: &Upload,
        blob: &dyn BlobSource,
        scope: &str,
    ) -> Result<Upload, RegistryError> {
        let size = blob.size();
        let len = self.options.chunk_size.max(1).min(size - upload.offset);
        let chunk = read_chunk(blob, upload.offset, len)?;
        let end = upload.offset + len - 1;
        let timeout = self.options.idle_timeout + Duration::from_secs(len / MIN_UPLOAD_RATE);
        let request = self
            .request(Method::PATCH, upload.location.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_RANGE, format!("{}-{end}", upload.offset))
            .timeout(timeout)
            .body(chunk)
            .build();
        let response = self.send(request, scope)?;
        if !response.status().is_success() {
            return Err(self.status_error(&Method::PATCH, &upload.location, response));
        }
        let location = self
            .location(&response, &upload.location)?
            .unwrap_or_else(|| upload.location.clone());
        let sent = end + 1;
        let offset = match header_str(response.headers(), "range") {
            Some(range) => parse_range(range, sent).ok_or_else(|| {
                self.protocol(format!("answered a chunk with an invalid Range {range:?}"))
            })?,
            None => sent,
        };
        if offset > sent || offset <= upload.offset {
            return Err(self.protocol(format!(
                "accepted bytes {}-{end} but reports holding {offset} bytes",
                upload.offset
            )));
        }
        Ok(Upload { location, offset })
    }

    /// `GET <location>` → where the upload stands; `None` when the registry
    /// no longer knows it.
    fn upload_status(
        &self,
        upload: &Upload,
        size: u64,
        scope: &str,
    ) -> Result<Option<Upload>, RegistryError> {
        let request = self.request(Method::GET, upload.location.clone()).build();
        let response = self.send(request, scope)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(&Method::GET, &upload.location, response));
        }
        let Some(range) = header_str(response.headers(), "range") else {
            return Ok(None); // cannot tell: start again
        };
        let offset = parse_range(range, upload.offset)
            .filter(|&offset| offset <= size)
            .ok_or_else(|| self.protocol(format!("reports an invalid upload Range {range:?}")))?;
        let location = self
            .location(&response, &upload.location)?
            .unwrap_or_else(|| upload.location.clone());
        Ok(Some(Upload { location, offset }))
    }

    /// `PUT <location>&digest=…`, and checks the digest the registry stored.
    fn finish_upload(
        &self,
        upload: &Upload,
        digest: &Digest,
        scope: &str,
    ) -> Result<(), RegistryError> {
        let mut url = upload.location.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let request = self
            .request(Method::PUT, url.clone())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, "0")
            .build();
        let response = self.send(request, scope)?;
        if !response.status().is_success() {
            return Err(self.status_error(&Method::PUT, &url, response));
        }
        self.check_digest(response.headers(), digest)
    }

    /// Checks `Docker-Content-Digest`, when present, against `expected`.
    fn check_digest(&self, headers: &HeaderMap, expected: &Digest) -> Result<(), RegistryError> {
        match header_str(headers, "docker-content-digest").map(str::trim) {
            Some(actual) if actual != expected.as_str() => Err(RegistryError::WrongDigest {
                registry: self.name.clone(),
                expected: expected.clone(),
                actual: actual.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Uploads a manifest under `tag` (or a digest); returns its digest.
    pub fn push_manifest(
        &self,
        repository: &str,
        tag: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<Digest, RegistryError> {
        check_repository(repository)?;
        if !is_valid_tag(tag) && Digest::parse(tag).is_err() {
            return Err(RegistryError::InvalidTag(tag.to_owned()));
        }
        let digest = Digest::of(manifest);
        let url = self.url(&format!("v2/{repository}/manifests/{tag}"))?;
        let mut retries = Retries::new(&self.options);
        loop {
            let request = self
                .request(Method::PUT, url.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(manifest.to_vec())
                .build();
            let attempt = self
                .send(request, &scope(repository, true))
                .and_then(|response| {
                    if response.status().is_success() {
                        Ok(response)
                    } else {
                        Err(self.status_error(&Method::PUT, &url, response))
                    }
                });
            match attempt {
                Ok(response) => {
                    self.check_digest(response.headers(), &digest)?;
                    return Ok(digest);
                }
                Err(error) => retries.failed(error, &mut NoProgress)?,
            }
        }
    }

    /// Fetches a manifest by tag or digest, accepting the media types in
    /// `accept` (OCI and Docker manifests and indexes when empty). Returns
    /// its media type, bytes and digest; the digest is checked when
    /// `reference` is one.
    pub fn pull_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<(String, Vec<u8>, Digest), RegistryError> {
        check_repository(repository)?;
        let wanted = Digest::parse(reference).ok();
        if wanted.is_none() && !is_valid_tag(reference) {
            return Err(RegistryError::InvalidTag(reference.to_owned()));
        }
        let accept = if accept.is_empty() {
            DEFAULT_ACCEPT.join(", ")
        } else {
            accept.join(", ")
        };
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let mut retries = Retries::new(&self.options);
        let response = loop {
            let request = self
                .request(Method::GET, url.clone())
                .header(header::ACCEPT, accept.as_str())
                .build();
            let attempt = self
                .send(request, &scope(repository, false))
                .and_then(|response| {
                    if response.status() == StatusCode::OK {
                        Ok(response)
                    } else {
                        Err(self.status_error(&Method::GET, &url, response))
                    }
                });
            match attempt {
                Ok(response) => break response,
                Err(error) => retries.failed(error, &mut NoProgress)?,
            }
        };
        let too_large = || RegistryError::ManifestTooLarge {
            registry: self.name.clone(),
            reference: format!("{repository}:{reference}"),
        };
        if response
            .content_length()
            .is_some_and(|len| len > MANIFEST_MAX)
        {
            return Err(too_large());
        }
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        response
            .take(MANIFEST_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error("reading a manifest", &e))?;
        if bytes.len() as u64 > MANIFEST_MAX {
            return Err(too_large());
        }
        let digest = Digest::of(&bytes);
        let announced = header_str(&headers, "docker-content-digest")
            .map(str::trim)
            .filter(|text| text.starts_with("sha256:"));
        let expected = wanted.as_ref().map(Digest::as_str).or(announced);
        if let Some(expected) = expected
            && expected != digest.as_str()
        {
            return Err(RegistryError::ContentMismatch {
                registry: self.name.clone(),
                what: "a manifest",
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let header_type = header_str(&headers, "content-type")
            .and_then(|value| value.split(';').next())
            .map(str::trim)
            .filter(|value| {
                !value.is_empty() && *value != "application/octet-stream" && *value != "text/plain"
            });
        let media_type = match header_type {
            Some(media_type) => media_type.to_owned(),
            None => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|json| json.get("mediaType")?.as_str().map(str::to_owned))
                .ok_or_else(|| self.protocol("sent a manifest without a media type".into()))?,
        };
        Ok((media_type, bytes, digest))
    }

    /// Streams the blob `digest` into `out`, checking its digest; returns its
    /// size. A broken download resumes with a `Range` request. What was
    /// written to `out` is not taken back when the digest does not match.
    pub fn pull_blob(
        &self,
        repository: &str,
        digest: &Digest,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<u64, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let mut retries = Retries::new(&self.options);
        let mut pull = Pull {
            done: 0,
            total: None,
            started: false,
            hasher: Hasher::new(),
            buf: vec![0u8; 256 << 10],
        };
        loop {
            let before = pull.done;
            match self.pull_blob_from(&url, repository, &mut pull, out, progress) {
                Ok(()) => break,
                Err(error) => {
                    if pull.done > before {
                        retries.progressed();
                    }
                    retries.failed(error, progress)?;
                }
            }
        }
        let actual = pull.hasher.finish();
        if actual != *digest {
            return Err(RegistryError::ContentMismatch {
                registry: self.name.clone(),
                what: "a blob",
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(pull.done)
    }

    /// One download attempt, from `pull.done` on.
    fn pull_blob_from(
        &self,
        url: &Url,
        repository: &str,
        pull: &mut Pull,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<(), RegistryError> {
        let mut request = self.request(Method::GET, url.clone());
        if pull.done > 0 {
            request = request.header(header::RANGE, format!("bytes={}-", pull.done));
        }
        let mut response = self.send(request.build(), &scope(repository, false))?;
        let mut skip = 0u64;
        match response.status() {
            StatusCode::OK => {
                skip = pull.done; // a server that ignores Range sends it all again
                if !pull.started {
                    pull.started = true;
                    pull.total = response.content_length();
                    progress.start(pull.total.unwrap_or(0));
                }
            }
            StatusCode::PARTIAL_CONTENT if pull.done > 0 => {
                let start = header_str(response.headers(), "content-range")
                    .and_then(|range| range.trim().strip_prefix("bytes "))
                    .and_then(|range| range.split('-').next())
                    .and_then(|start| start.trim().parse::<u64>().ok());
                if start != Some(pull.done) {
                    return Err(self.protocol("answered a Range request with another range".into()));
                }
            }
            _ => return Err(self.status_error(&Method::GET, url, response)),
        }
        loop {
            let n = match response.read(&mut pull.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error("downloading a blob", &e)),
            };
            let mut piece = &pull.buf[..n];
            if skip > 0 {
                let dropped = usize::try_from(skip).unwrap_or(usize::MAX).min(n);
                skip -= dropped as u64;
                piece = &piece[dropped..];
            }
            if piece.is_empty() {
                continue;
            }
            pull.hasher.update(piece);
            out.write_all(piece)
                .map_err(|source| RegistryError::WriteBlob {
                    registry: self.name.clone(),
                    source,
                })?;
            pull.done += piece.len() as u64;
            progress.advance(piece.len() as u64);
        }
        if let Some(total) = pull.total
            && pull.done != total
        {
            return Err(RegistryError::Transport {
                registry: self.name.clone(),
                detail: format!("a blob download ended after {} of {total} bytes", pull.done),
            });
        }
        Ok(())
    }

    // ---- HTTP plumbing ----

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| self.protocol(format!("cannot build the URL of {path:?}: {e}")))
    }

    fn request(&self, method: Method, url: Url) -> reqwest::blocking::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request with the registry's authentication; on a 401,
    /// answers the challenge and sends it once more.
    fn send(
        &self,
        request: reqwest::Result<Request>,
        scope: &str,
    ) -> Result<Response, RegistryError> {
        let mut request = request
            .map_err(|e| self.protocol(format!("cannot build a request: {}", describe(e))))?;
        self.prefetch_token(scope)?;
        let spare = request.try_clone();
        let attached = self.authorize(&mut request, scope);
        let what = format!("{} {}", request.method(), request.url().path());
        let response = self.execute(request, &what)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let message = error_message(response);
        let Some(mut request) = spare else {
            return Err(self.auth_error(401, message));
        };
        self.answer(&challenges, attached, scope, &message)?;
        self.authorize(&mut request, scope);
        let response = self.execute(request, &what)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.auth_error(401, error_message(response)));
        }
        Ok(response)
    }

    fn execute(&self, request: Request, what: &str) -> Result<Response, RegistryError> {
        self.client
            .execute(request)
            .map_err(|e| self.transport_error(e, what))
    }

    /// With a Bearer registry, fetches the token of a new scope before the
    /// request rather than after a 401 (a chunk is not sent twice).
    fn prefetch_token(&self, scope: &str) -> Result<(), RegistryError> {
        let (realm, service) = {
            let state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            match &state.scheme {
                Some(Scheme::Bearer { realm, service }) if !state.tokens.contains_key(scope) => {
                    (realm.clone(), service.clone())
                }
                _ => return Ok(()),
            }
        };
        let token = self.fetch_token(&realm, service.as_deref(), scope)?;
        let mut state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        state.tokens.insert(scope.to_owned(), token);
        Ok(())
    }

    /// Attaches what the registry's scheme asks for (only to its origin).
    fn authorize(&self, request: &mut Request, scope: &str) -> Attached {
        if !same_origin(request.url(), &self.base) {
            return Attached::Nothing;
        }
        let state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, attached) = match (&state.scheme, &self.options.credentials) {
            (Some(Scheme::Basic), Some(credentials)) => (basic(credentials), Attached::Basic),
            (Some(Scheme::Bearer { .. }), _) => match state.tokens.get(scope) {
                Some(token) => (format!("Bearer {token}"), Attached::Bearer),
                None => return Attached::Nothing,
            },
            _ => return Attached::Nothing,
        };
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            request.headers_mut().insert(header::AUTHORIZATION, value);
            attached
        } else {
            Attached::Nothing
        }
    }

    /// Learns from a 401's challenges; fetches a token when asked to.
    fn answer(
        &self,
        challenges: &[Challenge],
        attached: Attached,
        scope: &str,
        message: &str,
    ) -> Result<(), RegistryError> {
        let bearer = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"));
        let basic_challenge = challenges
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("basic"));
        if let Some(bearer) = bearer {
            let realm = bearer
                .param("realm")
                .ok_or_else(|| self.protocol("sent a Bearer challenge without a realm".into()))?
                .to_owned();
            let service = bearer.param("service").map(str::to_owned);
            let token = self.fetch_token(&realm, service.as_deref(), scope)?;
            let mut state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            state.scheme = Some(Scheme::Bearer { realm, service });
            state.tokens.insert(scope.to_owned(), token);
            Ok(())
        } else if basic_challenge {
            if self.options.credentials.is_none() || attached == Attached::Basic {
                return Err(self.auth_error(401, message.to_owned()));
            }
            let mut state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            state.scheme = Some(Scheme::Basic);
            Ok(())
        } else {
            let mut error = self.auth_error(401, message.to_owned());
            if let RegistryError::Auth { message, .. }
            | RegistryError::NoCredentials { message, .. } = &mut error
            {
                let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
                let asked = if schemes.is_empty() {
                    "no WWW-Authenticate challenge".to_owned()
                } else {
                    format!("unsupported authentication {}", schemes.join(", "))
                };
                *message = if message.is_empty() {
                    asked
                } else {
                    format!("{message} ({asked})")
                };
            }
            Err(error)
        }
    }

    /// `GET realm?service=…&scope=…` (Basic auth with the credentials, if
    /// any) → the `token` (or `access_token`) of the JSON answer.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm)
            .map_err(|_| self.protocol(format!("sent an invalid token realm {realm:?}")))?;
        let plain_ok = self.is_plain_http() || url.host_str().is_some_and(is_loopback);
        match url.scheme() {
            "https" => {}
            "http" if plain_ok => {}
            _ => {
                return Err(self.protocol(format!(
                    "sent a token realm {realm:?} that is not HTTPS; use --insecure-registry to allow it"
                )));
            }
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.client.get(url.clone());
        if let Some(credentials) = &self.options.credentials {
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        let what = format!("GET {} (token)", url.path());
        let response = request.send().map_err(|e| self.transport_error(e, &what))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = error_message(response);
            return Err(
                self.auth_error(status.as_u16(), format!("token server refused: {message}"))
            );
        }
        if !status.is_success() {
            return Err(self.status_error(&Method::GET, &url, response));
        }
        let mut body = Vec::new();
        response
            .take(TOKEN_BODY_MAX)
            .read_to_end(&mut body)
            .map_err(|e| self.read_error("reading a token", &e))?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            self.protocol("token server answered something that is not JSON".into())
        })?;
        ["token", "access_token"]
            .iter()
            .find_map(|key| {
                json.get(key)
                    .and_then(|v| v.as_str())
                    .filter(|t| !t.is_empty())
            })
            .map(str::to_owned)
            .ok_or_else(|| self.protocol("token server answered without a token".into()))
    }

    /// The `Location` of a response, resolved against the request URL.
    fn location(
        &self,
        response: &Response,
        request_url: &Url,
    ) -> Result<Option<Url>, RegistryError> {
        match header_str(response.headers(), "location") {
            None => Ok(None),
            Some(location) => request_url
                .join(location)
                .map(Some)
                .map_err(|_| self.protocol(format!("sent an invalid Location {location:?}"))),
        }
    }

    fn auth_error(&self, status: u16, message: String) -> RegistryError {
        match &self.options.credentials {
            None => RegistryError::NoCredentials {
                registry: self.name.clone(),
                status,
                message,
            },
            Some(credentials) => RegistryError::Auth {
                registry: self.name.clone(),
                status,
                message: if message.is_empty() {
                    // HEAD answers have no body to explain themselves.
                    let verb = if status == 403 {
                        "denied access to"
                    } else {
                        "rejected"
                    };
                    format!("the registry {verb} user {:?}", credentials.username)
                } else {
                    message
                },
            },
        }
    }

    fn status_error(&self, method: &Method, url: &Url, response: Response) -> RegistryError {
        let status = response.status();
        let message = error_message(response);
        if status == StatusCode::FORBIDDEN {
            return self.auth_error(403, message);
        }
        RegistryError::Status {
            registry: self.name.clone(),
            request: format!("{method} {}", url.path()),
            status: status.to_string(),
            code: status.as_u16(),
            message,
        }
    }

    fn protocol(&self, message: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            message,
        }
    }

    fn transport_error(&self, error: reqwest::Error, what: &str) -> RegistryError {
        let registry = self.name.clone();
        if error.is_timeout() {
            RegistryError::Timeout {
                registry,
                detail: format!("{what}: {}", describe(error)),
            }
        } else if error.is_connect() {
            RegistryError::Connect {
                registry,
                detail: describe(error),
            }
        } else {
            RegistryError::Transport {
                registry,
                detail: format!("{what}: {}", describe(error)),
            }
        }
    }

    fn read_error(&self, what: &str, error: &std::io::Error) -> RegistryError {
        let registry = self.name.clone();
        let detail = format!("{what}: {}", describe_io(error));
        if error.kind() == std::io::ErrorKind::TimedOut {
            RegistryError::Timeout { registry, detail }
        } else {
            RegistryError::Transport { registry, detail }
        }
    }
}

/// What `pull_manifest` accepts by default.
const DEFAULT_ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn check_repository(repository: &str) -> Result<(), RegistryError> {
    if is_valid_repository(repository) {
        Ok(())
    } else {
        Err(RegistryError::InvalidRepository(repository.to_owned()))
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn basic(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Reads `len` bytes of the blob at `offset`.
fn read_chunk(blob: &dyn BlobSource, offset: u64, len: u64) -> Result<Vec<u8>, RegistryError> {
    let read_error = |source| RegistryError::ReadBlob {
        digest: blob.digest().clone(),
        source,
    };
    let len = usize::try_from(len)
        .map_err(|_| read_error(std::io::Error::other("chunk larger than the address space")))?;
    let mut chunk = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match blob.read_at(offset + filled as u64, &mut chunk[filled..]) {
            Ok(0) => {
                return Err(read_error(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the blob ends before its size ({})", blob.size()),
                )));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    Ok(chunk)
}

/// The offset after `Range: 0-N` (also `bytes=0-N`): N + 1. `0-0` is
/// ambiguous (the CNCF registry writes it for 0 and 1 byte): it means 0
/// when `hint` (the offset we expect) is 0, else 1.
fn parse_range(range: &str, hint: u64) -> Option<u64> {
    let range = range.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, end) = range.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let end: u64 = end.trim().parse().ok()?;
    if end == 0 && hint == 0 {
        Some(0)
    } else {
        end.checked_add(1)
    }
}

/// The registry's explanation of an error response: the `errors` of its
/// JSON body (`CODE: message`), or the start of the text.
fn error_message(response: Response) -> String {
    let mut body = Vec::new();
    // A body that fails to arrive just leaves the message empty.
    let _ = response.take(ERROR_BODY_MAX).read_to_end(&mut body);
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(errors) = json.get("errors").and_then(|e| e.as_array())
    {
        let parts: Vec<String> = errors
            .iter()
            .map(|error| {
                let code = error.get("code").and_then(|c| c.as_str()).unwrap_or("");
                let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
                match (code.is_empty(), message.is_empty()) {
                    (false, false) => format!("{code}: {message}"),
                    (false, true) => code.to_owned(),
                    _ => message.to_owned(),
                }
            })
            .filter(|part| !part.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A reqwest error and its causes, without the URL (it may carry upload
/// state or signed query parameters).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn describe_io(error: &std::io::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Parses `WWW-Authenticate`: `Scheme k=v, k="quoted", …` (several
/// challenges possible).
fn parse_challenges(value: &str) -> Vec<Challenge> {
    let bytes = value.as_bytes();
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-/".contains(&b);
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b',' || bytes[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && is_token(bytes[i]) {
            i += 1;
        }
        if start == i {
            i += 1; // stray character
            continue;
        }
        let name = &value[start..i];
        let mut j = i;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'=' && !challenges.is_empty() {
            j += 1;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            let mut param = String::new();
            if j < bytes.len() && bytes[j] == b'"' {
                j += 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' && j + 1 < bytes.len() {
                        j += 1;
                    }
                    let ch_len = utf8_len(bytes[j]);
                    param.push_str(&value[j..(j + ch_len).min(bytes.len())]);
                    j += ch_len;
                }
                j += 1; // closing quote
            } else {
                let vstart = j;
                while j < bytes.len() && bytes[j] != b',' {
                    j += 1;
                }
                param.push_str(value[vstart..j].trim());
            }
            if let Some(last) = challenges.last_mut() {
                last.params.push((name.to_owned(), param));
            }
            i = j;
        } else if j < bytes.len() && bytes[j] == b'=' {
            // token68 or garbage before any scheme: skip it
            i = j + 1;
        } else {
            challenges.push(Challenge {
                scheme: name.to_owned(),
                params: Vec::new(),
            });
        }
    }
    challenges
}

/// The length of the UTF-8 sequence starting with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn challenges() {
        let parsed = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].scheme, "Bearer");
        assert_eq!(parsed[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(parsed[0].param("service"), Some("registry.example"));
        assert_eq!(parsed[0].param("scope"), Some("repository:a/b:pull,push"));

        let parsed =
            parse_challenges(r#"Basic realm="my \"realm\"", Bearer realm=x , service = "s""#);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].param("realm"), Some(r#"my "realm""#));
        assert_eq!(parsed[1].param("realm"), Some("x"));
        assert_eq!(parsed[1].param("service"), Some("s"));
        assert_eq!(parse_challenges("Basic").len(), 1);
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-1023", 0), Some(1024));
        assert_eq!(parse_range("bytes=0-9", 5), Some(10));
        assert_eq!(parse_range("0-0", 0), Some(0));
        assert_eq!(parse_range("0-0", 1), Some(1));
        assert_eq!(parse_range("5-9", 0), None);
        assert_eq!(parse_range("0-x", 0), None);
        assert_eq!(parse_range("", 0), None);
    }
}
