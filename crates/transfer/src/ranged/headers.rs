//! Reading what a ranged GET depends on: `Content-Range`, the announced
//! `Content-Length`, and what an I/O error from the body means (an idle
//! timeout, a connection closed early).

use std::error::Error;
use std::io;

use reqwest::header::{self, HeaderMap, HeaderName};

/// A `Content-Range: bytes <start>-<end>/<total>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ContentRange {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) total: u64,
}

/// Parses `Content-Range: bytes <start>-<end>/<total>`.
pub(super) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some(ContentRange {
        start: start.trim().parse().ok()?,
        end: end.trim().parse().ok()?,
        total: total.trim().parse().ok()?,
    })
}

/// The value of a header as text, if present and readable.
pub(super) fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The `Content-Length` announced by the server, if any.
///
/// Read from the header itself so that a chunked body that also announces a
/// length is held to it.
pub(super) fn announced_length(headers: &HeaderMap) -> Option<u64> {
    header_text(headers, header::CONTENT_LENGTH).and_then(|text| text.trim().parse().ok())
}

/// The errors of the chain of an I/O error from a body, outermost first.
///
/// `io::Error::source` skips the error it wraps, so that one is added here.
pub fn io_causes<'a>(error: &'a io::Error) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let first: &'a (dyn Error + 'static) = match error.get_ref() {
        Some(inner) => inner,
        None => error,
    };
    std::iter::successors(Some(first), |cause: &&'a (dyn Error + 'static)| {
        (*cause).source()
    })
}

/// Whether an I/O error from the body (or one of its causes) is a timeout.
pub(super) fn is_timeout(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
        || io_causes(error).any(|cause| {
            cause
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
                || cause
                    .downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_timeout)
        })
}

/// Whether an I/O error from the body means the connection closed early.
pub(super) fn is_early_eof(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::UnexpectedEof
        || io_causes(error).any(|cause| {
            cause
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 5-9/10"),
            Some(ContentRange {
                start: 5,
                end: 9,
                total: 10
            })
        );
        assert_eq!(
            parse_content_range(" bytes 0 - 0 / 1 ").map(|r| r.total),
            Some(1)
        );
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn read_errors_are_classified_through_their_causes() {
        let timeout = io::Error::other(io::Error::from(io::ErrorKind::TimedOut));
        assert!(is_timeout(&timeout) && !is_early_eof(&timeout));
        let eof = io::Error::other(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert!(is_early_eof(&eof) && !is_timeout(&eof));
        assert_eq!(io_causes(&eof).count(), 1);
    }
}
