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

use std::error::Error as StdError;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url, redirect};
use transfer::{Backoff, Retries};

/// Size of the pieces the body is streamed in.
const CHUNK_SIZE: usize = 256 * 1024;
/// Maximum number of redirects followed for one request.
const MAX_REDIRECTS: usize = 10;
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

/// Why a download failed. URLs in messages never show a query string.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// [`Progress::cancelled`] asked to stop.
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
    let file = File::create(dest).map_err(|error| io_error(dest, error))?;
    let mut download = Download::new(client, url, file, dest, options.idle_timeout);
    download.run(options.max_retries, progress)?;
    download.finish()
}

/// Parses `url` and checks that its scheme is `http` or `https`.
fn parse_url(url: &str) -> Result<Url, FetchError> {
    let url = Url::parse(url).map_err(|error| FetchError::InvalidUrl {
        reason: error.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err(FetchError::InvalidUrl {
            reason: "no host".to_owned(),
        }),
        scheme => Err(FetchError::UnsupportedScheme {
            scheme: scheme.to_owned(),
        }),
    }
}

/// The URL as shown in messages: no credentials, query or fragment.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // These only fail for URLs that cannot have credentials anyway.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Builds the HTTP client: timeouts, user agent, redirect policy.
///
/// The blocking client applies its `timeout` to the wait for the response
/// headers and to every single read of the body: it is our idle timeout.
fn build_client(options: &FetchOptions) -> Result<Client, FetchError> {
    Client::builder()
        .user_agent(options.user_agent.as_str())
        .connect_timeout(options.connect_timeout)
        .timeout(options.idle_timeout)
        .redirect(redirect_policy())
        .referer(false)
        .build()
        .map_err(|error| FetchError::Client {
            detail: describe(&error),
        })
}

/// Follows at most [`MAX_REDIRECTS`] redirects, only to `http(s)`, and
/// never from `https` to `http`.
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|url| url.scheme() == "https");
        let scheme = attempt.url().scheme().to_owned();
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if scheme != "http" && scheme != "https" {
            attempt.error(format!("redirect to an unsupported `{scheme}:` URL"))
        } else if from_https && scheme == "http" {
            attempt.error("refusing to follow a redirect from https to http")
        } else {
            attempt.follow()
        }
    })
}

/// Describes the causes of `error`, without URLs' query strings.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let text = join_messages(chain_from(error.source()));
    if text.is_empty() {
        redacted_text(error)
    } else {
        text
    }
}

/// `first` and its causes, outermost first.
fn chain_from<'a>(
    first: Option<&'a (dyn StdError + 'static)>,
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(first, |cause: &&'a (dyn StdError + 'static)| {
        (*cause).source()
    })
}

/// Joins the messages of a chain of errors, skipping repetitions.
fn join_messages<'a>(chain: impl Iterator<Item = &'a (dyn StdError + 'static)>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in chain {
        let text = redacted_text(cause);
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The message of one error; the URL of a `reqwest::Error` is redacted.
fn redacted_text(error: &(dyn StdError + 'static)) -> String {
    let text = error.to_string();
    match error.downcast_ref::<reqwest::Error>().and_then(|e| e.url()) {
        Some(url) => text.replace(url.as_str(), &redact(url)),
        None => text,
    }
}

/// The errors of the chain of an I/O error from the body, outermost first.
///
/// `io::Error::source` skips the error it wraps, so that one is added here.
fn io_chain<'a>(error: &'a io::Error) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let first: &'a (dyn StdError + 'static) = match error.get_ref() {
        Some(inner) => inner,
        None => error,
    };
    chain_from(Some(first))
}

/// Whether an I/O error from the body (or one of its causes) is a timeout.
fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
        || io_chain(error).any(|cause| {
            cause
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
                || cause
                    .downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_timeout)
        })
}

/// Whether an I/O error from the body means the connection closed early.
fn is_early_eof(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::UnexpectedEof
        || io_chain(error).any(|cause| {
            cause
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
        })
}

/// Describes an I/O error from the body and its causes, without URLs'
/// query strings.
fn describe_io(error: &io::Error) -> String {
    join_messages(io_chain(error))
}

/// Wraps an I/O error on the destination file.
fn io_error(path: &Path, error: io::Error) -> FetchError {
    FetchError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Parses `Content-Range: bytes <start>-<end>/<total>`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// The value of a header as text, if present and readable.
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The `Content-Length` announced by the server, if any.
///
/// Read from the header itself so that a chunked body that also announces a
/// length is held to it.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    header_text(headers, header::CONTENT_LENGTH).and_then(|text| text.trim().parse().ok())
}

