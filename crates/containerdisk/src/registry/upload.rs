//! Pushing a blob: chunked upload, resumed after a failure.
//!
//! `HEAD` skips a blob the registry already has; otherwise
//! `POST …/blobs/uploads/` opens an upload, `PATCH` sends it in chunks read
//! from the [`BlobSource`] (one chunk in memory at a time), and
//! `PUT <location>&digest=…` closes it. A chunk that fails (connection
//! error, timeout, 5xx) is retried after a growing pause, from the offset the
//! registry reports it holds (`GET <location>` → `Range: 0-N`), or from 0
//! with a new upload when the registry dropped the upload (the CNCF registry
//! does that whenever a chunk arrived in part). The push gives up after
//! [`RegistryOptions::max_retries`](super::RegistryOptions::max_retries) failures in a row without new bytes
//! stored.

use std::time::Duration;

use reqwest::header;
use reqwest::{Method, StatusCode, Url};

use super::http::header_str;
use super::retry::Retries;
use super::{PushProgress, Registry, RegistryError, check_repository, scope};
use crate::BlobSource;
use crate::digest::Digest;

/// The slowest upload rate a chunk request is given time for, on top of
/// [`RegistryOptions::idle_timeout`](super::RegistryOptions::idle_timeout). A stalled connection is caught sooner
/// by `TCP_USER_TIMEOUT` (set to the idle timeout on Linux).
const MIN_UPLOAD_RATE: u64 = 64 << 10;

/// An open blob upload: where to send the next chunk, and from which offset.
#[derive(Debug, Clone)]
struct Upload {
    location: Url,
    offset: u64,
}

impl Registry {
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
        progress.start(Some(size));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
