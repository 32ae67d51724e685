//! Authentication: the registry's `WWW-Authenticate` challenges, answered
//! (the token requests themselves are in `token`).
//!
//! The first 401 tells which scheme the registry wants: `Basic` with the
//! credentials, or `Bearer` with a token fetched from the challenge's realm
//! (with the credentials as Basic auth, or anonymously), cached per scope.
//! Once the scheme is known, [`Registry::prefetch_token`] gets the token of a
//! new scope before the request, so a chunk upload is not sent twice.
//! Credentials and tokens are only sent to the registry's own origin (and to
//! its token realm), and never appear in errors or `Debug` output.

use std::collections::HashMap;
use std::sync::PoisonError;

use base64::Engine as _;
use reqwest::Url;
use reqwest::blocking::Request;
use reqwest::header::{self, HeaderValue};

use super::{Registry, RegistryError};
use crate::auth::Credentials;

/// A registry's authentication scheme, learnt from its first challenge.
#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// What the client learnt about authenticating: the scheme, and tokens.
#[derive(Default)]
pub(super) struct AuthState {
    scheme: Option<Scheme>,
    /// Bearer tokens by scope.
    tokens: HashMap<String, String>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("scheme", &self.scheme)
            .field("token_scopes", &self.tokens.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What [`Registry::authorize`] attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attached {
    Nothing,
    Basic,
    Bearer,
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl Registry {
    /// With a Bearer registry, fetches the token of a new scope before the
    /// request rather than after a 401 (a chunk is not sent twice).
    pub(super) fn prefetch_token(&self, scope: &str) -> Result<(), RegistryError> {
        let (realm, service) = {
            let state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            match &state.scheme {
                Some(Scheme::Bearer { realm, service }) if !state.tokens.contains_key(scope) => {
                    (realm.clone(), service.clone())
                }
                _ => return Ok(()),
            }
        };
        let token = self.fetch_token(&realm, service.as_deref(), scope)?;
        let mut state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        state.tokens.insert(scope.to_owned(), token);
        Ok(())
    }

    /// Attaches what the registry's scheme asks for (only to its origin).
    pub(super) fn authorize(&self, request: &mut Request, scope: &str) -> Attached {
        if !same_origin(request.url(), &self.base) {
            return Attached::Nothing;
        }
        let state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, attached) = match (&state.scheme, &self.options.credentials) {
            (Some(Scheme::Basic), Some(credentials)) => (basic(credentials), Attached::Basic),
            (Some(Scheme::Bearer { .. }), _) => match state.tokens.get(scope) {
                Some(token) => (format!("Bearer {token}"), Attached::Bearer),
                None => return Attached::Nothing,
            },
            _ => return Attached::Nothing,
        };
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            request.headers_mut().insert(header::AUTHORIZATION, value);
            attached
        } else {
            Attached::Nothing
        }
    }

    /// Learns from a 401's challenges; fetches a token when asked to.
    pub(super) fn answer(
        &self,
        challenges: &[Challenge],
        attached: Attached,
        scope: &str,
        message: &str,
    ) -> Result<(), RegistryError> {
        let bearer = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"));
        let basic_challenge = challenges
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("basic"));
        if let Some(bearer) = bearer {
            let realm = bearer
                .param("realm")
                .ok_or_else(|| self.protocol("sent a Bearer challenge without a realm".into()))?
                .to_owned();
            let service = bearer.param("service").map(str::to_owned);
            let token = self.fetch_token(&realm, service.as_deref(), scope)?;
            let mut state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            state.scheme = Some(Scheme::Bearer { realm, service });
            state.tokens.insert(scope.to_owned(), token);
            Ok(())
        } else if basic_challenge {
            if self.options.credentials.is_none() || attached == Attached::Basic {
                return Err(self.auth_error(401, message.to_owned()));
            }
            let mut state = self.auth.lock().unwrap_or_else(PoisonError::into_inner);
            state.scheme = Some(Scheme::Basic);
            Ok(())
        } else {
            let mut error = self.auth_error(401, message.to_owned());
            if let RegistryError::Auth { message, .. }
            | RegistryError::NoCredentials { message, .. } = &mut error
            {
                let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
                let asked = if schemes.is_empty() {
                    "no WWW-Authenticate challenge".to_owned()
                } else {
                    format!("unsupported authentication {}", schemes.join(", "))
                };
                *message = if message.is_empty() {
                    asked
                } else {
                    format!("{message} ({asked})")
                };
            }
            Err(error)
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn basic(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Parses `WWW-Authenticate`: `Scheme k=v, k="quoted", …` (several
/// challenges possible).
pub(super) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let bytes = value.as_bytes();
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-/".contains(&b);
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b',' || bytes[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && is_token(bytes[i]) {
            i += 1;
        }
        if start == i {
            i += 1; // stray character
            continue;
        }
        let name = &value[start..i];
        let mut j = i;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'=' && !challenges.is_empty() {
            j += 1;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            let mut param = String::new();
            if j < bytes.len() && bytes[j] == b'"' {
                j += 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' && j + 1 < bytes.len() {
                        j += 1;
                    }
                    let ch_len = utf8_len(bytes[j]);
                    param.push_str(&value[j..(j + ch_len).min(bytes.len())]);
                    j += ch_len;
                }
                j += 1; // closing quote
            } else {
                let vstart = j;
                while j < bytes.len() && bytes[j] != b',' {
                    j += 1;
                }
                param.push_str(value[vstart..j].trim());
            }
            if let Some(last) = challenges.last_mut() {
                last.params.push((name.to_owned(), param));
            }
            i = j;
        } else if j < bytes.len() && bytes[j] == b'=' {
            // token68 or garbage before any scheme: skip it
            i = j + 1;
        } else {
            challenges.push(Challenge {
                scheme: name.to_owned(),
                params: Vec::new(),
            });
        }
    }
    challenges
}

/// The length of the UTF-8 sequence starting with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn challenges() {
        let parsed = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].scheme, "Bearer");
        assert_eq!(parsed[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(parsed[0].param("service"), Some("registry.example"));
        assert_eq!(parsed[0].param("scope"), Some("repository:a/b:pull,push"));

        let parsed =
            parse_challenges(r#"Basic realm="my \"realm\"", Bearer realm=x , service = "s""#);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].param("realm"), Some(r#"my "realm""#));
        assert_eq!(parsed[1].param("realm"), Some("x"));
        assert_eq!(parsed[1].param("service"), Some("s"));
        assert_eq!(parse_challenges("Basic").len(), 1);
        assert!(parse_challenges("").is_empty());
    }
}
