//! Who may talk to the browser view's server: only the page we opened.
//!
//! The server listens on 127.0.0.1, but any web page the user visits can
//! make the browser send requests there, and any local process can connect.
//! Three checks keep them out:
//!
//! - a random [`Token`] (128 bits, new for every launch) as the path's
//!   first segment: only the URL we hand to the browser carries it;
//! - `Host` exactly `127.0.0.1:PORT`: a DNS-rebinding page (its own name
//!   resolving to 127.0.0.1) sends its own name here;
//! - `Origin`, when present, exactly `http://127.0.0.1:PORT`: another
//!   page's scripts and WebSockets (which ignore CORS) carry their origin.
//!
//! A failed check is a [`Refusal`], which the server answers with 403 and
//! logs with its reason (never with the token).

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

use crate::browser::error::BrowserError;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 16;

/// The launch's secret path segment: 32 lowercase hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new token from the system's random source.
    pub fn random() -> Result<Token, BrowserError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| BrowserError::Random(error.to_string()))?;
        Ok(Token(
            bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        ))
    }

    /// The token as it appears in the path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, in time that does not depend on
    /// where they differ (a guess learns nothing from the answer's delay).
    fn matches(&self, candidate: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), candidate.as_bytes());
        ours.len() == theirs.len()
            && ours
                .iter()
                .zip(theirs)
                .fold(0u8, |differ, (a, b)| differ | (a ^ b))
                == 0
    }
}

/// Never printed: logs and errors show that a token exists, not its value.
impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Token(…)")
    }
}

/// Why a request was refused (logged; the client only sees 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The path does not start with `/TOKEN/`.
    WrongToken,
    /// No `Host`, or not `127.0.0.1:PORT`.
    WrongHost,
    /// An `Origin` other than `http://127.0.0.1:PORT`.
    WrongOrigin,
}

impl Refusal {
    /// The reason, for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::WrongToken => "the path lacks the launch's token",
            Refusal::WrongHost => "the Host header is not the server's own address",
            Refusal::WrongOrigin => "the Origin header is another site's",
        }
    }
}

/// The checks of one server: its token and its address.
#[derive(Debug, Clone)]
pub struct Guard {
    token: Token,
    host: String,
    origin: String,
}

impl Guard {
    /// The guard of a server listening on 127.0.0.1:`port`.
    pub fn new(token: Token, port: u16) -> Guard {
        let host = format!("127.0.0.1:{port}");
        let origin = format!("http://{host}");
        Guard {
            token,
            host,
            origin,
        }
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The server's origin, `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Checks a request; on success returns the path after `/TOKEN/`.
    pub fn check<'path>(
        &self,
        path: &'path str,
        headers: &HeaderMap,
    ) -> Result<&'path str, Refusal> {
        let host = headers.get(HOST).map(|value| value.as_bytes());
        if host != Some(self.host.as_bytes()) || headers.get_all(HOST).iter().count() != 1 {
            return Err(Refusal::WrongHost);
        }
        let mut origins = headers.get_all(ORIGIN).iter();
        if let Some(origin) = origins.next()
            && (origin.as_bytes() != self.origin.as_bytes() || origins.next().is_some())
        {
            return Err(Refusal::WrongOrigin);
        }
        let rest = path.strip_prefix('/').ok_or(Refusal::WrongToken)?;
        let (token, rest) = rest.split_once('/').ok_or(Refusal::WrongToken)?;
        if !self.token.matches(token) {
            return Err(Refusal::WrongToken);
        }
        Ok(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard() -> Guard {
        Guard::new(Token("0123456789abcdef0123456789abcdef".into()), 4242)
    }

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    const GOOD_PATH: &str = "/0123456789abcdef0123456789abcdef/vnc.html";

    #[test]
    fn the_page_itself_passes() {
        let host = headers(&[(HOST, "127.0.0.1:4242")]);
        assert_eq!(guard().check(GOOD_PATH, &host), Ok("vnc.html"));
        let both = headers(&[(HOST, "127.0.0.1:4242"), (ORIGIN, "http://127.0.0.1:4242")]);
        assert_eq!(guard().check(GOOD_PATH, &both), Ok("vnc.html"));
    }

    #[test]
    fn other_hosts_origins_and_tokens_are_refused() {
        let cases = [
            (GOOD_PATH, vec![], Refusal::WrongHost),
            (
                GOOD_PATH,
                vec![(HOST, "localhost:4242")],
                Refusal::WrongHost,
            ),
            (GOOD_PATH, vec![(HOST, "127.0.0.1")], Refusal::WrongHost),
            (
                GOOD_PATH,
                vec![(HOST, "evil.example:4242")],
                Refusal::WrongHost,
            ),
            (
                GOOD_PATH,
                vec![(HOST, "127.0.0.1:4242"), (HOST, "127.0.0.1:4242")],
                Refusal::WrongHost,
            ),
            (
                GOOD_PATH,
                vec![(HOST, "127.0.0.1:4242"), (ORIGIN, "http://evil.example")],
                Refusal::WrongOrigin,
            ),
            (
                GOOD_PATH,
                vec![(HOST, "127.0.0.1:4242"), (ORIGIN, "null")],
                Refusal::WrongOrigin,
            ),
            (
                "/0123456789abcdef0123456789abcdee/vnc.html",
                vec![(HOST, "127.0.0.1:4242")],
                Refusal::WrongToken,
            ),
            (
                "/0123456789abcdef0123456789abcdef",
                vec![(HOST, "127.0.0.1:4242")],
                Refusal::WrongToken,
            ),
            (
                "/vnc.html",
                vec![(HOST, "127.0.0.1:4242")],
                Refusal::WrongToken,
            ),
        ];
        for (path, pairs, refusal) in cases {
            assert_eq!(
                guard().check(path, &headers(&pairs)),
                Err(refusal),
                "{path} {pairs:?}"
            );
        }
    }

    #[test]
    fn tokens_are_random_and_never_shown() {
        let (a, b) = (Token::random().expect("a"), Token::random().expect("b"));
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 2 * TOKEN_BYTES);
        assert!(a.as_str().bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert!(!format!("{:?}", guard()).contains("0123456789abcdef"));
    }
}
