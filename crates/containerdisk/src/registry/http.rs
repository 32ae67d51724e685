//! Sending requests to the registry, and reading what comes back.
//!
//! Every request goes through [`Registry::send`], which attaches the
//! registry's authentication and, on a 401, answers the challenge and sends
//! the request once more, so the API calls (`upload`, `manifest`,
//! `download`) never deal with authentication. The helpers for response
//! headers (`Location`, `Docker-Content-Digest`) live here too.

use reqwest::blocking::{Request, Response};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};

use super::challenge::{Challenge, parse_challenges};
use super::error::{describe, error_message};
use super::{Registry, RegistryError};
use crate::digest::Digest;

impl Registry {
    pub(super) fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| self.protocol(format!("cannot build the URL of {path:?}: {e}")))
    }

    pub(super) fn request(&self, method: Method, url: Url) -> reqwest::blocking::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request with the registry's authentication; on a 401,
    /// answers the challenge and sends it once more.
    pub(super) fn send(
        &self,
        request: reqwest::Result<Request>,
        scope: &str,
    ) -> Result<Response, RegistryError> {
        let mut request = request.map_err(|e| {
            self.protocol(format!(
                "cannot build a request: {}",
                describe(&e.without_url())
            ))
        })?;
        self.prefetch_token(scope)?;
        let spare = request.try_clone();
        let attached = self.authorize(&mut request, scope);
        let what = format!("{} {}", request.method(), request.url().path());
        let response = self.execute(request, &what)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let message = error_message(response);
        let Some(mut request) = spare else {
            return Err(self.auth_error(401, message));
        };
        self.answer(&challenges, attached, scope, &message)?;
        self.authorize(&mut request, scope);
        let response = self.execute(request, &what)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.auth_error(401, error_message(response)));
        }
        Ok(response)
    }

    fn execute(&self, request: Request, what: &str) -> Result<Response, RegistryError> {
        self.client
            .execute(request)
            .map_err(|e| self.transport_error(e, what))
    }

    /// The `Location` of a response, resolved against the request URL.
    pub(super) fn location(
        &self,
        response: &Response,
        request_url: &Url,
    ) -> Result<Option<Url>, RegistryError> {
        match header_str(response.headers(), "location") {
            None => Ok(None),
            Some(location) => request_url
                .join(location)
                .map(Some)
                .map_err(|_| self.protocol(format!("sent an invalid Location {location:?}"))),
        }
    }

    /// Checks `Docker-Content-Digest`, when present, against `expected`.
    pub(super) fn check_digest(
        &self,
        headers: &HeaderMap,
        expected: &Digest,
    ) -> Result<(), RegistryError> {
        match header_str(headers, "docker-content-digest").map(str::trim) {
            Some(actual) if actual != expected.as_str() => Err(RegistryError::WrongDigest {
                registry: self.name.clone(),
                expected: expected.clone(),
                actual: actual.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
