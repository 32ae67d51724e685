//! The deploy request a tier-3 client sends to tier 1, and strict checking of
//! the answer.
//!
//! `POST {tier1}/api/v1/deploy/{uuid}/{application_key}` with no body, the
//! key in URL-safe base64 without padding. The answer is a JSON array of
//! deployments, best first; we take the first and check every field we use:
//! required fields, keys that decode to 32 bytes, `endpoint` as `host:port`,
//! addresses with or without a prefix length, `dns` split into name servers
//! and search domains, and `Status` `Deployed`. Errors say what happened in
//! terms a user can act on (tier 1 down, timed out, its problem+json `title`
//! and `detail`, a body that is not JSON, no cloudlet).

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;
use serde_path_to_error::Segment;
use uuid::Uuid;
use vmnetx::shown::is_bidi_format;

use crate::deployment::{self as wire, DeploymentStatus};
use crate::keys::{KeyPair, PublicKey, decode_key};
use crate::problem::Problem;

/// Default time allowed to connect to tier 1.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for the whole deploy request (tier 1 waits for a
/// cloudlet to start the backend).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer body read.
const MAX_BODY: u64 = 1024 * 1024;
/// Most `TunnelConfig.dns` entries read (Sinfonia sends one name server and
/// four search domains).
pub const MAX_DNS_ENTRIES: usize = 16;
/// Most name servers used, as resolv.conf's `MAXNS`.
pub const MAX_DNS_SERVERS: usize = 3;
/// Most search domains used, as resolv.conf's classic `MAXDNSRCH`.
pub const MAX_SEARCH_DOMAINS: usize = 6;
/// Most networks in `allowedIPs` or `address`.
pub const MAX_NETWORKS: usize = 64;
/// Length of body excerpts in error messages, in characters.
const EXCERPT: usize = 160;

/// A Sinfonia tier 1 (or a tier 2 answering the same API).
#[derive(Debug, Clone)]
pub struct Tier1 {
    base: Url,
    connect_timeout: Duration,
    request_timeout: Duration,
}

/// What a deploy request answered: the deployment chosen for us, checked
/// (the wire form is [`crate::deployment::Deployment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `DeploymentName`: the Kubernetes namespace on the cloudlet.
    pub name: Option<String>,
    /// `UUID`: the backend (the one requested).
    pub uuid: Uuid,
    /// `ApplicationKey`: our public key, as the cloudlet registered it.
    pub application_key: [u8; 32],
    /// `Status`: always `Deployed` (anything else is an error).
    pub status: DeploymentStatus,
    /// `Created`, as sent.
    pub created: Option<String>,
    /// `TunnelConfig`: how to reach the deployment.
    pub tunnel: TunnelConfig,
}

/// The WireGuard settings of a deployment, checked (the wire form is
/// [`crate::deployment::TunnelConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// `publicKey`: the cloudlet's WireGuard key.
    pub peer_public_key: [u8; 32],
    /// `endpoint`: the cloudlet's WireGuard UDP endpoint.
    pub endpoint: Endpoint,
    /// `allowedIPs`: what we route through the tunnel.
    pub allowed_ips: Vec<IpNet>,
    /// `address`: our tunnel address(es); a bare address gets /32 or /128.
    pub addresses: Vec<IpNet>,
    /// The entries of `dns` that are IP addresses: the name servers.
    pub dns_servers: Vec<IpAddr>,
    /// The other entries of `dns`: the search domains, in order.
    pub search_domains: Vec<String>,
}

impl TunnelConfig {
    /// The cloudlet's public key, for the WireGuard implementation.
    pub fn peer_public(&self) -> PublicKey {
        PublicKey::from(self.peer_public_key)
    }
}

