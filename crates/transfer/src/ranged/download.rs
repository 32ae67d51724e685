//! The state of one ranged GET, and the checks of each answer.
//!
//! An attempt sends the request for what is missing, accepts the answer (a
//! `200` that starts over, or a `206` that continues exactly where the sink
//! stands) and copies its body, held to the length it announced. The retry
//! loop around the attempts is [`RangedGet::run`](super::RangedGet::run).

use std::io::{self, Read};

use reqwest::StatusCode;
use reqwest::blocking::Response;
use reqwest::header::{self, HeaderMap, HeaderValue};

use super::headers::{
    announced_length, header_text, is_early_eof, is_timeout, parse_content_range,
};
use super::{CHUNK_SIZE, Origin, Position, RangedError, Resume, Sink};
use crate::Progress;

/// What the body of an accepted answer must be.
struct Body {
    /// Its length, if known.
    expected: Option<u64>,
    /// Its first bytes that the sink already has.
    skip: u64,
}

/// One download: where it stands, and what the first answer promised.
pub(super) struct Download<'s> {
    sink: &'s mut dyn Sink,
    validators: bool,
    buffer: Vec<u8>,
    at: Position,
    /// Whether the whole body was received.
    complete: bool,
    /// A strong ETag of the resource, if the server gave one.
    etag: Option<HeaderValue>,
    /// The validator sent in `If-Range` (ETag or Last-Modified).
    validator: Option<HeaderValue>,
}

impl<'s> Download<'s> {
    /// A download into `sink`, nothing received yet.
    pub(super) fn new(sink: &'s mut dyn Sink, validators: bool) -> Self {
        Download {
            sink,
            validators,
            buffer: vec![0; CHUNK_SIZE],
            at: Position::default(),
            complete: false,
            etag: None,
            validator: None,
        }
    }

    /// Where the download stands.
    pub(super) fn position(&self) -> Position {
        self.at
    }

    /// Whether the whole body arrived.
    pub(super) fn is_complete(&self) -> bool {
        self.complete
    }

    /// One request: sends it, checks the answer, copies the body.
    pub(super) fn attempt<O: Origin>(
        &mut self,
        origin: &mut O,
        progress: &mut dyn Progress,
    ) -> Result<(), O::Error> {
        let response = origin.send(&self.resume())?;
        self.receive(response, progress)
            .map_err(|error| origin.fail(error))?;
        self.complete = self.at.total.is_none_or(|total| self.at.received >= total);
        Ok(())
    }

    /// Checks the final size.
    pub(super) fn finish(self) -> Result<u64, RangedError> {
        match self.at.total {
            Some(total) if self.at.received < total => Err(self.truncated()),
            Some(total) if self.at.received > total => Err(self.too_long()),
            _ => Ok(self.at.received),
        }
    }

    /// What the next request asks for.
    fn resume(&self) -> Resume {
        Resume {
            from: self.at.received,
            validator: self.validator.clone().filter(|_| self.validators),
        }
    }

    /// Accepts an answer and copies its body.
    fn receive(
        &mut self,
        response: Response,
        progress: &mut dyn Progress,
    ) -> Result<(), RangedError> {
        let resuming = self.at.received > 0;
        let body = match response.status() {
            StatusCode::OK => self.accept_full(response.headers(), progress)?,
            StatusCode::PARTIAL_CONTENT if resuming => self.accept_partial(response.headers())?,
            StatusCode::RANGE_NOT_SATISFIABLE if resuming => {
                return Err(RangedError::RangeRefused {
                    received: self.at.received,
                    response: Box::new(response),
                });
            }
            StatusCode::PARTIAL_CONTENT => {
                return Err(RangedError::UnaskedPartial {
                    response: Box::new(response),
                });
            }
            _ => {
                return Err(RangedError::Status {
                    response: Box::new(response),
                });
            }
        };
        self.copy_body(response, body, progress)
    }