/// The state of one download.
struct Download<'a> {
    client: Client,
    url: Url,
    shown: String,
    file: File,
    path: &'a Path,
    idle: Duration,
    buffer: Vec<u8>,
    /// Bytes written to the file so far.
    received: u64,
    /// The total size, once known from the first response.
    total: Option<u64>,
    /// Whether a first response was accepted.
    started: bool,
    /// Whether the whole body was received.
    complete: bool,
    /// A strong ETag of the file, if the server gave one.
    etag: Option<HeaderValue>,
    /// The validator sent in `If-Range` (ETag or Last-Modified).
    validator: Option<HeaderValue>,
}

impl<'a> Download<'a> {
    /// A download of `url` into `file` (at `path`), nothing received yet.
    fn new(client: Client, url: Url, file: File, path: &'a Path, idle: Duration) -> Self {
        Download {
            client,
            shown: redact(&url),
            url,
            file,
            path,
            idle,
            buffer: vec![0; CHUNK_SIZE],
            received: 0,
            total: None,
            started: false,
            complete: false,
            etag: None,
            validator: None,
        }
    }

    /// Makes attempts until the download is complete or hopeless.
    fn run(&mut self, max_retries: u32, progress: &mut dyn Progress) -> Result<(), FetchError> {
        let mut best: u64 = 0;
        let mut retries = Retries::new(max_retries, BACKOFF);
        while !self.complete {
            let Err(error) = self.attempt(progress) else {
                continue;
            };
            if self.received > best {
                retries.progressed();
            }
            best = best.max(self.received);
            if !self.can_retry(&error) {
                return Err(error);
            }
            let attempt = match retries.failed() {
                Ok(attempt) => attempt,
                Err(failures) => {
                    return Err(FetchError::RetriesExhausted {
                        url: self.shown.clone(),
                        failures,
                        last: Box::new(error),
                    });
                }
            };
            if progress.cancelled() {
                return Err(FetchError::Cancelled);
            }
            progress.retry(attempt, &error);
            retries.pause();
        }
        Ok(())
    }

    /// Whether `error` is transient and the download can be resumed.
    fn can_retry(&self, error: &FetchError) -> bool {
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
        transient && self.started && self.total.is_some()
    }

    /// One request: sends it, checks the answer, copies the body.
    fn attempt(&mut self, progress: &mut dyn Progress) -> Result<(), FetchError> {
        let response = self.send()?;
        let expected = self.accept(&response, progress)?;
        self.copy_body(response, expected, progress)?;
        self.complete = self.total.is_none_or(|total| self.received >= total);
        Ok(())
    }

    /// Sends a GET, with `Range` and `If-Range` when resuming.
    fn send(&self) -> Result<Response, FetchError> {
        let mut request = self.client.get(self.url.clone());
        if self.received > 0 {
            request = request.header(header::RANGE, format!("bytes={}-", self.received));
            if let Some(validator) = &self.validator {
                request = request.header(header::IF_RANGE, validator.clone());
            }
        }
        request.send().map_err(|error| self.request_error(&error))
    }

    /// Classifies an error of the client.
    fn request_error(&self, error: &reqwest::Error) -> FetchError {
        let url = self.shown.clone();
        let detail = describe(error);
        if error.is_timeout() {
            FetchError::Timeout {
                url,
                idle: self.idle,
                received: self.received,
            }
        } else if error.is_redirect() {
            FetchError::Redirect { url, detail }
        } else if error.is_dns() {
            FetchError::Dns { url, detail }
        } else if error.is_connect() {
            FetchError::Connect { url, detail }
        } else {
            FetchError::Request { url, detail }
        }
    }

    /// Checks the status and headers of a response; returns the number of
    /// body bytes it must carry, if known.
    fn accept(
        &mut self,
        response: &Response,
        progress: &mut dyn Progress,
    ) -> Result<Option<u64>, FetchError> {
        match response.status() {
            StatusCode::OK => self.accept_full(response.headers(), progress),
            StatusCode::PARTIAL_CONTENT if self.received > 0 => {
                self.accept_partial(response.headers())
            }
            StatusCode::RANGE_NOT_SATISFIABLE if self.received > 0 => Err(self.changed(format!(
                "the server refused to resume at byte {} (416 Range Not Satisfiable)",
                self.received
            ))),
            StatusCode::PARTIAL_CONTENT => {
                Err(self.bad_range("206 Partial Content without a Range request".to_owned()))
            }
            status => Err(FetchError::Status {
                url: self.shown.clone(),
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
            }),
        }
    }

    /// Accepts a `200 OK`: the first response, or a restart from byte 0.
    fn accept_full(
        &mut self,
        headers: &HeaderMap,
        progress: &mut dyn Progress,
    ) -> Result<Option<u64>, FetchError> {
        let length = announced_length(headers);
        if self.started {
            if length != self.total {
                return Err(self.changed(format!(
                    "its size went from {} to {}",
                    show_size(self.total),
                    show_size(length)
                )));
            }
            self.truncate()?;
        }
        self.started = true;
        self.total = length;
        self.remember_validator(headers);
        progress.start(length);
        Ok(length)
    }

