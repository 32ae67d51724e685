//! [`RangedError`]: why one attempt of a ranged GET failed, before the
//! caller ([`Origin::fail`](super::Origin::fail)) puts it in its own words.
//!
//! Messages name no URL (the caller adds its own, redacted); the answers
//! the download cannot use keep their [`Response`], so the caller can read
//! the server's explanation from the body.

use std::io;

use reqwest::blocking::Response;

/// A failure of a ranged GET (or of one of its attempts).
#[derive(Debug, thiserror::Error)]
pub enum RangedError {
    /// [`Progress::cancelled`](crate::Progress::cancelled) asked to stop.
    #[error("transfer cancelled")]
    Cancelled,
    /// The server answered with a status the download cannot use.
    #[error("HTTP {}", .response.status())]
    Status {
        /// The answer, its body unread.
        response: Box<Response>,
    },
    /// A `206 Partial Content` to a request without `Range`.
    #[error("206 Partial Content without a Range request")]
    UnaskedPartial {
        /// The answer, its body unread.
        response: Box<Response>,
    },
    /// A `416 Range Not Satisfiable` to a resumed request.
    #[error("the server refused to resume at byte {received} (416 Range Not Satisfiable)")]
    RangeRefused {
        /// The first byte asked for.
        received: u64,
        /// The answer, its body unread.
        response: Box<Response>,
    },
    /// A `206` whose `Content-Range` or `Content-Length` does not fit the
    /// request.
    #[error("unusable answer to a request from byte {received}: {detail}")]
    BadRange {
        /// The first byte asked for.
        received: u64,
        /// What is wrong, e.g. ``Content-Range `bytes 5-9/10` ``.
        detail: String,
    },
    /// The size announced now differs from the first answer's.
    #[error("its size went from {} to {}", show_size(*.before), show_size(*.after))]
    SizeChanged {
        /// The size of the first answer.
        before: Option<u64>,
        /// The size announced now.
        after: Option<u64>,
    },
    /// A resumed answer has another strong ETag than the first answer.
    #[error("its ETag changed")]
    EtagChanged,
    /// Nothing arrived for the client's idle timeout.
    #[error("no data received after {received} bytes")]
    Timeout {
        /// Bytes received so far.
        received: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The connection broke while the body was read.
    #[error("the connection broke after {received} bytes")]
    Interrupted {
        /// Bytes received so far.
        received: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The server closed before sending all announced bytes.
    #[error("fewer bytes than announced: got {received} of {expected} bytes")]
    Truncated {
        /// Bytes received so far.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The server sent more bytes than it announced.
    #[error("more bytes than announced ({expected} bytes)")]
    TooLong {
        /// Bytes announced.
        expected: u64,
    },
    /// The [`Sink`](super::Sink) could not take the bytes.
    #[error("cannot write the download")]
    Write(#[source] io::Error),
}

/// A size for messages: `123 bytes` or `unknown`.
fn show_size(size: Option<u64>) -> String {
    size.map_or_else(|| "unknown".to_owned(), |size| format!("{size} bytes"))
}
