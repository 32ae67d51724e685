//! VMNetX URLs: canonicalisation must not panic and must be idempotent.

use vmnetx::url::VmnetxUrl;

/// Canonicalises `data` (when it is UTF-8) and, when it is accepted,
/// checks the differential property the Sinfonia UUID rests on: the
/// canonical form is accepted too, canonicalises to itself and names the
/// same UUID. Otherwise a VM reached through its canonical URL would get
/// another backend than the one reached through the URL clicked.
///
/// # Panics
///
/// When the property does not hold (that is the finding).
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(first) = VmnetxUrl::parse(text) else {
        return;
    };
    let _ = first.download_url();
    let canonical = first.canonical();
    let second = canonicalise_accepted(canonical, text);
    assert_eq!(
        second.canonical(),
        canonical,
        "canonicalising {text:?} twice gives another URL"
    );
    assert_eq!(second.sinfonia_uuid(), first.sinfonia_uuid());
}

/// Parses `canonical`, a canonical form of `input`, which must be accepted.
fn canonicalise_accepted(canonical: &str, input: &str) -> VmnetxUrl {
    match VmnetxUrl::parse(canonical) {
        Ok(url) => url,
        Err(error) => panic!("the canonical form {canonical:?} of {input:?} is refused: {error}"),
    }
}