    /// Accepts a `206 Partial Content` answering our `Range` request.
    fn accept_partial(&mut self, headers: &HeaderMap) -> Result<Option<u64>, FetchError> {
        let value = header_text(headers, header::CONTENT_RANGE).unwrap_or("");
        let Some((start, end, total)) = parse_content_range(value) else {
            return Err(self.bad_range(format!("unusable Content-Range `{value}`")));
        };
        if Some(total) != self.total {
            return Err(self.changed(format!(
                "its size went from {} to {total} bytes",
                show_size(self.total)
            )));
        }
        if start != self.received || end < start || end >= total {
            return Err(self.bad_range(format!("Content-Range `{value}`")));
        }
        let expected = end - start + 1;
        if announced_length(headers).is_some_and(|length| length != expected) {
            return Err(self.bad_range(format!("Content-Length does not match `{value}`")));
        }
        self.check_etag(headers)?;
        Ok(Some(expected))
    }

    /// Remembers the ETag and the validator to send in `If-Range`.
    fn remember_validator(&mut self, headers: &HeaderMap) {
        self.etag = headers
            .get(header::ETAG)
            .filter(|etag| !etag.as_bytes().starts_with(b"W/"))
            .cloned();
        self.validator = self
            .etag
            .clone()
            .or_else(|| headers.get(header::LAST_MODIFIED).cloned());
    }

    /// Fails if a partial response has another strong ETag than the file.
    fn check_etag(&self, headers: &HeaderMap) -> Result<(), FetchError> {
        match (&self.etag, headers.get(header::ETAG)) {
            (Some(ours), Some(theirs)) if ours != theirs => {
                Err(self.changed("its ETag changed".to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Empties the file to start over from byte 0.
    fn truncate(&mut self) -> Result<(), FetchError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .map_err(|error| io_error(self.path, error))?;
        self.received = 0;
        Ok(())
    }

    /// Streams the body into the file, holding it to `expected` bytes.
    fn copy_body(
        &mut self,
        mut response: Response,
        expected: Option<u64>,
        progress: &mut dyn Progress,
    ) -> Result<(), FetchError> {
        let mut got = 0u64;
        loop {
            let count = match response.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) => return Err(self.read_error(&error)),
            };
            if expected.is_some_and(|expected| got + count as u64 > expected) {
                return Err(self.too_long());
            }
            self.write_piece(count)?;
            got += count as u64;
            progress.advance(count as u64);
            if progress.cancelled() {
                return Err(FetchError::Cancelled);
            }
        }
        if expected.is_some_and(|expected| got < expected) {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Appends the first `count` bytes of the buffer to the file.
    fn write_piece(&mut self, count: usize) -> Result<(), FetchError> {
        let piece = self.buffer.get(..count).unwrap_or_default();
        self.file
            .write_all(piece)
            .map_err(|error| io_error(self.path, error))?;
        self.received += count as u64;
        Ok(())
    }

    /// Classifies an error while reading the body.
    fn read_error(&self, error: &io::Error) -> FetchError {
        if is_timeout(error) {
            FetchError::Timeout {
                url: self.shown.clone(),
                idle: self.idle,
                received: self.received,
            }
        } else if is_early_eof(error) && self.total.is_some() {
            self.truncated()
        } else {
            FetchError::Interrupted {
                url: self.shown.clone(),
                received: self.received,
                detail: describe_io(error),
            }
        }
    }

    /// Checks the final size and flushes the file to disk.
    fn finish(self) -> Result<u64, FetchError> {
        match self.total {
            Some(total) if self.received < total => return Err(self.truncated()),
            Some(total) if self.received > total => return Err(self.too_long()),
            _ => {}
        }
        self.file
            .sync_all()
            .map_err(|error| io_error(self.path, error))?;
        Ok(self.received)
    }

    /// The server closed before sending everything.
    fn truncated(&self) -> FetchError {
        FetchError::Truncated {
            url: self.shown.clone(),
            received: self.received,
            expected: self.total.unwrap_or(self.received),
        }
    }

    /// The server sent more than announced.
    fn too_long(&self) -> FetchError {
        FetchError::TooLong {
            url: self.shown.clone(),
            expected: self.total.unwrap_or(self.received),
        }
    }

    /// The remote file changed.
    fn changed(&self, detail: String) -> FetchError {
        FetchError::Changed {
            url: self.shown.clone(),
            detail,
        }
    }

    /// The answer to a range request is unusable.
    fn bad_range(&self, detail: String) -> FetchError {
        FetchError::BadRange {
            url: self.shown.clone(),
            received: self.received,
            detail,
        }
    }
}

/// A size for messages: `123 bytes` or `unknown`.
fn show_size(size: Option<u64>) -> String {
    size.map_or_else(|| "unknown".to_owned(), |size| format!("{size} bytes"))
}
