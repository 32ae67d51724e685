//! Image references: `registry[:port]/repository[:tag][@sha256:…]`.
//!
//! The grammar is Docker's (`distribution/reference`), with one restriction:
//! the registry is never implied. Docker reads `ubuntu` as
//! `docker.io/library/ubuntu`; here the first component must be a registry
//! (it contains `.` or `:`, or is `localhost`), because an archive pushing to
//! Docker Hub by accident is worse than an error.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::digest::Digest;

/// The longest repository name with its registry (Docker's limit).
const NAME_MAX: usize = 255;

/// The longest tag.
const TAG_MAX: usize = 128;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// `host[:port]` (an IPv6 host in brackets: `[::1]:5000`).
    pub registry: String,
    /// Path components joined by `/`, without the registry.
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest after `@`, if any.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Nothing to parse.
    #[error("empty image reference")]
    Empty,
    /// The first component is not a registry host.
    #[error(
        "image reference {0:?} names no registry: start it with the registry host, \
         e.g. `registry.example.org/{0}` or `localhost:5000/{0}`"
    )]
    NoRegistry(String),
    /// A registry but no repository after it.
    #[error("image reference {0:?} has no repository after the registry")]
    NoRepository(String),
    /// A malformed `host[:port]`.
    #[error("invalid registry {registry:?}: {reason}")]
    InvalidRegistry {
        /// The registry text.
        registry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A malformed repository component.
    #[error(
        "invalid repository {repository:?}: component {component:?} must be lower-case letters \
         and digits, separated by `.`, `_`, `__` or dashes"
    )]
    InvalidRepository {
        /// The whole repository.
        repository: String,
        /// The offending component.
        component: String,
    },
    /// Registry and repository longer than Docker allows.
    #[error("image name {0:?} is longer than {NAME_MAX} characters")]
    NameTooLong(String),
    /// A malformed tag.
    #[error(
        "invalid tag {0:?}: up to {TAG_MAX} letters, digits, `_`, `.` and `-`, \
         not starting with `.` or `-`"
    )]
    InvalidTag(String),
    /// A malformed digest.
    #[error("invalid digest {0:?}: expected sha256: and 64 lower-case hex digits")]
    InvalidDigest(String),
}

impl ImageReference {
    /// Parses a reference that starts with its registry.
    pub fn parse(text: &str) -> Result<ImageReference, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let parsed = Digest::parse(digest)
                    .map_err(|_| ReferenceError::InvalidDigest(digest.to_owned()))?;
                (rest, Some(parsed))
            }
            None => (text, None),
        };
        // A tag is a `:` after the last `/` (a `:` before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag(tag.to_owned()));
        }
        let Some((registry, repository)) = name.split_once('/') else {
            return Err(if looks_like_registry(name) {
                ReferenceError::NoRepository(text.to_owned())
            } else {
                ReferenceError::NoRegistry(text.to_owned())
            });
        };
        if !looks_like_registry(registry) {
            return Err(ReferenceError::NoRegistry(text.to_owned()));
        }
        check_registry(registry)?;
        if repository.is_empty() {
            return Err(ReferenceError::NoRepository(text.to_owned()));
        }
        check_repository(repository)?;
        if name.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong(name.to_owned()));
        }
        Ok(ImageReference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

impl std::str::FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ImageReference::parse(text)
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's test for "this first component is a registry".
fn looks_like_registry(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Checks `host[:port]`: DNS name, IPv4 address or bracketed IPv6 address,
/// and an optional numeric port.
pub fn check_registry(registry: &str) -> Result<(), ReferenceError> {
    let invalid = |reason| ReferenceError::InvalidRegistry {
        registry: registry.to_owned(),
        reason,
    };
    let (host, port) = split_host_port(registry).ok_or_else(|| invalid("unbalanced brackets"))?;
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(invalid("the port must be a number from 0 to 65535"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| invalid("unbalanced brackets"))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| invalid("not an IPv6 address in brackets"));
    }
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if !host.split('.').all(component_ok) {
        return Err(invalid(
            "host names are letters, digits and inner dashes, separated by dots",
        ));
    }
    Ok(())
}

/// Splits `host[:port]` (host possibly `[v6]`); `None` on unbalanced brackets.
fn split_host_port(registry: &str) -> Option<(&str, Option<&str>)> {
    if registry.starts_with('[') {
        let close = registry.find(']')?;
        let (host, rest) = registry.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    if registry.contains(']') {
        return None;
    }
    Some(match registry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    })
}

/// Checks the repository path: components of lower-case letters and digits
/// separated by `.`, `_`, `__` or any number of `-` (Docker's grammar).
fn check_repository(repository: &str) -> Result<(), ReferenceError> {
    for component in repository.split('/') {
        if !is_valid_component(component) {
            return Err(ReferenceError::InvalidRepository {
                repository: repository.to_owned(),
                component: component.to_owned(),
            });
        }
    }
    Ok(())
}

fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Every run of separators must be `.`, `_`, `__` or `-+`.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let run = &component[start..i];
        let ok = run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `repository` (without registry) follows the repository grammar.
pub fn is_valid_repository(repository: &str) -> bool {
    !repository.is_empty() && check_repository(repository).is_ok()
}

/// Whether `tag` is a valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.split_first() {
        Some((&first, rest)) => {
            bytes.len() <= TAG_MAX
                && word(first)
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// The registry part of a repository prefix such as `localhost:5000/olive`:
/// everything before the first `/`, port included (the whole string when
/// there is no `/`).
pub fn registry_of(repository_prefix: &str) -> &str {
    repository_prefix
        .split_once('/')
        .map_or(repository_prefix, |(registry, _)| registry)
}

/// Whether `host` (with or without a port) is a loopback host: `localhost`,
/// `127.0.0.0/8`, `::1` (bare or in brackets).
pub fn is_loopback(host: &str) -> bool {
    let bare = if host.starts_with('[') {
        match split_host_port(host) {
            Some((bracketed, _)) => bracketed.trim_start_matches('[').trim_end_matches(']'),
            None => return false,
        }
    } else if host.matches(':').count() > 1 {
        host // a bare IPv6 address
    } else {
        host.split_once(':').map_or(host, |(h, _)| h)
    };
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(v4) = bare.parse::<Ipv4Addr>() {
        return v4.is_loopback();
    }
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
    }
    false
}
