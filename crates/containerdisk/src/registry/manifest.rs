//! Manifests: pushing one under a tag, pulling one by tag or digest.
//!
//! A manifest is small (at most [`MANIFEST_MAX`]) and sent or received in
//! one request, retried as a whole. Its digest is checked both ways: the
//! one the registry reports for a pushed manifest, and the bytes of a pulled
//! one against the digest asked for (or the one the registry announces).

use std::io::Read;

use reqwest::header;
use reqwest::{Method, StatusCode};

use super::http::header_str;
use super::retry::Retries;
use super::{MANIFEST_MAX, NoProgress, Registry, RegistryError, check_repository, scope};
use crate::digest::Digest;
use crate::manifest::{PULLABLE_MANIFESTS, declared_media_type};
use crate::reference::is_valid_tag;

impl Registry {
    /// Uploads a manifest under `tag` (or a digest); returns its digest.
    pub fn push_manifest(
        &self,
        repository: &str,
        tag: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<Digest, RegistryError> {
        check_repository(repository)?;
        if !is_valid_tag(tag) && Digest::parse(tag).is_err() {
            return Err(RegistryError::InvalidTag(tag.to_owned()));
        }
        let digest = Digest::of(manifest);
        let url = self.url(&format!("v2/{repository}/manifests/{tag}"))?;
        let mut retries = Retries::new(&self.options);
        loop {
            let request = self
                .request(Method::PUT, url.clone())
                .header(header::CONTENT_TYPE, media_type)
                .body(manifest.to_vec())
                .build();
            let attempt = self
                .send(request, &scope(repository, true))
                .and_then(|response| {
                    if response.status().is_success() {
                        Ok(response)
                    } else {
                        Err(self.status_error(&Method::PUT, &url, response))
                    }
                });
            match attempt {
                Ok(response) => {
                    self.check_digest(response.headers(), &digest)?;
                    return Ok(digest);
                }
                Err(error) => retries.failed(error, &mut NoProgress)?,
            }
        }
    }

    /// Fetches a manifest by tag or digest, accepting the media types in
    /// `accept` (OCI and Docker manifests and indexes when empty). Returns
    /// its media type, bytes and digest; the digest is checked when
    /// `reference` is one.
    pub fn pull_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<(String, Vec<u8>, Digest), RegistryError> {
        check_repository(repository)?;
        let wanted = Digest::parse(reference).ok();
        if wanted.is_none() && !is_valid_tag(reference) {
            return Err(RegistryError::InvalidTag(reference.to_owned()));
        }
        let accept = if accept.is_empty() {
            PULLABLE_MANIFESTS.join(", ")
        } else {
            accept.join(", ")
        };
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let mut retries = Retries::new(&self.options);
        let response = loop {
            let request = self
                .request(Method::GET, url.clone())
                .header(header::ACCEPT, accept.as_str())
                .build();
            let attempt = self
                .send(request, &scope(repository, false))
                .and_then(|response| {
                    if response.status() == StatusCode::OK {
                        Ok(response)
                    } else {
                        Err(self.status_error(&Method::GET, &url, response))
                    }
                });
            match attempt {
                Ok(response) => break response,
                Err(error) => retries.failed(error, &mut NoProgress)?,
            }
        };
        let too_large = || RegistryError::ManifestTooLarge {
            registry: self.name.clone(),
            reference: format!("{repository}:{reference}"),
        };
        if response
            .content_length()
            .is_some_and(|len| len > MANIFEST_MAX)
        {
            return Err(too_large());
        }
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        response
            .take(MANIFEST_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error("reading a manifest", &e))?;
        if bytes.len() as u64 > MANIFEST_MAX {
            return Err(too_large());
        }
        let digest = Digest::of(&bytes);
        let announced = header_str(&headers, "docker-content-digest")
            .map(str::trim)
            .filter(|text| text.starts_with("sha256:"));
        let expected = wanted.as_ref().map(Digest::as_str).or(announced);
        if let Some(expected) = expected
            && expected != digest.as_str()
        {
            return Err(RegistryError::ContentMismatch {
                registry: self.name.clone(),
                what: "a manifest",
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let header_type = header_str(&headers, "content-type")
            .and_then(|value| value.split(';').next())
            .map(str::trim)
            .filter(|value| {
                !value.is_empty() && *value != "application/octet-stream" && *value != "text/plain"
            });
        let media_type = match header_type {
            Some(media_type) => media_type.to_owned(),
            None => declared_media_type(&bytes)
                .ok_or_else(|| self.protocol("sent a manifest without a media type".into()))?,
        };
        Ok((media_type, bytes, digest))
    }
}
