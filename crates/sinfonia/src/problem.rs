//! The error body of every Sinfonia endpoint: `application/problem+json`
//! (RFC 9457) with a `title` and a `detail` a user can act on.
//!
//! Servers write a complete [`Problem`]; a client reads whatever part of one
//! arrived (every field defaults), since the body comes from a server it
//! does not control.

use serde::{Deserialize, Serialize};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An `application/problem+json` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Problem {
    /// `type`: `about:blank` (the status says it all).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// `title`: a short summary, the same for every occurrence.
    pub title: String,
    /// `status`: the HTTP status code.
    pub status: u16,
    /// `detail`: what happened this time, in terms a user can act on.
    pub detail: String,
}

impl Problem {
    /// A problem of type `about:blank`.
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: "about:blank".to_owned(),
            title: title.into(),
            status,
            detail: detail.into(),
        }
    }

    /// The body as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