/// A `host:port` endpoint; the host is an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// An IPv4 address, an IPv6 address (without brackets) or a DNS name.
    pub host: String,
    /// The UDP port, never 0.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint's socket address; a name is looked up (first answer).
    pub fn resolve(&self) -> Result<SocketAddr, DeployError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let resolve_error = |reason: String| DeployError::Resolve {
            host: self.host.clone(),
            reason,
        };
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| resolve_error(e.to_string()))?
            .next()
            .ok_or_else(|| resolve_error("no address".into()))
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// `host:port`, `[IPv6]:port`; the port 1–65535.
    fn from_str(text: &str) -> Result<Endpoint, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{text}` lacks the closing `]`"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("`{text}` has no port (expected [address]:port)"))?;
            host.parse::<Ipv6Addr>()
                .map_err(|_| format!("`{host}` in brackets is not an IPv6 address"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("`{text}` has no port (expected host:port)"))?;
            if host.contains(':') {
                return Err(format!(
                    "`{text}`: an IPv6 endpoint must be written [address]:port"
                ));
            }
            if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
                return Err(format!("`{host}` is neither an IP address nor a host name"));
            }
            (host, port)
        };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{text}`: the port `{port}` is not a number"));
        }
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "`{text}`: the port {port} is out of range (1–65535)"
                ));
            }
            Ok(port) => port,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An address with a prefix length (`10.5.0.23/32`, `0.0.0.0/0`); host bits
/// are kept, as Python's `ip_interface` keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length: at most 32 (IPv4) or 128 (IPv6).
    pub prefix: u8,
}

impl IpNet {
    /// `addr/prefix`, checking the prefix length.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// The address alone, as a /32 or /128.
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// Whether the network holds `address` (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address, as a dual-stack socket reports it).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.addr, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

impl FromStr for IpNet {
    type Err = String;

