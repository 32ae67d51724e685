//! VMNetX URLs: their canonical form and the Sinfonia UUID derived from it.
//!
//! # Why this exists
//!
//! The Python tool `olive2022` names the Sinfonia backend of a virtual machine
//! with a UUID derived from the VMNetX URL the user clicked:
//!
//! ```python
//! NAMESPACE_OLIVEARCHIVE = uuid.UUID("835a9728-a1f7-4d0f-82f8-cd0da8838673")
//! canonical = URL(s).with_scheme("vmnetx+https").with_query(None).with_fragment(None)
//! uuid.uuid5(NAMESPACE_OLIVEARCHIVE, str(canonical))
//! ```
//!
//! where `URL` is [yarl](https://github.com/aio-libs/yarl)'s (1.25). Backends
//! deployed by the Python tool must keep their names, so this module
//! reproduces yarl's normalisation bit for bit instead of using a WHATWG URL
//! parser (which normalises differently: default ports, IDNA flavour,
//! percent-encoding sets, backslashes…). What yarl does, in the order it
//! does it:
//!
//! - strip leading spaces, split `scheme:` (ASCII letters, digits, `+-.`,
//!   lower-cased), `//authority`, path, `?query` and `#fragment` like
//!   `urllib.parse.urlsplit`;
//! - split the authority at the last `@` (user info) and at the first `:`
//!   of the user info (password); re-quote user and password;
//! - brackets only around an IPv6 address, at the start of the host, followed
//!   by nothing or by `:port`; the port is a number from 0 to 65535 written
//!   back without leading zeros, and kept even when it is 443;
//! - the host: an IP address (a host ending in a digit, or holding a colon)
//!   is written in Python's `ipaddress` form (IPv6 compressed, a zone after
//!   `%` or `%25` kept as is); otherwise an ASCII host is lower-cased and
//!   not validated, and a non-ASCII host is IDNA-encoded with the `idna`
//!   package (UTS #46 mapping, then the IDNA 2008 rules) or, when that
//!   fails, with Python's IDNA 2003 codec (nameprep; ASCII labels are left
//!   exactly as typed, `ß` becomes `ss`);
//! - the path is re-quoted (escapes of characters allowed in a path are
//!   decoded, other escapes upper-cased, other characters UTF-8 escaped)
//!   and its dot segments resolved;
//! - the query and the fragment are dropped, the scheme replaced.
//!
//! The input comes from a web browser and is not trusted: on top of yarl's
//! own errors this module rejects schemes other than `vmnetx`,
//! `vmnetx+http`, `vmnetx+https`, `http` and `https`, control characters,
//! inputs longer than [`MAX_URL_LENGTH`], URLs without a host, ports that
//! are not plain ASCII digits and bracketed hosts that are not IPv6
//! addresses. Nothing in here panics, whatever the input.
//!
//! # Layout
//!
//! This file holds the public API ([`VmnetxUrl`], [`UrlError`],
//! [`download_url`]) and the first step, splitting the input into scheme,
//! authority, path and query. The rest is in submodules, one step each:
//!
//! - `host`: the authority (user info, host, port), IP addresses in
//!   Python's `ipaddress` form;
//! - `idna`: non-ASCII host names, IDNA 2008 with the IDNA 2003 fallback;
//! - `tables`: the Unicode range tables `idna` needs, generated;
//! - `quote`: percent-encoding (re-quoting) and dot segments of the path;
//! - `identity`: the canonical URL and UUID as one record ([`VmIdentity`]).

mod host;
mod identity;
mod idna;
mod quote;
mod tables;

use std::fmt;
use std::str::FromStr;

use icu_normalizer::ComposingNormalizerBorrowed;
use uuid::Uuid;

pub use identity::VmIdentity;

use host::normalise_netloc;
use quote::{PATH_REQUOTER, QUERY_REQUOTER, normalise_path};

