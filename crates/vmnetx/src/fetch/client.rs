//! The HTTP side of a package download: which URLs are fetched, the client
//! (timeouts, user agent, redirect policy), and how its errors are told
//! without the secrets a URL may carry.
//!
//! Only `http` and `https` are fetched, at most [`MAX_REDIRECTS`] redirects
//! are followed and never from `https` to `http`; URLs are shown as
//! `scheme://host[:port]/path`.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Url, redirect};
use transfer::ranged::io_causes;

use super::{FetchError, FetchOptions};

/// Maximum number of redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// Parses `url` and checks that its scheme is `http` or `https`.
pub(super) fn parse_url(url: &str) -> Result<Url, FetchError> {
    let url = Url::parse(url).map_err(|error| FetchError::InvalidUrl {
        reason: error.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err(FetchError::InvalidUrl {
            reason: "no host".to_owned(),
        }),
        scheme => Err(FetchError::UnsupportedScheme {
            scheme: scheme.to_owned(),
        }),
    }
}

/// The URL as shown in messages: no credentials, query or fragment.
pub(super) fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // These only fail for URLs that cannot have credentials anyway.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Builds the HTTP client: timeouts, user agent, redirect policy.
///
/// The blocking client applies its `timeout` to the wait for the response
/// headers and to every single read of the body: it is our idle timeout.
pub(super) fn build_client(options: &FetchOptions) -> Result<Client, FetchError> {
    Client::builder()
        .user_agent(options.user_agent.as_str())
        .connect_timeout(options.connect_timeout)
        .timeout(options.idle_timeout)
        .redirect(redirect_policy())
        .referer(false)
        .build()
        .map_err(|error| FetchError::Client {
            detail: describe(&error),
        })
}

/// Follows at most [`MAX_REDIRECTS`] redirects, only to `http(s)`, and
/// never from `https` to `http`.
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|url| url.scheme() == "https");
        let scheme = attempt.url().scheme().to_owned();
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if scheme != "http" && scheme != "https" {
            attempt.error(format!("redirect to an unsupported `{scheme}:` URL"))
        } else if from_https && scheme == "http" {
            attempt.error("refusing to follow a redirect from https to http")
        } else {
            attempt.follow()
        }
    })
}

/// Describes the causes of `error`, without URLs' query strings.
pub(super) fn describe(error: &(dyn StdError + 'static)) -> String {
    let text = join_messages(chain_from(error.source()));
    if text.is_empty() {
        redacted_text(error)
    } else {
        text
    }
}

/// `first` and its causes, outermost first.
fn chain_from<'a>(
    first: Option<&'a (dyn StdError + 'static)>,
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(first, |cause: &&'a (dyn StdError + 'static)| {
        (*cause).source()
    })
}

/// Joins the messages of a chain of errors, skipping repetitions.
fn join_messages<'a>(chain: impl Iterator<Item = &'a (dyn StdError + 'static)>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in chain {
        let text = redacted_text(cause);
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The message of one error; the URL of a `reqwest::Error` is redacted.
fn redacted_text(error: &(dyn StdError + 'static)) -> String {
    let text = error.to_string();
    match error.downcast_ref::<reqwest::Error>().and_then(|e| e.url()) {
        Some(url) => text.replace(url.as_str(), &redact(url)),
        None => text,
    }
}

/// Describes an I/O error from the body and its causes, without URLs'
/// query strings.
pub(super) fn describe_io(error: &io::Error) -> String {
    join_messages(io_causes(error))
}

/// Classifies an error of the client while sending a request for `url` (as
/// shown), `received` bytes into a download whose idle timeout is `idle`.
pub(super) fn request_error(
    url: &str,
    idle: Duration,
    received: u64,
    error: &reqwest::Error,
) -> FetchError {
    let url = url.to_owned();
    let detail = describe(error);
    if error.is_timeout() {
        FetchError::Timeout {
            url,
            idle,
            received,
        }
    } else if error.is_redirect() {
        FetchError::Redirect { url, detail }
    } else if error.is_dns() {
        FetchError::Dns { url, detail }
    } else if error.is_connect() {
        FetchError::Connect { url, detail }
    } else {
        FetchError::Request { url, detail }
    }
}
