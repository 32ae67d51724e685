//! [`RegistryError`], and how failures become one.
//!
//! Every failure, whether an HTTP status, a broken connection or a reply the
//! protocol does not allow, ends up as a [`RegistryError`] whose message
//! names the registry and the request but never a password, a token or a
//! URL query (it may hold upload state). Retries decide from the variant
//! ([`RegistryError::is_retryable`]), so the mapping from transport errors
//! and status codes lives here, in one place.

use std::io::Read;
use std::path::PathBuf;

use reqwest::blocking::Response;
use reqwest::{Method, StatusCode, Url};

use super::Registry;
use crate::credentials::CredentialOrigin;
use crate::digest::Digest;

/// The most of an error response body that is read to explain it.
const ERROR_BODY_MAX: u64 = 64 << 10;

/// What went wrong talking to a registry. Messages are meant for users and
/// never contain passwords or tokens.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// [`PushProgress::cancelled`](super::PushProgress::cancelled) asked to stop.
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
    #[error(
        "authentication failed for {registry} ({status}){} ({origin})",
        colon(message)
    )]
    Auth {
        /// The registry.
        registry: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// The registry's explanation.
        message: String,
        /// Where the credentials came from.
        origin: Box<CredentialOrigin>,
    },
    /// The registry wants credentials and none were given.
    #[error(
        "registry {registry} requires authentication ({status}{}): {origin}; \
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
        /// Where credentials were looked for.
        origin: Box<CredentialOrigin>,
    },
    /// The TLS connection failed: an untrusted or wrong certificate, or a
    /// server that does not speak TLS.
    #[error(
        "TLS with registry {registry} failed: {detail}; if it uses a private CA, \
         trust it with --registry-ca FILE (or SSL_CERT_FILE)"
    )]
    Tls {
        /// The registry.
        registry: String,
        /// Why.
        detail: String,
    },
    /// The registry CA file cannot be used.
    #[error("cannot use the registry CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
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
    /// A manifest over [`MANIFEST_MAX`](super::MANIFEST_MAX).
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

impl Registry {
    pub(super) fn auth_error(&self, status: u16, message: String) -> RegistryError {
        let origin = Box::new(self.credentials_origin());
        match &self.options.credentials {
            None => RegistryError::NoCredentials {
                registry: self.name.clone(),
                status,
                message,
                origin,
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
                origin,
            },
        }
    }

    /// Where the credentials came from: as the options say, else given by
    /// the caller (or, without credentials, looked for nowhere).
    fn credentials_origin(&self) -> CredentialOrigin {
        match (&self.options.credentials_origin, &self.options.credentials) {
            (Some(origin), _) => origin.clone(),
            (None, Some(_)) => CredentialOrigin::Given,
            (None, None) => CredentialOrigin::NotFound {
                registry: self.name.clone(),
                searched: Vec::new(),
                helpers: Vec::new(),
            },
        }
    }

    pub(super) fn status_error(
        &self,
        method: &Method,
        url: &Url,
        response: Response,
    ) -> RegistryError {
        let status = response.status();
        let mut message = error_message(response);
        if status == StatusCode::FORBIDDEN {
            return self.auth_error(403, message);
        }
        // Go's TLS servers answer plain HTTP so; a loopback registry is
        // plain HTTP unless its CA is given.
        if status == StatusCode::BAD_REQUEST
            && self.is_plain_http()
            && message.contains("HTTP request to an HTTPS server")
        {
            message += " (it speaks HTTPS: trust its CA with --registry-ca FILE)";
        }
        RegistryError::Status {
            registry: self.name.clone(),
            request: format!("{method} {}", url.path()),
            status: status.to_string(),
            code: status.as_u16(),
            message,
        }
    }

    pub(super) fn protocol(&self, message: String) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            message,
        }
    }

    pub(super) fn transport_error(&self, error: reqwest::Error, what: &str) -> RegistryError {
        let error = error.without_url();
        let registry = self.name.clone();
        if let Some(tls) = super::tls::tls_failure(&error) {
            RegistryError::Tls {
                registry,
                detail: tls.to_string(),
            }
        } else if error.is_timeout() {
            RegistryError::Timeout {
                registry,
                detail: format!("{what}: {}", describe(&error)),
            }
        } else if error.is_connect() {
            RegistryError::Connect {
                registry,
                detail: describe(&error),
            }
        } else {
            RegistryError::Transport {
                registry,
                detail: format!("{what}: {}", describe(&error)),
            }
        }
    }

    pub(super) fn read_error(&self, what: &str, error: &std::io::Error) -> RegistryError {
        let registry = self.name.clone();
        let detail = format!("{what}: {}", describe(error));
        if error.kind() == std::io::ErrorKind::TimedOut {
            RegistryError::Timeout { registry, detail }
        } else {
            RegistryError::Transport { registry, detail }
        }
    }
}

/// The registry's explanation of an error response: the `errors` of its
/// JSON body (`CODE: message`), or the start of the text.
pub(super) fn error_message(response: Response) -> String {
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

/// An error and its causes, joined by `: `, leaving out a cause whose text
/// an earlier message already holds. Callers give a reqwest error
/// `without_url()`: its URL may carry upload state or signed query
/// parameters.
pub(super) fn describe(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