    /// Accepts a `200 OK`: the first answer, or one that ignored the range.
    fn accept_full(
        &mut self,
        headers: &HeaderMap,
        progress: &mut dyn Progress,
    ) -> Result<Body, RangedError> {
        let length = announced_length(headers);
        let mut skip = 0;
        if self.at.started {
            if length != self.at.total {
                return Err(RangedError::SizeChanged {
                    before: self.at.total,
                    after: length,
                });
            }
            if self.sink.rewind().map_err(RangedError::Write)? {
                self.at.received = 0;
                progress.start(length);
            } else {
                skip = self.at.received;
            }
        } else {
            progress.start(length);
        }
        self.at.started = true;
        self.at.total = length;
        self.remember_validator(headers);
        Ok(Body {
            expected: length,
            skip,
        })
    }

    /// Accepts a `206 Partial Content` answering our `Range` request.
    fn accept_partial(&mut self, headers: &HeaderMap) -> Result<Body, RangedError> {
        let value = header_text(headers, header::CONTENT_RANGE).unwrap_or("");
        let Some(range) = parse_content_range(value) else {
            return Err(self.bad_range(format!("unusable Content-Range `{value}`")));
        };
        if Some(range.total) != self.at.total {
            return Err(RangedError::SizeChanged {
                before: self.at.total,
                after: Some(range.total),
            });
        }
        if range.start != self.at.received || range.end < range.start || range.end >= range.total {
            return Err(self.bad_range(format!("Content-Range `{value}`")));
        }
        let expected = range.end - range.start + 1;
        if announced_length(headers).is_some_and(|length| length != expected) {
            return Err(self.bad_range(format!("Content-Length does not match `{value}`")));
        }
        if self.validators {
            self.check_etag(headers)?;
        }
        Ok(Body {
            expected: Some(expected),
            skip: 0,
        })
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

    /// Fails if a partial answer has another strong ETag than the first.
    fn check_etag(&self, headers: &HeaderMap) -> Result<(), RangedError> {
        match (&self.etag, headers.get(header::ETAG)) {
            (Some(ours), Some(theirs)) if ours != theirs => Err(RangedError::EtagChanged),
            _ => Ok(()),
        }
    }

    /// Streams the body into the sink, holding it to `body.expected` bytes.
    fn copy_body(
        &mut self,
        mut response: Response,
        body: Body,
        progress: &mut dyn Progress,
    ) -> Result<(), RangedError> {
        let mut got = 0u64;
        let mut skip = body.skip;
        loop {
            let count = match response.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.read_error(error)),
            };
            if body
                .expected
                .is_some_and(|expected| got + count as u64 > expected)
            {
                return Err(self.too_long());
            }
            got += count as u64;
            let dropped = usize::try_from(skip).unwrap_or(usize::MAX).min(count);
            skip -= dropped as u64;
            let piece = self.buffer.get(dropped..count).unwrap_or_default();
            if !piece.is_empty() {
                self.sink.write_piece(piece).map_err(RangedError::Write)?;
                self.at.received += piece.len() as u64;
                progress.advance(piece.len() as u64);
            }
            if progress.cancelled() {
                return Err(RangedError::Cancelled);
            }
        }
        if body.expected.is_some_and(|expected| got < expected) {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Classifies an error while reading the body.
    fn read_error(&self, source: io::Error) -> RangedError {
        let received = self.at.received;
        if is_timeout(&source) {
            RangedError::Timeout { received, source }
        } else if is_early_eof(&source) && self.at.total.is_some() {
            self.truncated()
        } else {
            RangedError::Interrupted { received, source }
        }
    }

    /// The server closed before sending everything.
    fn truncated(&self) -> RangedError {
        RangedError::Truncated {
            received: self.at.received,
            expected: self.at.total.unwrap_or(self.at.received),
        }
    }

    /// The server sent more than announced.
    fn too_long(&self) -> RangedError {
        RangedError::TooLong {
            expected: self.at.total.unwrap_or(self.at.received),
        }
    }

    /// The answer to a range request is unusable.
    fn bad_range(&self, detail: String) -> RangedError {
        RangedError::BadRange {
            received: self.at.received,
            detail,
        }
    }
}
