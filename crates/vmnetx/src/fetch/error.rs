//! [`FetchError`], and how a failure of the shared ranged GET
//! ([`RangedError`]) becomes one.
//!
//! Every message names the URL as [`redact`](super::client::redact) shows
//! it: no credentials, no query string (it may hold access tokens).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use transfer::ranged::RangedError;

use super::client::describe_io;

/// Why a download failed. URLs in messages never show a query string.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// [`Progress::cancelled`](super::Progress::cancelled) asked to stop.
    #[error("download cancelled")]
    Cancelled,
    /// The URL could not be parsed.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL scheme is neither `http` nor `https`.
    #[error("cannot download `{scheme}:` URLs (only http and https)")]
    UnsupportedScheme {
        /// The scheme of the URL.
        scheme: String,
    },
    /// The HTTP client could not be set up (e.g. an invalid user agent).
    #[error("cannot set up the HTTP client: {detail}")]
    Client {
        /// The cause.
        detail: String,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve the host name of {url}: {detail}")]
    Dns {
        /// The URL, without query string.
        url: String,
        /// The cause.
        detail: String,
    },
    /// No connection could be made (refused, unreachable, TLS failure…).
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// The URL, without query string.
        url: String,
        /// The cause.
        detail: String,
    },
    /// A redirect was refused (too many, to `http` from `https`, bad scheme).
    #[error("bad redirect from {url}: {detail}")]
    Redirect {
        /// The URL, without query string.
        url: String,
        /// The cause.
        detail: String,
    },
    /// The request failed for another reason (protocol error, closed early…).
    #[error("request to {url} failed: {detail}")]
    Request {
        /// The URL, without query string.
        url: String,
        /// The cause.
        detail: String,
    },
    /// Nothing was received for the idle timeout.
    #[error("no data received from {url} for {} s, after {received} bytes", .idle.as_secs_f64())]
    Timeout {
        /// The URL, without query string.
        url: String,
        /// The idle timeout that expired.
        idle: Duration,
        /// Bytes received so far.
        received: u64,
    },
    /// The server answered with an error or otherwise unusable HTTP status.
    #[error("HTTP {status} {reason} from {url}")]
    Status {
        /// The URL, without query string.
        url: String,
        /// The status code, e.g. 404.
        status: u16,
        /// The standard reason phrase of the status, e.g. `Not Found`.
        reason: String,
    },
    /// The connection broke while reading the body.
    #[error("connection to {url} broke after {received} bytes: {detail}")]
    Interrupted {
        /// The URL, without query string.
        url: String,
        /// Bytes received so far.
        received: u64,
        /// The cause.
        detail: String,
    },
    /// The server closed the connection before sending all announced bytes.
    #[error("{url} sent fewer bytes than announced: got {received} of {expected} bytes")]
    Truncated {
        /// The URL, without query string.
        url: String,
        /// Bytes received so far.
        received: u64,
        /// Bytes the server announced.
        expected: u64,
    },
    /// The server sent more bytes than it announced.
    #[error("{url} sent more bytes than announced ({expected} bytes)")]
    TooLong {
        /// The URL, without query string.
        url: String,
        /// Bytes the server announced.
        expected: u64,
    },
    /// A resumed response does not fit the request (bad `Content-Range`…).
    #[error("{url} answered a request from byte {received} unusably: {detail}")]
    BadRange {
        /// The URL, without query string.
        url: String,
        /// Bytes received so far (the start of the requested range).
        received: u64,
        /// What is wrong.
        detail: String,
    },
    /// The remote file changed during the download (size, validator, 416).
    #[error("{url} changed during the download: {detail}")]
    Changed {
        /// The URL, without query string.
        url: String,
        /// What changed.
        detail: String,
    },
    /// The destination file could not be written.
    #[error("cannot write {}: {error}", .path.display())]
    Io {
        /// The destination file.
        path: PathBuf,
        /// The cause.
        error: io::Error,
    },
    /// The download kept failing without progress.
    #[error("giving up on {url} after {failures} failed attempts in a row: {last}")]
    RetriesExhausted {
        /// The URL, without query string.
        url: String,
        /// Failed attempts since the last progress.
        failures: u32,
        /// The last error.
        last: Box<FetchError>,
    },
}
/// What a [`RangedError`] means for the download of `url` (as shown) into
/// `path`, whose client gives up after `idle` without data.
pub(super) fn from_ranged(
    url: &str,
    idle: Duration,
    path: &Path,
    error: RangedError,
) -> FetchError {
    let url = url.to_owned();
    match error {
        RangedError::Cancelled => FetchError::Cancelled,
        RangedError::Status { response } => {
            let status = response.status();
            FetchError::Status {
                url,
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
            }
        }
        RangedError::UnaskedPartial { .. } => FetchError::BadRange {
            url,
            received: 0,
            detail: error.to_string(),
        },
        RangedError::BadRange { received, detail } => FetchError::BadRange {
            url,
            received,
            detail,
        },
        RangedError::RangeRefused { .. }
        | RangedError::SizeChanged { .. }
        | RangedError::EtagChanged => FetchError::Changed {
            url,
            detail: error.to_string(),
        },
        RangedError::Timeout { received, .. } => FetchError::Timeout {
            url,
            idle,
            received,
        },
        RangedError::Interrupted { received, source } => FetchError::Interrupted {
            url,
            received,
            detail: describe_io(&source),
        },
        RangedError::Truncated { received, expected } => FetchError::Truncated {
            url,
            received,
            expected,
        },
        RangedError::TooLong { expected } => FetchError::TooLong { url, expected },
        RangedError::Write(error) => io_error(path, error),
    }
}

/// Wraps an I/O error on the destination file.
pub(super) fn io_error(path: &Path, error: io::Error) -> FetchError {
    FetchError::Io {
        path: path.to_owned(),
        error,
    }
}
