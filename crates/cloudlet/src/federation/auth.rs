//! The token of `--cloudlet-token`: a reporting cloudlet sends
//! `Authorization: Bearer TOKEN` with its `POST` and `DELETE` on
//! `/api/v1/cloudlets/`; without the right one, 401.
//!
//! The token never appears in logs or `Debug` output, and is compared in
//! time that does not depend on where the first difference is.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::problems::ApiError;

/// The longest token accepted in the settings (a header line stays short).
pub const MAX_TOKEN: usize = 512;

/// A shared secret, shown as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// `token`, unless it is empty, too long, or not printable ASCII
    /// without spaces (what a header value can carry unchanged).
    pub fn new(token: &str) -> Result<BearerToken, &'static str> {
        if token.is_empty() {
            return Err("the cloudlet token is empty");
        }
        if token.len() > MAX_TOKEN {
            return Err("the cloudlet token is longer than 512 bytes");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the cloudlet token must be printable ASCII without spaces");
        }
        Ok(BearerToken(token.to_owned()))
    }

    /// The token, to send in a header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of the
    /// position of the first difference.
    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let length_differs = u8::from(expected.len() != presented.len());
        let bytes_differ = expected
            .iter()
            .zip(presented.iter().cycle())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (length_differs | bytes_differ) == 0 && !presented.is_empty()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Lets the request through when no token is required or when its
/// `Authorization` header carries the token; else 401.
pub fn authorize(token: Option<&BearerToken>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let presented = headers
        .get(AUTHORIZATION)
        .map(|value| value.as_bytes())
        .and_then(|value| value.strip_prefix(b"Bearer "));
    match presented {
        None => Err(ApiError::Unauthorized(
            "this tier 1 requires `Authorization: Bearer <cloudlet token>`",
        )),
        Some(presented) if token.matches(presented.trim_ascii()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("the cloudlet token is wrong")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_right_token_passes() {
        let token = BearerToken::new("s3cret-token").unwrap();
        assert!(authorize(None, &HeaderMap::new()).is_ok());
        assert!(authorize(Some(&token), &with("Bearer s3cret-token")).is_ok());
        for wrong in [
            "Bearer s3cret-tokeN",
            "Bearer s3cret",
            "Bearer ",
            "Basic s3cret-token",
        ] {
            assert!(authorize(Some(&token), &with(wrong)).is_err(), "{wrong}");
        }
        assert!(authorize(Some(&token), &HeaderMap::new()).is_err());
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
        assert!(BearerToken::new("").is_err());
        assert!(BearerToken::new("has space").is_err());
    }
}
