//! Reading one byte range of a blob: the request a lazy pull makes when a
//! VM reads bytes that have not arrived yet, and the large sequential
//! requests of its background download.
//!
//! Each range is one `GET` with `Range: bytes=START-END`, sent through
//! [`Registry::send`] (the registry's authentication, a token refreshed on
//! a 401) and following redirects as the client does for whole blobs. The
//! answer must be a `206` for exactly that range; a registry that answers
//! `200` (it ignores ranges) is refused unless the range is the whole blob,
//! because a lazy pull through it would download the blob once per read.
//! The bytes are not checked here: the whole blob's digest is, once the
//! lazy pull has all of it.

use std::io::Read;

use reqwest::{Method, StatusCode};

use super::{Registry, RegistryError, check_repository, scope};
use crate::digest::Digest;

/// The read buffer of a range body.
const BUFFER: usize = 256 << 10;

impl Registry {
    /// Streams bytes `start..end` of blob `digest` (of `blob_size` bytes)
    /// to `sink`, in pieces, in order. A broken body is an error after the
    /// pieces already given; the caller keeps what it got and asks again.
    pub fn read_blob_range(
        &self,
        repository: &str,
        digest: &Digest,
        blob_size: u64,
        (start, end): (u64, u64),
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), RegistryError> {
        check_repository(repository)?;
        if start >= end || end > blob_size {
            return Err(self.protocol(format!(
                "asked for bytes {start}..{end} of a blob of {blob_size} bytes"
            )));
        }
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let request = self
            .request(Method::GET, url.clone())
            .header("range", format!("bytes={start}-{}", end - 1))
            .build();
        let response = self.send(request, &scope(repository, false))?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get("content-range")
                    .and_then(|value| value.to_str().ok())
                    .and_then(parse_content_range);
                if range != Some((start, end - 1)) {
                    return Err(self.protocol(format!(
                        "answered a request for bytes {start}-{} with the range {range:?}",
                        end - 1
                    )));
                }
            }
            StatusCode::OK if start == 0 && end == blob_size => {}
            StatusCode::OK => {
                return Err(self.protocol(
                    "ignores Range requests on blobs (answered 200), so a disk cannot be read \
                     from it before it is downloaded"
                        .into(),
                ));
            }
            _ => return Err(self.status_error(&Method::GET, &url, response)),
        }
        copy_exactly(self, response, end - start, sink)
    }
}

/// Copies exactly `length` bytes of `body` to `sink`.
fn copy_exactly(
    registry: &Registry,
    mut body: impl Read,
    length: u64,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), RegistryError> {
    let mut buffer = vec![0u8; BUFFER];
    let mut left = length;
    while left > 0 {
        let want = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = body
            .read(&mut buffer[..want])
            .map_err(|e| registry.read_error("reading a blob range", &e))?;
        if read == 0 {
            return Err(RegistryError::Transport {
                registry: registry.name.clone(),
                detail: format!(
                    "a blob range ended after {} of {length} bytes",
                    length - left
                ),
            });
        }
        sink(&buffer[..read]).map_err(|source| RegistryError::WriteBlob {
            registry: registry.name.clone(),
            source,
        })?;
        left -= read as u64;
    }
    Ok(())
}

/// `bytes FIRST-LAST/TOTAL` (or `/*`) → `(FIRST, LAST)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, _total) = range.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-1023/4096"), Some((0, 1023)));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9)));
        assert_eq!(parse_content_range("bytes */4096"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
