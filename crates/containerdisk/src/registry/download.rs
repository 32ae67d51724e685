//! Pulling a blob: streamed to a writer, hashed on the way, resumed after a
//! failure.
//!
//! A download that breaks is resumed with `Range: bytes=N-` from the bytes
//! already written (a server that ignores the range sends the blob again
//! and the start is skipped), so nothing is held in memory beyond one
//! buffer and nothing is written twice. The digest is checked at the end.

use std::io::{Read, Write};

use reqwest::header;
use reqwest::{Method, StatusCode, Url};

use super::http::header_str;
use super::retry::Retries;
use super::{PushProgress, Registry, RegistryError, check_repository, scope};
use crate::digest::{Digest, Hasher};

/// A download in progress.
struct Pull {
    done: u64,
    total: Option<u64>,
    started: bool,
    hasher: Hasher,
    buf: Vec<u8>,
}

impl Registry {
    /// Streams the blob `digest` into `out`, checking its digest; returns its
    /// size. A broken download resumes with a `Range` request. What was
    /// written to `out` is not taken back when the digest does not match.
    pub fn pull_blob(
        &self,
        repository: &str,
        digest: &Digest,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<u64, RegistryError> {
        check_repository(repository)?;
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let mut retries = Retries::new(&self.options);
        let mut pull = Pull {
            done: 0,
            total: None,
            started: false,
            hasher: Hasher::new(),
            buf: vec![0u8; 256 << 10],
        };
        loop {
            let before = pull.done;
            match self.pull_blob_from(&url, repository, &mut pull, out, progress) {
                Ok(()) => break,
                Err(error) => {
                    if pull.done > before {
                        retries.progressed();
                    }
                    retries.failed(error, progress)?;
                }
            }
        }
        let actual = pull.hasher.finish();
        if actual != *digest {
            return Err(RegistryError::ContentMismatch {
                registry: self.name.clone(),
                what: "a blob",
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(pull.done)
    }

    /// One download attempt, from `pull.done` on.
    fn pull_blob_from(
        &self,
        url: &Url,
        repository: &str,
        pull: &mut Pull,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<(), RegistryError> {
        let mut request = self.request(Method::GET, url.clone());
        if pull.done > 0 {
            request = request.header(header::RANGE, format!("bytes={}-", pull.done));
        }
        let mut response = self.send(request.build(), &scope(repository, false))?;
        let mut skip = 0u64;
        match response.status() {
            StatusCode::OK => {
                skip = pull.done; // a server that ignores Range sends it all again
                if !pull.started {
                    pull.started = true;
                    pull.total = response.content_length();
                    progress.start(Some(pull.total.unwrap_or(0)));
                }
            }
            StatusCode::PARTIAL_CONTENT if pull.done > 0 => {
                let start = header_str(response.headers(), "content-range")
                    .and_then(|range| range.trim().strip_prefix("bytes "))
                    .and_then(|range| range.split('-').next())
                    .and_then(|start| start.trim().parse::<u64>().ok());
                if start != Some(pull.done) {
                    return Err(self.protocol("answered a Range request with another range".into()));
                }
            }
            _ => return Err(self.status_error(&Method::GET, url, response)),
        }
        loop {
            let n = match response.read(&mut pull.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error("downloading a blob", &e)),
            };
            let mut piece = &pull.buf[..n];
            if skip > 0 {
                let dropped = usize::try_from(skip).unwrap_or(usize::MAX).min(n);
                skip -= dropped as u64;
                piece = &piece[dropped..];
            }
            if piece.is_empty() {
                continue;
            }
            pull.hasher.update(piece);
            out.write_all(piece)
                .map_err(|source| RegistryError::WriteBlob {
                    registry: self.name.clone(),
                    source,
                })?;
            pull.done += piece.len() as u64;
            progress.advance(piece.len() as u64);
        }
        if let Some(total) = pull.total
            && pull.done != total
        {
            return Err(RegistryError::Transport {
                registry: self.name.clone(),
                detail: format!("a blob download ended after {} of {total} bytes", pull.done),
            });
        }
        Ok(())
    }
}
