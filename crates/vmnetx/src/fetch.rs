//! Downloading a VMNetX package over HTTP(S), robustly.
//!
//! Packages of the Olive Archive are several gigabytes large and are served
//! by ordinary web servers over connections that break, stall or lie. This
//! module turns one `http://` or `https://` URL into one local file, and
//! guarantees that:
//!
//! - the file holds exactly the bytes the server announced: when the server
//!   gave a `Content-Length`, a download that ends with fewer bytes (the
//!   server closed early, again and again) or that would get more bytes is an
//!   error, never a silently truncated or oversized file;
//! - a broken or stalled connection (no byte for
//!   [`FetchOptions::idle_timeout`]) is resumed with a `Range` request
//!   (guarded by `If-Range`), with a short exponential backoff, up to
//!   [`FetchOptions::max_retries`] failures in a row without progress; a
//!   server that ignores the range is read again from the start, but only if
//!   the size did not change;
//! - only `http` and `https` are fetched, at most 10 redirects are followed
//!   and never from `https` to `http`;
//! - no error message contains the query string or the credentials of a URL
//!   (they may hold access tokens): URLs are shown as
//!   `scheme://host[:port]/path`;
//! - memory stays bounded (the body is streamed in 256 KiB pieces) and
//!   nothing from the network can make it panic.
//!
//! Without a `Content-Length` the body is read to the end of the connection;
//! nothing can be resumed then, so a broken connection is an error.
//!
//! Progress is reported through the [`Progress`] trait; this crate draws
//! nothing. On error the destination file is left in an unspecified state:
//! callers download to a temporary path and rename it only on success.
//!
//! The resume itself (`Range`/`If-Range`, the checks of `200`, `206` and
//! `Content-Range`, the sizes, the idle timeout, retries, cancellation) is
//! the `transfer` crate's [`RangedGet`]; this module adds what is proper to
//! a package: the URL rules and the client (`client`), and the messages of
//! [`FetchError`] (`error`).

mod client;
mod error;

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use reqwest::blocking::{Client, Response};
use transfer::ranged::{Origin, Position, RangedError, RangedGet, Resume};
use transfer::{Backoff, Retries};

use self::client::{build_client, parse_url, redact, request_error};
pub use self::error::FetchError;
use self::error::{from_ranged, io_error};

/// Pauses between retries: 500 ms, doubling for each failure in a row, up
/// to 8 s.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(500),
    max: Duration::from_secs(8),
};

/// Options for a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Time allowed to establish a connection (TCP and TLS). Default: 30 s.
    ///
    /// The wait for the response headers is also bounded by `idle_timeout`.
    pub connect_timeout: Duration,
    /// Time without receiving any byte after which the connection is
    /// considered dead, then resumed or reported. Default: 60 s.
    pub idle_timeout: Duration,
    /// Number of retries allowed since the download last made progress.
    /// Default: 5.
    pub max_retries: u32,
    /// The `User-Agent` header sent with every request.
    pub user_agent: String,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_retries: 5,
            user_agent: concat!("olive2022/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Progress of a download, reported to the caller (which draws the bar);
/// one trait for every transfer (its home is the `transfer` crate).
pub use transfer::{NoProgress, Progress};

/// Downloads `url` (`http` or `https`) into `dest`, which is created or
/// truncated, and returns the number of bytes written.
///
/// Broken and stalled connections are resumed as described in the
/// [module documentation](self); `progress` is told about every byte.
pub fn fetch_to_file(
    url: &str,
    dest: &Path,
    options: &FetchOptions,
    progress: &mut dyn Progress,
) -> Result<u64, FetchError> {
    let url = parse_url(url)?;
    let client = build_client(options)?;
    let mut file = File::create(dest).map_err(|error| io_error(dest, error))?;
    let mut origin = Package {
        client,
        shown: redact(&url),
        url,
        path: dest,
        idle: options.idle_timeout,
    };
    let retries = Retries::new(options.max_retries, BACKOFF);
    let started = std::time::Instant::now();
    tracing::debug!(url = %origin.shown, dest = %dest.display(), "package download started");
    let received = RangedGet::new(retries).run(&mut origin, &mut file, progress)?;
    file.sync_all().map_err(|error| io_error(dest, error))?;
    tracing::info!(
        url = %origin.shown,
        bytes = received,
        seconds = started.elapsed().as_secs_f64(),
        "package downloaded"
    );
    Ok(received)
}

/// The server of a package, as the ranged GET sees it.
struct Package<'a> {
    client: Client,
    url: Url,
    /// The URL as messages show it.
    shown: String,
    /// The destination file, for messages.
    path: &'a Path,
    idle: Duration,
}

impl Origin for Package<'_> {
    type Error = FetchError;

    fn send(&mut self, resume: &Resume) -> Result<Response, FetchError> {
        resume
            .apply(self.client.get(self.url.clone()))
            .send()
            .map_err(|error| request_error(&self.shown, self.idle, resume.from(), &error))
    }

    fn fail(&mut self, error: RangedError) -> FetchError {
        from_ranged(&self.shown, self.idle, self.path, error)
    }

    /// Transient failures, once the size is known: without it nothing
    /// can be resumed, and a first answer that fails is reported as is.
    fn retryable(&self, error: &FetchError, at: &Position) -> bool {
        let transient = match error {
            FetchError::Dns { .. }
            | FetchError::Connect { .. }
            | FetchError::Request { .. }
            | FetchError::Timeout { .. }
            | FetchError::Interrupted { .. }
            | FetchError::Truncated { .. } => true,
            FetchError::Status { status, .. } => matches!(status, 408 | 429 | 500..=504),
            _ => false,
        };
        transient && at.started && at.total.is_some()
    }

    fn give_up(&self, failures: u32, last: FetchError) -> FetchError {
        FetchError::RetriesExhausted {
            url: self.shown.clone(),
            failures,
            last: Box::new(last),
        }
    }
}
