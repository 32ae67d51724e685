//! Percent-encoding and dot segments, as yarl does them: its `_Quoter`
//! with requoting for the user, the password, the path and the query, and
//! its `normalize_path` for the `.` and `..` segments of the path.
//!
//! yarl re-quotes rather than quotes: escapes already in the input are
//! kept (upper-cased) or decoded when they stand for a character that needs
//! none, so that a URL typed escaped or not gives the same canonical form
//! and hence the same UUID.

/// A set of ASCII characters.
const fn ascii_set(chars: &[u8]) -> u128 {
    let mut set = 0u128;
    let mut i = 0;
    while i < chars.len() {
        set |= 1u128 << chars[i];
        i += 1;
    }
    set
}

/// yarl's `ALLOWED`: unreserved characters and the sub-delimiters that are
/// not query-string delimiters.
const ALLOWED: u128 =
    ascii_set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$'()*,");
/// yarl's `QS`: the query-string delimiters.
const QS: u128 = ascii_set(b"+&=;");

/// yarl's `_Quoter(requote=True)`.
pub(super) struct Requoter {
    /// Characters written as is, and escapes of them decoded.
    safe: u128,
    /// Characters written as is, but escapes of them kept.
    protected: u128,
    /// A space becomes `+`.
    qs: bool,
}

/// yarl's `PATH_REQUOTER`.
pub(super) const PATH_REQUOTER: Requoter = Requoter {
    safe: ALLOWED | QS | ascii_set(b"@:/+"),
    protected: ascii_set(b"/+"),
    qs: false,
};
/// yarl's `REQUOTER`, for the user and the password.
pub(super) const USER_REQUOTER: Requoter = Requoter {
    safe: ALLOWED | QS,
    protected: 0,
    qs: false,
};
/// yarl's `QUERY_REQUOTER`.
pub(super) const QUERY_REQUOTER: Requoter = Requoter {
    safe: ALLOWED | ascii_set(b"?/:@=+&;"),
    protected: ascii_set(b"=+&;"),
    qs: true,
};

impl Requoter {
    /// Whether an ASCII byte is in `set`.
    fn contains(set: u128, b: u8) -> bool {
        b < 128 && (set >> b) & 1 == 1
    }

    /// Re-quotes a URL part: `%XX` escapes of safe characters are decoded,
    /// other escapes upper-cased; a `%` that starts no escape becomes `%25`;
    /// other characters that are not safe are UTF-8 percent-encoded.
    pub(super) fn requote(&self, s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len() + 8);
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            if c == '%' {
                let hi = chars.get(i).and_then(|d| d.to_digit(16));
                let lo = chars.get(i + 1).and_then(|d| d.to_digit(16));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    i += 2;
                    let byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
                    if !Self::contains(self.protected, byte) && Self::contains(self.safe, byte) {
                        out.push(char::from(byte));
                    } else {
                        push_escape(&mut out, byte);
                    }
                    continue;
                }
            }
            if self.qs && c == ' ' {
                out.push('+');
            } else if c.is_ascii() && Self::contains(self.safe, c as u8) {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    push_escape(&mut out, b);
                }
            }
        }
        out
    }
}

/// Appends `%XX` with upper-case hex digits.
fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 15)]));
}

/// yarl's `normalize_path`: removes `.` and `..` segments (RFC 3986,
/// section 5.2.4); `..` never climbs above the root, and a path ending in
/// a dot segment ends with `/`.
pub(super) fn normalise_path(path: &str) -> String {
    let (prefix, rest) = match path.strip_prefix('/') {
        Some(rest) => ("/", rest),
        None => ("", path),
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut resolved: Vec<&str> = Vec::with_capacity(segments.len());
    for &segment in &segments {
        match segment {
            ".." => {
                resolved.pop();
            }
            "." => {}
            other => resolved.push(other),
        }
    }
    if matches!(segments.last(), Some(&("." | ".."))) {
        resolved.push("");
    }
    format!("{prefix}{}", resolved.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requoting_matches_yarl() {
        assert_eq!(PATH_REQUOTER.requote("/a%2fb%7e%zz%"), "/a%2Fb~%25zz%25");
        assert_eq!(PATH_REQUOTER.requote("/é [x]"), "/%C3%A9%20%5Bx%5D");
        assert_eq!(USER_REQUOTER.requote("a:b@c"), "a%3Ab%40c");
        assert_eq!(QUERY_REQUOTER.requote("a b=%3d&c"), "a+b=%3D&c");
    }

    #[test]
    fn dot_segments() {
        assert_eq!(normalise_path("/a/b/../c/./d"), "/a/c/d");
        assert_eq!(normalise_path("/.."), "/");
        assert_eq!(normalise_path("/a/.."), "/");
        assert_eq!(normalise_path("/a//b/.."), "/a//");
    }
}