    /// `address` or `address/prefix`.
    fn from_str(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address"))?;
        match prefix {
            None => Ok(IpNet::host(addr)),
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|_| prefix.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|prefix| IpNet::new(addr, prefix))
                .ok_or_else(|| format!("`{text}` has an invalid prefix length")),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A deploy request that failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The tier-1 URL is unusable.
    #[error("invalid tier-1 URL `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection (refused, unreachable, unknown host).
    #[error("cannot connect to Sinfonia tier 1 at {origin}: {reason}")]
    Connect {
        /// Scheme, host and port of tier 1.
        origin: String,
        /// Why, e.g. `connection refused`.
        reason: String,
    },
    /// No answer in time.
    #[error("Sinfonia tier 1 at {origin} did not answer within {} s", .after.as_secs_f32())]
    Timeout {
        /// Scheme, host and port of tier 1.
        origin: String,
        /// The time allowed.
        after: Duration,
    },
    /// Another transport failure.
    #[error("request to Sinfonia tier 1 at {origin} failed: {reason}")]
    Transport {
        /// Scheme, host and port of tier 1.
        origin: String,
        /// What failed.
        reason: String,
    },
    /// An HTTP error status; `title` and `detail` from an
    /// `application/problem+json` body, otherwise an excerpt of the body.
    #[error("{}", http_message(origin, *status, title.as_deref(), detail.as_deref(), excerpt.as_deref()))]
    Http {
        /// Scheme, host and port of tier 1.
        origin: String,
        /// The HTTP status code.
        status: u16,
        /// The problem's `title`.
        title: Option<String>,
        /// The problem's `detail`.
        detail: Option<String>,
        /// A short, sanitized excerpt of a body that is not a problem.
        excerpt: Option<String>,
    },
    /// A success status with a body that is not JSON.
    #[error("Sinfonia tier 1 at {origin} did not answer with JSON ({content_type}): \"{excerpt}\"")]
    NotJson {
        /// Scheme, host and port of tier 1.
        origin: String,
        /// The `Content-Type` (or `no content type`).
        content_type: String,
        /// A short, sanitized excerpt of the body.
        excerpt: String,
    },
    /// JSON that is not an array of deployments.
    #[error("Sinfonia tier 1 at {origin} sent a malformed answer: {reason}")]
    Malformed {
        /// Scheme, host and port of tier 1.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// An empty list: no cloudlet took the deployment.
    #[error("no cloudlet could deploy {uuid}")]
    NoDeployment {
        /// The backend requested.
        uuid: Uuid,
    },
    /// A field of the deployment is missing or invalid.
    #[error("Sinfonia sent an invalid deployment: `{field}` {problem}")]
    Field {
        /// The JSON path of the field, e.g. `TunnelConfig.endpoint`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The deployment is not usable (`Expired`, …).
    #[error("the deployment of {uuid} is {status:?}, not \"Deployed\"")]
    Status {
        /// The backend.
        uuid: Uuid,
        /// The status sent (sanitized).
        status: String,
    },
    /// The endpoint's host name does not resolve.
    #[error("cannot resolve the cloudlet endpoint {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
}

fn http_message(
    origin: &str,
    status: u16,
    title: Option<&str>,
    detail: Option<&str>,
    excerpt: Option<&str>,
) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut text = format!("Sinfonia tier 1 at {origin} answered {status} {reason}")
        .trim_end()
        .to_owned();
    match (title, detail) {
        (Some(title), Some(detail)) => text.push_str(&format!(": {title}: {detail}")),
        (Some(one), None) | (None, Some(one)) => text.push_str(&format!(": {one}")),
        (None, None) => {
            if let Some(excerpt) = excerpt.filter(|e| !e.is_empty()) {
                text.push_str(&format!(": \"{excerpt}\""));
            }
        }
    }
    text
}

impl Tier1 {
    /// Tier 1 at `url` (`http` or `https`; a path prefix is kept, a query
    /// or fragment dropped as the Python client drops them), with the
    /// default timeouts.
    pub fn new(url: &str) -> Result<Tier1, DeployError> {
        let bad = |reason: &str| DeployError::Url {
            url: sanitize(url, EXCERPT),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad("credentials in the URL are not supported"));
        }
        base.set_query(None);
        base.set_fragment(None);
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        Ok(Tier1 {
            base,
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// The same tier 1 with other timeouts (to connect; for the whole
    /// request).
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Tier1 {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Scheme, host and port, for messages.
    pub fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }

    /// The deploy URL for `uuid` and our key (it carries the public key
    /// only, so it is safe to print).
    pub fn url_for(&self, uuid: Uuid, key: &KeyPair) -> String {
        format!(
            "{}/api/v1/deploy/{}/{}",
            self.base.as_str().trim_end_matches('/'),
            uuid.hyphenated(),
            key.public_urlsafe()
        )
    }

    /// Asks tier 1 to deploy backend `uuid` for the client with `key`, and
    /// returns the first (best) deployment after checking it.
    pub fn deploy(&self, uuid: Uuid, key: &KeyPair) -> Result<Deployment, DeployError> {
        let origin = self.origin();
        let transport = |e: reqwest::Error| self.transport_error(e);
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(concat!("olive2022-sinfonia/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(transport)?;
        // The request's own timeout covers the whole exchange, the body
        // included; the client's only bounds each read.
        let mut response = client
            .post(self.url_for(uuid, key))
            .timeout(self.request_timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .map_err(transport)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(media_type)
            .unwrap_or_default();
        let mut body = Vec::new();
        (&mut response)
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.read_error(e))?;
        tracing::debug!(
            %origin,
            %uuid,
            status = status.as_u16(),
            content_type,
            bytes = body.len(),
            "tier 1 answered the deploy request"
        );
        if body.len() as u64 > MAX_BODY {
            return Err(DeployError::Malformed {
                origin,
                reason: format!("the answer is larger than {MAX_BODY} bytes"),
            });
        }
        read_answer(&origin, uuid, key, status.as_u16(), &content_type, &body)
    }

    fn transport_error(&self, e: reqwest::Error) -> DeployError {
        let origin = self.origin();
        if e.is_timeout() {
            let after = if e.is_connect() {
                self.connect_timeout
            } else {
                self.request_timeout
            };
            return DeployError::Timeout { origin, after };
        }
        let reason = root_cause(&e);
        if e.is_connect() {
            DeployError::Connect { origin, reason }
        } else {
            DeployError::Transport { origin, reason }
        }
    }

    fn read_error(&self, e: io::Error) -> DeployError {
        let timed_out = e.kind() == io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        if timed_out {
            DeployError::Timeout {
                origin: self.origin(),
                after: self.request_timeout,
            }
        } else {
            DeployError::Transport {
                origin: self.origin(),
                reason: root_cause(&e),
            }
        }
    }
}

/// Reads tier 1's answer to a deploy request for backend `uuid` and key
/// pair `key`: the HTTP `status`, the media type of the body
/// (`content_type`, lower case, without parameters; empty when absent) and
/// the `body` (at most 1 MiB, already read). Everything [`Tier1::deploy`]
/// does after the HTTP exchange, without a network, so that tests and
/// fuzzing can feed it any answer; `origin` only names tier 1 in errors.
///
/// # Errors
///
/// [`DeployError::Http`], [`DeployError::NotJson`],
/// [`DeployError::Malformed`], [`DeployError::NoDeployment`],
/// [`DeployError::Status`] or [`DeployError::Field`], as for
/// [`Tier1::deploy`].
pub fn read_answer(
    origin: &str,
    uuid: Uuid,
    key: &KeyPair,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<Deployment, DeployError> {
    // `reqwest::StatusCode::is_success`: 2xx.
    if !(200..300).contains(&status) {
        return Err(http_error(origin.to_owned(), status, content_type, body));
    }
    let json_type = content_type.is_empty()
        || content_type == "application/json"
        || content_type.ends_with("+json");
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) if json_type => value,
        Ok(_) => return Err(not_json(origin.to_owned(), content_type, body)),
        Err(e) => {
            let text = String::from_utf8_lossy(body);
            let looks_json = text.trim_start().starts_with(['[', '{']);
            return Err(if json_type && looks_json {
                DeployError::Malformed {
                    origin: origin.to_owned(),
                    reason: format!("invalid JSON: {e}"),
                }
            } else {
                not_json(origin.to_owned(), content_type, body)
            });
        }
    };
    let Value::Array(list) = value else {
        return Err(DeployError::Malformed {
            origin: origin.to_owned(),
            reason: format!(
                "expected a JSON array of deployments, got {}",
                json_kind(&value)
            ),
        });
    };
    let first = list
        .into_iter()
        .next()
        .ok_or(DeployError::NoDeployment { uuid })?;
    let deployment = parse_deployment(&first)?;
    if deployment.uuid != uuid {
        return Err(DeployError::Field {
            field: "UUID".into(),
            problem: format!("is {}, but {uuid} was requested", deployment.uuid),
        });
    }
    if deployment.application_key != key.public_bytes() {
        return Err(DeployError::Field {
            field: "ApplicationKey".into(),
            problem: format!(
                "is not our public key {} (the deployment is for another client)",
                key.public_base64()
            ),
        });
    }
    Ok(deployment)
}

/// The innermost error's message (`connection refused`, `dns error: …`),
/// or an I/O error kind's description.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    let mut io_kind = None;
    loop {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            io_kind = Some(io.kind());
        }
        match cause.source() {
            Some(next) => cause = next,
            None => break,
        }
    }
    match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => "connection refused".into(),
        Some(io::ErrorKind::ConnectionReset) => "connection reset".into(),
        Some(io::ErrorKind::HostUnreachable) => "host unreachable".into(),
        Some(io::ErrorKind::NetworkUnreachable) => "network unreachable".into(),
        _ => sanitize(&cause.to_string(), EXCERPT),
    }
}

/// `application/json` from `application/json; charset=utf-8`, lower case.
fn media_type(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    text.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn http_error(origin: String, status: u16, content_type: &str, body: &[u8]) -> DeployError {
    let mut title = None;
    let mut detail = None;
    if content_type.contains("json")
        && let Ok(problem) = serde_json::from_slice::<Problem>(body)
    {
        let shown = |text: &str| Some(sanitize(text, 2 * EXCERPT)).filter(|s| !s.is_empty());
        title = shown(&problem.title);
        detail = shown(&problem.detail);
    }
    let excerpt = (title.is_none() && detail.is_none()).then(|| excerpt(content_type, body));
    DeployError::Http {
        origin,
        status,
        title,
        detail,
        excerpt,
    }
}

fn not_json(origin: String, content_type: &str, body: &[u8]) -> DeployError {
    DeployError::NotJson {
        origin,
        content_type: if content_type.is_empty() {
            "no content type".into()
        } else {
            sanitize(content_type, 60)
        },
        excerpt: excerpt(content_type, body),
    }
}

/// A short excerpt of a body for a message: tags of HTML dropped, control
/// characters (terminal escapes) removed, white space collapsed.
fn excerpt(content_type: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let html = content_type.contains("html") || text.trim_start().starts_with('<');
    if html {
        let mut plain = String::with_capacity(text.len());
        let mut in_tag = false;
        for c in text.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    plain.push(' ');
                }
                c if !in_tag => plain.push(c),
                _ => {}
            }
        }
        sanitize(&plain, EXCERPT)
    } else {
        sanitize(&text, EXCERPT)
    }
}

/// `text` without terminal escape sequences, control or bidirectional
/// override characters, white space collapsed, cut to `max` characters
/// (with `…`).
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            skip_escape(&mut chars);
            continue;
        }
        let c = if c.is_whitespace() || c.is_control() || is_bidi_format(c) {
            ' '
        } else {
            c
        };
        if c == ' ' {
            space = !out.is_empty();
            continue;
        }
        if space {
            if count + 1 >= max {
                out.push('…');
                return out;
            }
            out.push(' ');
            count += 1;
            space = false;
        }
        if count >= max {
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Skips the rest of an escape sequence after `ESC`: a CSI (`ESC [` …
/// final byte), an OSC or other string (`ESC ]` … `BEL` or `ESC \`), or a
/// single character.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => {
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        Some(']' | 'P' | '^' | '_' | 'X') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                    chars.next();
                    break;
                }
            }
        }
        _ => {}
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_error(field: &str, problem: impl Into<String>) -> DeployError {
    DeployError::Field {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// Reads one element of the deploy answer into the wire type, then checks
/// every field we use.
fn parse_deployment(value: &Value) -> Result<Deployment, DeployError> {
    if !value.is_object() {
        return Err(field_error(
            "deployment",
            format!("is {}, not an object", json_kind(value)),
        ));
    }
    let wire: wire::Deployment = match serde_path_to_error::deserialize(value) {
        Ok(wire) => wire,
        // A deployment that is not `Deployed` is reported as such, whatever
        // else it lacks: an expired one may have no tunnel left.
        Err(e) => return Err(not_deployed(value).unwrap_or_else(|| shape_error(value, &e))),
    };
    if wire.status != DeploymentStatus::Deployed {
        return Err(DeployError::Status {
            uuid: wire.uuid,
            status: wire.status.to_string(),
        });
    }
    check_deployment(wire)
}

/// The status error of an element whose `Status` is a string other than
/// `Deployed` (known to Sinfonia or not) and whose `UUID` is one.
fn not_deployed(value: &Value) -> Option<DeployError> {
    let status = value.get("Status")?.as_str()?;
    let uuid = Uuid::parse_str(value.get("UUID")?.as_str()?).ok()?;
    (status != DeploymentStatus::Deployed.as_str()).then(|| DeployError::Status {
        uuid,
        status: sanitize(status, 60),
    })
}

/// Names the field that does not fit the wire type, and says how, in the
/// user's terms: `TunnelConfig.dns` is missing, `TunnelConfig.publicKey`
/// is a number, not a string.
fn shape_error(
    value: &Value,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> DeployError {
    let path = error.path();
    let field = match path.iter().next() {
        None => String::new(),
        Some(_) => path.to_string(),
    };
    let message = error.inner().to_string();
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
        return field_error(&field, "is missing");
    }
    let found = path.iter().try_fold(value, |value, segment| match segment {
        Segment::Map { key } => value.get(key),
        Segment::Seq { index } => value.get(index),
        _ => None,
    });
    let expected = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
        .map(|(_, expected)| expected);
    let problem = match (found, expected) {
        (Some(Value::Null), _) => "is missing".to_owned(),
        (Some(found), Some(expected)) => {
            format!("is {}, not {}", json_kind(found), json_noun(expected))
        }
        // A string of the right type that does not parse (the UUID).
        (Some(Value::String(text)), None) => {
            let name = path.iter().next_back().map(ToString::to_string);
            format!(
                "is not a {}: \"{}\"",
                name.unwrap_or_default(),
                sanitize(text, 60)
            )
        }
        _ => sanitize(&message, EXCERPT),
    };
    field_error(&field, problem)
}

/// What serde expected, as the JSON kind a user knows.
fn json_noun(expected: &str) -> &str {
    if expected == "a sequence" {
        "a list"
    } else if expected.starts_with("struct ") || expected == "a map" {
        "an object"
    } else {
        expected
    }
}

/// A name or date we show: no control or bidirectional characters, at most
/// 253 bytes.
fn plain(text: Option<String>, field: &str) -> Result<Option<String>, DeployError> {
    match text {
        Some(text)
            if text.chars().any(|c| c.is_control() || is_bidi_format(c)) || text.len() > 253 =>
        {
            Err(field_error(
                field,
                format!("is not a plain name: \"{}\"", sanitize(&text, 60)),
            ))
        }
        text => Ok(text),
    }
}

fn key(text: &str, field: &str) -> Result<[u8; 32], DeployError> {
    decode_key(text).map_err(|e| {
        field_error(
            field,
            format!("is not a WireGuard key ({e}): \"{}\"", sanitize(text, 60)),
        )
    })
}

fn ip_nets(items: &[String], field: &str) -> Result<Vec<IpNet>, DeployError> {
    if items.is_empty() {
        return Err(field_error(field, "is empty"));
    }
    check_count(field, items.len(), MAX_NETWORKS)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.parse::<IpNet>()
                .map_err(|e| field_error(&format!("{field}[{i}]"), sanitize(&e, EXCERPT)))
        })
        .collect()
}

