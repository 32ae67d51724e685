//! One resumable ranged HTTP GET: a resource into a file or a stream,
//! resumed where a broken or stalled connection left it.
//!
//! [`RangedGet::run`] makes attempts until the whole body arrived or the
//! download is hopeless, and guarantees that:
//!
//! - what reaches the [`Sink`] is exactly the body the server announced:
//!   when the first answer gave a `Content-Length`, an answer that ends with
//!   fewer bytes or would bring more is an error, never a silently
//!   truncated or oversized result;
//! - a resumed request asks for `Range: bytes=N-` (guarded by `If-Range`
//!   with the first answer's strong ETag or `Last-Modified`, unless
//!   [`RangedGet::validators`] is off), and its `206` must carry a
//!   `Content-Range` that starts at N, keeps the size, and agrees with its
//!   `Content-Length`;
//! - a server that ignores the range (a `200` again) is read from byte 0,
//!   but only if the size did not change: a [`Sink`] that can be emptied
//!   starts over (and the [`Progress`] hears `start` again), a stream skips
//!   the bytes it already has;
//! - a read that gets nothing for the client's timeout (the blocking
//!   client applies it to every read: the idle timeout) is a
//!   [`RangedError::Timeout`], resumed like a broken connection;
//! - failures go through one [`Retries`] policy, and [`Progress::cancelled`]
//!   stops the download after any piece and before any retry.
//!
//! The caller is an [`Origin`]: it sends the request (its client, its
//! authentication, its redirects), turns a [`RangedError`] into its own
//! error (its words, its URL redaction), and says which errors are worth
//! another attempt. The state of one download and its checks live in
//! `download`; header parsing and the classification of read errors in
//! `headers`; the error in `error`.

mod download;
mod error;
mod headers;

use std::fs::File;
use std::io::{self, Seek};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{self, HeaderValue};

use self::download::Download;
pub use self::error::RangedError;
pub use self::headers::io_causes;
use crate::{Progress, Retries};

/// Size of the pieces the body is read in (the memory a download holds).
pub const CHUNK_SIZE: usize = 256 * 1024;

/// The server side of a download, as the caller sees it.
pub trait Origin {
    /// The caller's error.
    type Error: std::error::Error + 'static;

    /// Sends the GET, with the headers of `resume` (see [`Resume::apply`]).
    fn send(&mut self, resume: &Resume) -> Result<Response, Self::Error>;

    /// Turns a failure the download found into the caller's error.
    fn fail(&mut self, error: RangedError) -> Self::Error;

    /// Whether `error` is worth another attempt, the download being `at`.
    fn retryable(&self, error: &Self::Error, at: &Position) -> bool;

    /// The error to report after `failures` failed attempts in a row, the
    /// last one being `last`.
    fn give_up(&self, failures: u32, last: Self::Error) -> Self::Error;
}

/// Where a download writes its bytes, in order.
pub trait Sink {
    /// Appends `piece`.
    fn write_piece(&mut self, piece: &[u8]) -> io::Result<()>;

    /// Empties the destination so that a server that ignored the range can
    /// be read again from byte 0. `Ok(false)` when it cannot be emptied (a
    /// stream): the bytes it already has are then skipped.
    fn rewind(&mut self) -> io::Result<bool>;
}

impl Sink for File {
    fn write_piece(&mut self, piece: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, piece)
    }

    fn rewind(&mut self) -> io::Result<bool> {
        self.set_len(0)?;
        Seek::rewind(self)?;
        Ok(true)
    }
}

/// What a request must ask for: the whole resource, or its rest.
#[derive(Debug, Clone)]
pub struct Resume {
    from: u64,
    validator: Option<HeaderValue>,
}

impl Resume {
    /// The first byte asked for (0: the whole resource).
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Adds `Range` (and `If-Range`) to `request` when resuming.
    pub fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        if self.from == 0 {
            return request;
        }
        let request = request.header(header::RANGE, format!("bytes={}-", self.from));
        match &self.validator {
            Some(validator) => request.header(header::IF_RANGE, validator.clone()),
            None => request,
        }
    }
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Bytes written to the sink.
    pub received: u64,
    /// The total size, once a first answer announced it.
    pub total: Option<u64>,
    /// Whether a first answer was accepted.
    pub started: bool,
}

/// A resumable ranged GET: the retry policy and whether to use validators.
#[derive(Debug, Clone)]
pub struct RangedGet {
    retries: Retries,
    validators: bool,
}

impl RangedGet {
    /// A download that retries by `retries`, with validators.
    pub fn new(retries: Retries) -> RangedGet {
        RangedGet {
            retries,
            validators: true,
        }
    }

    /// Whether a resumed request carries `If-Range` and its answer must keep
    /// the first strong ETag (default: yes). Content checked otherwise (by
    /// its digest) can do without, and then survives a CDN whose edges
    /// disagree on ETags.
    pub fn validators(mut self, on: bool) -> RangedGet {
        self.validators = on;
        self
    }

    /// Downloads from `origin` into `sink`, telling `progress` about every
    /// byte; returns the number of bytes received.
    pub fn run<O: Origin>(
        mut self,
        origin: &mut O,
        sink: &mut dyn Sink,
        progress: &mut dyn Progress,
    ) -> Result<u64, O::Error> {
        let mut download = Download::new(sink, self.validators);
        let mut best: u64 = 0;
        while !download.is_complete() {
            let Err(error) = download.attempt(origin, progress) else {
                continue;
            };
            let at = download.position();
            if at.received > best {
                self.retries.progressed();
            }
            best = best.max(at.received);
            if !origin.retryable(&error, &at) {
                tracing::debug!(received = at.received, %error, "download failed; not retried");
                return Err(error);
            }
            let attempt = match self.retries.failed() {
                Ok(attempt) => attempt,
                Err(failures) => {
                    tracing::warn!(failures, received = at.received, %error, "download failed; giving up");
                    return Err(origin.give_up(failures, error));
                }
            };
            if progress.cancelled() {
                return Err(origin.fail(RangedError::Cancelled));
            }
            tracing::info!(attempt, resume_at = at.received, %error, "download interrupted; resuming");
            progress.retry(attempt, &error);
            self.retries.pause();
        }
        download.finish().map_err(|error| origin.fail(error))
    }
}
