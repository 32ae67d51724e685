//! `.netx` reference files: small XML documents that point at a package.
//!
//! The Olive Archive web site does not hand out packages directly: a browser
//! downloads a reference file, which the desktop handler opens. It contains
//! only the URL of the real package:
//!
//! ```xml
//! <reference xmlns="http://olivearchive.org/xmlns/vmnetx/reference">
//!   <url>https://olivearchive.org/…/package.nxpk</url>
//! </reference>
//! ```
//!
//! The file is untrusted input and its URL is later fetched, so only web
//! schemes (`http`, `https`) and the VMNetX schemes (`vmnetx`,
//! `vmnetx+http`, `vmnetx+https`) are accepted: a reference must not make
//! us read `file:///etc/passwd` or run `javascript:`. [`looks_like_reference`]
//! lets a caller decide, from the first bytes of a file, whether it holds a
//! reference or a package.

use crate::domain::parse_xml;
use crate::shown::Shown;

/// The XML namespace of reference files.
pub const NAMESPACE: &str = "http://olivearchive.org/xmlns/vmnetx/reference";

/// The URL schemes a reference may point at (compared case-insensitively).
pub const ALLOWED_SCHEMES: [&str; 5] = ["http", "https", "vmnetx", "vmnetx+http", "vmnetx+https"];

/// Why a reference file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The document is not well-formed XML, has a DTD, or is too big.
    #[error("malformed reference XML: {0}")]
    Xml(roxmltree::Error),
    /// The root element is not `<reference>` in the reference namespace.
    #[error(
        "not a VMNetX reference: root element is <{}>, expected <reference xmlns=\"{NAMESPACE}\">",
        Shown(.0)
    )]
    NotReference(String),
    /// There is no `<url>` element.
    #[error("VMNetX reference has no <url>")]
    MissingUrl,
    /// The `<url>` element is empty.
    #[error("VMNetX reference has an empty <url>")]
    EmptyUrl,
    /// The URL is not an absolute URL with an allowed scheme.
    #[error("VMNetX reference URL `{}` is not an http, https or vmnetx URL", Shown(.0))]
    BadScheme(String),
    /// The URL contains whitespace or control characters.
    #[error(
        "VMNetX reference URL `{}` contains whitespace or control characters",
        Shown(.0)
    )]
    BadCharacters(String),
}

/// Parses a reference file and returns the package URL it points at,
/// trimmed of surrounding whitespace.
///
/// The URL must be `scheme://…` with a scheme from [`ALLOWED_SCHEMES`]; it
/// is otherwise returned as written (canonicalisation is [`crate::url`]'s
/// job).
pub fn parse_reference(xml: &str) -> Result<String, ReferenceError> {
    let doc = parse_xml(xml).map_err(ReferenceError::Xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "reference" || root.tag_name().namespace() != Some(NAMESPACE) {
        let name = match root.tag_name().namespace() {
            Some(ns) => format!("{{{ns}}}{}", root.tag_name().name()),
            None => root.tag_name().name().to_owned(),
        };
        return Err(ReferenceError::NotReference(name));
    }
    let url = root
        .children()
        .find(|c| {
            c.is_element()
                && c.tag_name().name() == "url"
                && c.tag_name().namespace() == Some(NAMESPACE)
        })
        .ok_or(ReferenceError::MissingUrl)?;
    // Concatenate all text (a URL may be split by a comment or CDATA).
    let text: String = url
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Err(ReferenceError::EmptyUrl);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ReferenceError::BadCharacters(text.to_owned()));
    }
    let allowed = text.split_once("://").is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && ALLOWED_SCHEMES
                .iter()
                .any(|allowed| scheme.eq_ignore_ascii_case(allowed))
    });
    if !allowed {
        return Err(ReferenceError::BadScheme(text.to_owned()));
    }
    Ok(text.to_owned())
}

/// Whether `bytes` (the start of a file) look like a reference file rather
/// than a package.
///
/// True when, after an optional UTF-8 byte-order mark and whitespace, the
/// bytes start with `<?xml` or `<reference`, and they are not a ZIP archive
/// (which starts with `PK`). This only sniffs: [`parse_reference`] decides.
pub fn looks_like_reference(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"PK") {
        return false;
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let rest = bytes.get(start..).unwrap_or_default();
    rest.starts_with(b"<?xml") || rest.starts_with(b"<reference")
}
