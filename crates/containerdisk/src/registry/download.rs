//! Pulling a blob: streamed to a writer, hashed on the way, resumed after a
//! failure.
//!
//! The resume is the `transfer` crate's [`RangedGet`]: a download that
//! breaks goes on with `Range: bytes=N-` from the bytes already written (a
//! server that ignores the range sends the blob again and the start is
//! skipped), so nothing is held in memory beyond one buffer and nothing is
//! written twice. No `If-Range`: the digest, checked at the end, is the
//! validator. This file says how a blob request is sent (with the
//! registry's authentication) and what its failures mean.

use std::io::Write;

use reqwest::blocking::Response;
use reqwest::{Method, Url};
use transfer::ranged::{Origin, Position, RangedError, RangedGet, Resume, Sink};

use super::retry::policy;
use super::{PushProgress, Registry, RegistryError, check_repository, scope};
use crate::digest::{Digest, Hasher};

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
        let mut origin = Blob {
            registry: self,
            url: self.url(&format!("v2/{repository}/blobs/{digest}"))?,
            scope: scope(repository, false),
        };
        let mut sink = HashingSink {
            hasher: Hasher::new(),
            out,
        };
        let size = RangedGet::new(policy(&self.options))
            .validators(false)
            .run(&mut origin, &mut sink, &mut SizedProgress(progress))?;
        let actual = sink.hasher.finish();
        if actual != *digest {
            return Err(RegistryError::ContentMismatch {
                registry: self.name.clone(),
                what: "a blob",
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(size)
    }
}

/// A blob of a registry, as the ranged GET sees it.
struct Blob<'a> {
    registry: &'a Registry,
    url: Url,
    scope: String,
}

impl Origin for Blob<'_> {
    type Error = RegistryError;

    fn send(&mut self, resume: &Resume) -> Result<Response, RegistryError> {
        let request = resume.apply(self.registry.request(Method::GET, self.url.clone()));
        self.registry.send(request.build(), &self.scope)
    }

    fn fail(&mut self, error: RangedError) -> RegistryError {
        let registry = self.registry;
        let transport = |detail: String| RegistryError::Transport {
            registry: registry.name.clone(),
            detail,
        };
        match error {
            RangedError::Cancelled => RegistryError::Cancelled,
            RangedError::Status { response }
            | RangedError::UnaskedPartial { response }
            | RangedError::RangeRefused { response, .. } => {
                registry.status_error(&Method::GET, &self.url, *response)
            }
            RangedError::BadRange { .. } => {
                registry.protocol("answered a Range request with another range".into())
            }
            RangedError::SizeChanged { .. } | RangedError::EtagChanged => {
                registry.protocol(format!("changed a blob during its download: {error}"))
            }
            RangedError::Timeout { source, .. } | RangedError::Interrupted { source, .. } => {
                registry.read_error("downloading a blob", &source)
            }
            RangedError::Truncated { received, expected } => transport(format!(
                "a blob download ended after {received} of {expected} bytes"
            )),
            RangedError::TooLong { expected } => transport(format!(
                "a blob download sent more than the {expected} bytes it announced"
            )),
            RangedError::Write(source) => RegistryError::WriteBlob {
                registry: registry.name.clone(),
                source,
            },
        }
    }

    fn retryable(&self, error: &RegistryError, _at: &Position) -> bool {
        error.is_retryable()
    }

    fn give_up(&self, failures: u32, last: RegistryError) -> RegistryError {
        super::retry::gave_up(failures, last)
    }
}

/// Writes a blob to the caller's stream, hashing it on the way.
struct HashingSink<'a> {
    hasher: Hasher,
    out: &'a mut dyn Write,
}

impl Sink for HashingSink<'_> {
    fn write_piece(&mut self, piece: &[u8]) -> std::io::Result<()> {
        self.hasher.update(piece);
        self.out.write_all(piece)
    }

    /// A stream cannot be taken back: a full answer skips what it has.
    fn rewind(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// Passes everything on, but announces an unknown size as 0, as the
/// registry client always did (a registry always sends the length).
struct SizedProgress<'a>(&'a mut dyn PushProgress);

impl PushProgress for SizedProgress<'_> {
    fn start(&mut self, total: Option<u64>) {
        self.0.start(Some(total.unwrap_or(0)));
    }
    fn advance(&mut self, bytes: u64) {
        self.0.advance(bytes);
    }
    fn skipped(&mut self) {
        self.0.skipped();
    }
    fn retry(&mut self, attempt: u32, error: &dyn std::error::Error) {
        self.0.retry(attempt, error);
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}