/// The namespace of the Sinfonia backend UUIDs of the Olive Archive
/// (`835a9728-a1f7-4d0f-82f8-cd0da8838673`, from `olive2022`).
pub const OLIVEARCHIVE_NAMESPACE: Uuid = Uuid::from_u128(0x835a_9728_a1f7_4d0f_82f8_cd0d_a883_8673);

/// The longest VMNetX URL accepted, in bytes.
pub const MAX_URL_LENGTH: usize = 8 * 1024;

/// The scheme of every canonical VMNetX URL.
const CANONICAL_SCHEME: &str = "vmnetx+https";

/// Why a string is not an acceptable VMNetX URL.
///
/// Messages never include the user info (it may hold a password) nor the
/// query (it may hold an access token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Nothing but spaces.
    #[error("the VMNetX URL is empty")]
    Empty,
    /// Longer than [`MAX_URL_LENGTH`].
    #[error("the VMNetX URL is {len} bytes long, more than the {max} bytes allowed")]
    TooLong {
        /// The length of the input, in bytes.
        len: usize,
        /// The limit, [`MAX_URL_LENGTH`].
        max: usize,
    },
    /// A C0 control character or DEL anywhere in the input.
    #[error("the VMNetX URL contains the control character U+{code:04X} at byte {position}")]
    ControlCharacter {
        /// The byte offset of the character in the input.
        position: usize,
        /// Its code point.
        code: u32,
    },
    /// No `scheme:` at the start.
    #[error("the VMNetX URL has no scheme: expected vmnetx://, vmnetx+https://, https://…")]
    MissingScheme,
    /// A scheme other than `vmnetx`, `vmnetx+http`, `vmnetx+https`, `http`, `https`.
    #[error(
        "unsupported URL scheme {0:?}: expected vmnetx, vmnetx+http, vmnetx+https, http or https"
    )]
    UnsupportedScheme(String),
    /// No `//host` after the scheme, or an empty host.
    #[error("the VMNetX URL has no host")]
    MissingHost,
    /// The authority (`user:password@host:port`) cannot be split.
    #[error("invalid authority in the VMNetX URL: {0}")]
    InvalidAuthority(&'static str),
    /// The port is not a number from 0 to 65535 written with ASCII digits.
    #[error("invalid port {0:?} in the VMNetX URL: expected a number from 0 to 65535")]
    InvalidPort(String),
    /// Brackets in the authority that do not hold exactly an IPv6 address.
    #[error("invalid IPv6 address {address:?} in the VMNetX URL: {reason}")]
    InvalidIpv6 {
        /// What is between the brackets (or the whole host when they are unbalanced).
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host name that cannot be IDNA-encoded.
    #[error("invalid host name {host:?} in the VMNetX URL: {reason}")]
    InvalidHost {
        /// The host as typed.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The schemes accepted in input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scheme {
    Vmnetx,
    VmnetxHttp,
    VmnetxHttps,
    Http,
    Https,
}

impl Scheme {
    /// The scheme from its lower-cased name.
    fn from_lowercase(name: &str) -> Option<Self> {
        match name {
            "vmnetx" => Some(Self::Vmnetx),
            "vmnetx+http" => Some(Self::VmnetxHttp),
            "vmnetx+https" => Some(Self::VmnetxHttps),
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    /// The scheme to download the package with.
    fn download_scheme(self) -> &'static str {
        match self {
            Self::Vmnetx | Self::VmnetxHttps | Self::Https => "https",
            Self::VmnetxHttp | Self::Http => "http",
        }
    }
}

/// A VMNetX URL in the canonical form that names a VM.
///
/// The canonical form is `vmnetx+https://[user[:password]@]host[:port]/path`,
/// normalised exactly as `olive2022` (yarl) does it; see the
/// [module documentation](self). The query of the input is kept aside for
/// [`VmnetxUrl::download_url`], its fragment is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VmnetxUrl {
    /// The whole canonical URL.
    canonical: String,
    /// The scheme of the input.
    scheme: Scheme,
    /// The normalised authority: `[userinfo@]host[:port]`.
    netloc: String,
    /// The normalised path, maybe empty.
    path: String,
    /// The re-quoted query, without `?`, maybe empty.
    query: String,
}

impl VmnetxUrl {
    /// Parses and canonicalises a VMNetX URL typed by a user or passed by a
    /// web browser.
    ///
    /// # Errors
    ///
    /// Any [`UrlError`]: wherever `olive2022` fails on the URL, and on the
    /// untrusted-input checks listed in the [module documentation](self).
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let parts = split_url(input)?;
        let netloc = normalise_netloc(parts.netloc)?;

        let mut path = String::new();
        if !parts.path.is_empty() {
            path = PATH_REQUOTER.requote(parts.path);
            if path.contains('.') {
                path = normalise_path(&path);
            }
        }
        let query = if parts.query.is_empty() {
            String::new()
        } else {
            QUERY_REQUOTER.requote(parts.query)
        };

        let canonical = format!("{CANONICAL_SCHEME}://{netloc}{path}");
        Ok(Self {
            canonical,
            scheme: parts.scheme,
            netloc,
            path,
            query,
        })
    }

    /// The canonical URL, `vmnetx+https://host/path`, whose UUID names the VM.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The Sinfonia backend UUID: version 5, in [`OLIVEARCHIVE_NAMESPACE`],
    /// of the canonical URL.
    pub fn sinfonia_uuid(&self) -> Uuid {
        Uuid::new_v5(&OLIVEARCHIVE_NAMESPACE, self.canonical.as_bytes())
    }

    /// The URL to fetch the package from: `https` for `vmnetx`,
    /// `vmnetx+https` and `https` URLs, `http` for `vmnetx+http` and `http`
    /// ones, with the normalised authority and path of the canonical URL (an
    /// empty path becomes `/`), the query kept (archives put access tokens
    /// there) and the fragment dropped.
    pub fn download_url(&self) -> String {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let mut url = format!("{}://{}{path}", self.scheme.download_scheme(), self.netloc);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&self.query);
        }
        url
    }
}

