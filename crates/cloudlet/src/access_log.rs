//! One log event per API request, for operators: method, path (the
//! client's key shortened: a public key, but a long one that identifies a
//! person's machine), status, duration and the client's address.

use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use vmnetx::shown::Shown;

use crate::listener::ClientAddr;

/// The longest path logged, in characters.
const MAX_LOGGED_PATH: usize = 200;
/// The prefix of the paths that end in a client's key.
const DEPLOY_PREFIX: &str = "/api/v1/deploy/";

/// The middleware: serves the request, then logs it.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let client = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(address))| address.to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let milliseconds = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        target: "cloudlet::access",
        %method,
        path,
        status,
        milliseconds,
        client,
        "request"
    );
    response
}

/// `path` bounded, escaped, and with a deploy path's key cut to 8
/// characters.
pub fn loggable_path(path: &str) -> String {
    let shortened = match path.strip_prefix(DEPLOY_PREFIX) {
        Some(rest) => match rest.split_once('/') {
            Some((uuid, key)) if key.chars().count() > 8 => {
                let short: String = key.chars().take(8).collect();
                format!("{DEPLOY_PREFIX}{uuid}/{short}…")
            }
            _ => path.to_owned(),
        },
        None => path.to_owned(),
    };
    let mut bounded: String = shortened.chars().take(MAX_LOGGED_PATH).collect();
    if shortened.chars().count() > MAX_LOGGED_PATH {
        bounded.push('…');
    }
    Shown(&bounded).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shortened_and_paths_bounded_and_escaped() {
        assert_eq!(
            loggable_path("/api/v1/deploy/helloworld/QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI"),
            "/api/v1/deploy/helloworld/QkJCQkJC…"
        );
        // A standard base64 key with an unescaped `/` is cut too.
        assert_eq!(
            loggable_path("/api/v1/deploy/x/ab/cdefghijklmnop"),
            "/api/v1/deploy/x/ab/cdefg…"
        );
        assert_eq!(loggable_path("/api/v1/cloudlets/"), "/api/v1/cloudlets/");
        assert_eq!(loggable_path(&"a".repeat(5000)).chars().count(), 201);
        assert_eq!(loggable_path("/x\n\u{202e}"), "/x\\u{a}\\u{202e}");
    }
}
