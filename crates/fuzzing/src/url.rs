//! VMNetX URLs: canonicalisation must not panic and must be idempotent.

use vmnetx::url::VmnetxUrl;

/// Canonicalises `data` (when it is UTF-8) and, when it is accepted,
/// checks the differential property the Sinfonia UUID rests on: the
/// canonical form is accepted too, canonicalises to itself and names the
/// same UUID. Otherwise a VM reached through its canonical URL would get
/// another backend than the one reached through the URL clicked.
///
/// One exception is inherited from the original tool, whose UUIDs we must
/// reproduce: a non-ASCII host that IDNA 2008 refuses is encoded with
/// Python's IDNA 2003 codec, which leaves its ASCII labels as typed
/// (`☃.Example.com` → `xn--n3h.Example.com`); the canonical form then has
/// an ASCII host, which is lower-cased when canonicalised again. yarl does
/// exactly this (see `docs/vmnetx.md`). That second step may therefore
/// lower-case the host, and nothing else; the third must change nothing.
/// The same codec turns a full-width bracket or backslash (`］`, `＼`) into
/// an ASCII one, which yarl's authority checks then refuse in the canonical
/// form (`Invalid IPv6 URL`, `backslash … not allowed`), as ours do: a
/// canonical host holding such a character that came from a compatibility
/// form is only required not to panic.
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
    if host_of(canonical).contains(['[', ']', '\\']) && text.contains(COMPATIBILITY_DELIMITERS) {
        let _ = VmnetxUrl::parse(canonical);
        return;
    }
    let second = canonicalise_accepted(canonical, text);
    if second.canonical() == canonical {
        assert_eq!(second.sinfonia_uuid(), first.sinfonia_uuid());
        return;
    }
    assert!(
        !text.is_ascii() && second.canonical() == host_lowercased(canonical),
        "canonicalising {text:?} gives {canonical:?}, canonicalising that gives {:?}",
        second.canonical()
    );
    let third = canonicalise_accepted(second.canonical(), text);
    assert_eq!(
        third.canonical(),
        second.canonical(),
        "canonicalising {text:?} three times still changes it"
    );
}

/// Parses `canonical`, a canonical form of `input`, which must be accepted.
fn canonicalise_accepted(canonical: &str, input: &str) -> VmnetxUrl {
    match VmnetxUrl::parse(canonical) {
        Ok(url) => url,
        Err(error) => panic!("the canonical form {canonical:?} of {input:?} is refused: {error}"),
    }
}

/// The characters whose compatibility (NFKC) form is an ASCII bracket or
/// backslash, which nameprep therefore turns into one: `［ ］ ﹇ ﹈ ＼ ﹨`.
const COMPATIBILITY_DELIMITERS: [char; 6] = [
    '\u{FF3B}', '\u{FF3D}', '\u{FE47}', '\u{FE48}', '\u{FF3C}', '\u{FE68}',
];

/// `canonical` cut into its scheme and `://`, its user info and `@`, its
/// host and port, and its path.
fn authority_parts(canonical: &str) -> (&str, &str, &str, &str) {
    let scheme_end = canonical.find("://").map_or(0, |at| at + 3);
    let (scheme, rest) = canonical.split_at(scheme_end);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, host) = authority.split_at(host_start);
    (scheme, userinfo, host, path)
}

/// The host (and port) of `canonical`.
fn host_of(canonical: &str) -> &str {
    authority_parts(canonical).2
}

/// `canonical` with its host (after any user info) in ASCII lower case.
fn host_lowercased(canonical: &str) -> String {
    let (scheme, userinfo, host, path) = authority_parts(canonical);
    format!("{scheme}{userinfo}{}{path}", host.to_ascii_lowercase())
}