impl fmt::Display for VmnetxUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for VmnetxUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The URL to fetch the package named by a VMNetX URL from; see
/// [`VmnetxUrl::download_url`].
///
/// # Errors
///
/// As [`VmnetxUrl::parse`].
pub fn download_url(input: &str) -> Result<String, UrlError> {
    Ok(VmnetxUrl::parse(input)?.download_url())
}

// ---------------------------------------------------------------------------
// Splitting (yarl `split_url`, adapted from `urllib.parse.urlsplit`)
// ---------------------------------------------------------------------------

/// The raw parts of a URL.
struct RawParts<'a> {
    scheme: Scheme,
    netloc: &'a str,
    path: &'a str,
    query: &'a str,
}

/// Whether a character is a C0 control or DEL.
fn is_control(c: char) -> bool {
    c <= '\u{1f}' || c == '\u{7f}'
}

/// Whether a byte may appear in a scheme (`urllib.parse.scheme_chars`).
fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

/// At most `max` characters of `s`, for error messages.
fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// Splits `s` before the first character matching `pred`.
fn split_before(s: &str, pred: impl Fn(char) -> bool) -> (&str, &str) {
    match s.char_indices().find(|&(_, c)| pred(c)) {
        Some((i, _)) => (
            s.get(..i).unwrap_or_default(),
            s.get(i..).unwrap_or_default(),
        ),
        None => (s, ""),
    }
}