/// Checks the fields of a `Deployed` deployment into our view of it.
fn check_deployment(wire: wire::Deployment) -> Result<Deployment, DeployError> {
    let application_key = key(&wire.application_key, "ApplicationKey")?;
    let name = plain(wire.name, "DeploymentName")?;
    let created = plain(wire.created, "Created")?;
    let tunnel = wire.tunnel_config;
    let peer_public_key = key(&tunnel.public_key, "TunnelConfig.publicKey")?;
    let endpoint = tunnel
        .endpoint
        .parse::<Endpoint>()
        .map_err(|e| field_error("TunnelConfig.endpoint", sanitize(&e, EXCERPT)))?;
    let allowed_ips = ip_nets(&tunnel.allowed_ips, "TunnelConfig.allowedIPs")?;
    let addresses = ip_nets(&tunnel.address, "TunnelConfig.address")?;
    check_count("TunnelConfig.dns", tunnel.dns.len(), MAX_DNS_ENTRIES)?;
    let mut dns_servers = Vec::new();
    let mut search_domains = Vec::new();
    for (i, entry) in tunnel.dns.into_iter().enumerate() {
        if let Ok(ip) = entry.parse::<IpAddr>() {
            dns_servers.push(ip);
        } else if is_dns_name(&entry) {
            search_domains.push(entry);
        } else {
            return Err(field_error(
                &format!("TunnelConfig.dns[{i}]"),
                format!(
                    "is neither an IP address nor a domain name: \"{}\"",
                    sanitize(&entry, 60)
                ),
            ));
        }
    }
    check_count(
        "TunnelConfig.dns (name servers)",
        dns_servers.len(),
        MAX_DNS_SERVERS,
    )?;
    check_count(
        "TunnelConfig.dns (search domains)",
        search_domains.len(),
        MAX_SEARCH_DOMAINS,
    )?;
    Ok(Deployment {
        name,
        uuid: wire.uuid,
        application_key,
        status: wire.status,
        created,
        tunnel: TunnelConfig {
            peer_public_key,
            endpoint,
            allowed_ips,
            addresses,
            dns_servers,
            search_domains,
        },
    })
}

/// Refuses a list longer than a resolver or tunnel would use: each entry
/// costs work (a search domain is one more lookup per name resolved).
fn check_count(field: &str, count: usize, max: usize) -> Result<(), DeployError> {
    if count > max {
        return Err(field_error(
            field,
            format!("has {count} entries; at most {max} are accepted"),
        ));
    }
    Ok(())
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_` (not
/// starting or ending with `-`), each 1–63 bytes, 253 in all, the last not
/// all digits (that would be a malformed IPv4 address); one trailing dot
/// allowed.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