/// Splits the input into scheme, authority, path and query, with the checks
/// of yarl's `split_url` and ours.
fn split_url(input: &str) -> Result<RawParts<'_>, UrlError> {
    if input.len() > MAX_URL_LENGTH {
        return Err(UrlError::TooLong {
            len: input.len(),
            max: MAX_URL_LENGTH,
        });
    }
    if let Some((position, c)) = input.char_indices().find(|&(_, c)| is_control(c)) {
        return Err(UrlError::ControlCharacter {
            position,
            code: u32::from(c),
        });
    }
    // yarl strips leading C0 controls and spaces (controls are refused
    // above) but keeps trailing spaces.
    let url = input.trim_start_matches(' ');
    if url.is_empty() {
        return Err(UrlError::Empty);
    }

    let (scheme, rest) = match url.split_once(':') {
        Some((scheme, rest)) if !scheme.is_empty() && scheme.bytes().all(is_scheme_char) => {
            (scheme, rest)
        }
        _ => return Err(UrlError::MissingScheme),
    };
    let scheme = Scheme::from_lowercase(&scheme.to_ascii_lowercase())
        .ok_or_else(|| UrlError::UnsupportedScheme(excerpt(scheme, 40)))?;

    let Some(rest) = rest.strip_prefix("//") else {
        return Err(UrlError::MissingHost);
    };
    let (netloc, rest) = split_before(rest, |c| matches!(c, '/' | '?' | '#'));
    check_brackets(netloc)?;

    let (before_fragment, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (path, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));

    if !netloc.is_ascii() {
        check_netloc_nfkc(netloc)?;
    }
    Ok(RawParts {
        scheme,
        netloc,
        path,
        query,
    })
}

/// The authority checks of yarl's `split_url`: no backslash, brackets only
/// around an IP literal at the start of the host.
fn check_brackets(netloc: &str) -> Result<(), UrlError> {
    if netloc.contains('\\') {
        return Err(UrlError::InvalidAuthority(
            "a backslash is not allowed in the authority",
        ));
    }
    let has_left = netloc.contains('[');
    let has_right = netloc.contains(']');
    let invalid = |reason| UrlError::InvalidIpv6 {
        address: excerpt(host_info(netloc), 80),
        reason,
    };
    if has_left != has_right {
        return Err(invalid("unbalanced brackets"));
    }
    if !has_left {
        return Ok(());
    }
    let hostinfo = host_info(netloc);
    if !hostinfo.starts_with('[')
        || hostinfo.matches('[').count() > 1
        || hostinfo.matches(']').count() > 1
    {
        return Err(invalid("brackets must enclose the whole host"));
    }
    let inner = hostinfo.get(1..).unwrap_or_default();
    let (bracketed, after) = inner.split_once(']').unwrap_or((inner, ""));
    if !after.is_empty() && !after.starts_with(':') {
        return Err(invalid("only a port may follow the closing bracket"));
    }
    if bracketed.starts_with('v') {
        if !is_ipvfuture(bracketed) {
            return Err(invalid("invalid IPvFuture address"));
        }
    } else if !bracketed.contains(':') {
        return Err(invalid("not an IPv6 address"));
    }
    Ok(())
}

/// The part of an authority after the last `@`.
fn host_info(netloc: &str) -> &str {
    netloc.rsplit_once('@').map_or(netloc, |(_, host)| host)
}

/// Whether `s` matches `\Av[a-fA-F0-9]+\..+\Z`.
fn is_ipvfuture(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let (version, tail) = split_before(rest, |c| !c.is_ascii_hexdigit());
    !version.is_empty() && tail.strip_prefix('.').is_some_and(|t| !t.is_empty())
}

/// yarl's `_check_netloc`: a non-ASCII authority must not turn into URL
/// delimiters under NFKC (`℀` is `a/c`).
fn check_netloc_nfkc(netloc: &str) -> Result<(), UrlError> {
    let n: String = netloc
        .chars()
        .filter(|c| !matches!(c, '@' | ':' | '#' | '?'))
        .collect();
    let normalised = ComposingNormalizerBorrowed::new_nfkc().normalize(&n);
    if normalised != n && normalised.contains(['/', '?', '#', '@', ':', '%']) {
        return Err(UrlError::InvalidAuthority(
            "the authority contains characters that normalise (NFKC) to URL delimiters",
        ));
    }
    Ok(())
}
