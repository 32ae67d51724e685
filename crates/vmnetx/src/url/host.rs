//! The authority of a VMNetX URL: `[user[:password]@]host[:port]`, split
//! and normalised as yarl's `split_netloc`, `_encode_host` and
//! `make_netloc` do it.
//!
//! The user and the password are re-quoted, the port is checked and written
//! without leading zeros, and the host is written in the form yarl gives it:
//! an IP address as Python's `ipaddress` prints it (IPv6 compressed, zone
//! kept), an ASCII name lower-cased, a non-ASCII name IDNA-encoded (see the
//! `idna` module). Python's address syntax is reimplemented here because it
//! differs from the standard library's `std::net` parsers (zones, leading
//! zeros, IPv4 tails written in hexadecimal).

use std::borrow::Cow;

use icu_properties::CodePointMapData;
use icu_properties::props::NumericType;

use super::idna::idna_encode;
use super::quote::USER_REQUOTER;
use super::{UrlError, excerpt};

/// An authority split by yarl's `split_netloc`.
struct NetlocParts<'a> {
    user: Option<&'a str>,
    password: Option<&'a str>,
    host: &'a str,
    bracketed: bool,
    port: Option<u16>,
}

/// yarl's `split_netloc`; the port must be plain ASCII digits (Python's
/// `int()` also takes signs, spaces, `_` and non-ASCII digits).
fn split_netloc(netloc: &str) -> Result<NetlocParts<'_>, UrlError> {
    let (userinfo, hostinfo) = match netloc.rsplit_once('@') {
        Some((userinfo, hostinfo)) => (Some(userinfo), hostinfo),
        None => (None, netloc),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => match userinfo.split_once(':') {
            Some((user, password)) => (Some(user), Some(password)),
            None => (Some(userinfo), None),
        },
    };

    let (host, port, bracketed) = if hostinfo.contains('[') {
        let invalid = |reason| UrlError::InvalidIpv6 {
            address: excerpt(hostinfo, 80),
            reason,
        };
        if !hostinfo.starts_with('[')
            || hostinfo.matches('[').count() > 1
            || hostinfo.matches(']').count() > 1
        {
            return Err(invalid("brackets must enclose the whole host"));
        }
        let inner = hostinfo.get(1..).unwrap_or_default();
        let (host, after) = inner.split_once(']').unwrap_or((inner, ""));
        if !after.is_empty() && !after.starts_with(':') {
            return Err(invalid("only a port may follow the closing bracket"));
        }
        let port = after.split_once(':').map_or("", |(_, port)| port);
        (host, port, true)
    } else {
        let (host, port) = hostinfo.split_once(':').unwrap_or((hostinfo, ""));
        (host, port, false)
    };

    let port = if port.is_empty() {
        None
    } else {
        Some(parse_port(port)?)
    };
    Ok(NetlocParts {
        user: user.filter(|u| !u.is_empty()),
        password,
        host,
        bracketed,
        port,
    })
}

/// A port: ASCII digits, leading zeros allowed, at most 65535.
fn parse_port(text: &str) -> Result<u16, UrlError> {
    let invalid = || UrlError::InvalidPort(excerpt(text, 40));
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let mut value: u32 = 0;
    for b in text.bytes() {
        value = value * 10 + u32::from(b - b'0');
        if value > 65535 {
            return Err(invalid());
        }
    }
    u16::try_from(value).map_err(|_| invalid())
}

/// The normalised authority: `[user[:password]@]host[:port]`.
pub(super) fn normalise_netloc(netloc: &str) -> Result<String, UrlError> {
    if netloc.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let parts = split_netloc(netloc)?;
    if parts.host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let host = if parts.bracketed {
        encode_bracketed_host(parts.host)?
    } else {
        encode_host(parts.host)?
    };

    let mut out = String::with_capacity(netloc.len() + 8);
    let user = parts.user.map(|u| USER_REQUOTER.requote(u));
    match (user, parts.password) {
        (user, Some(password)) => {
            out.push_str(user.as_deref().unwrap_or_default());
            out.push(':');
            out.push_str(&USER_REQUOTER.requote(password));
            out.push('@');
        }
        (Some(user), None) => {
            out.push_str(&user);
            out.push('@');
        }
        (None, None) => {}
    }
    out.push_str(&host);
    if let Some(port) = parts.port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    // yarl splits the rebuilt authority again when it prints the URL, which
    // fails for some IDNA 2003 results (a host holding `[`).
    split_netloc(&out)?;
    Ok(out)
}

/// A host in brackets: it must be an IPv6 address (yarl also takes an
/// IPvFuture literal or a random word with a colon, and writes it back
/// without brackets).
fn encode_bracketed_host(host: &str) -> Result<String, UrlError> {
    let invalid = |reason| UrlError::InvalidIpv6 {
        address: excerpt(host, 80),
        reason,
    };
    let (raw_ip, sep, zone) = split_zone(host);
    if parse_ipv4(raw_ip).is_some() {
        return Err(invalid("an IPv4 address in brackets"));
    }
    match parse_ipv6(raw_ip) {
        Some(address) => Ok(format!("[{address}{sep}{zone}]")),
        None => Err(invalid("not an IPv6 address")),
    }
}

/// yarl's `_encode_host` for a host without brackets.
fn encode_host(host: &str) -> Result<String, UrlError> {
    if host.chars().next_back().is_some_and(is_python_digit) {
        let (raw_ip, _, _) = split_zone(host);
        // A valid IPv4 address is already in Python's form.
        if parse_ipv4(raw_ip).is_some() {
            return Ok(host.to_owned());
        }
    }
    if host.is_ascii() {
        return Ok(host.to_ascii_lowercase());
    }
    if host.chars().any(is_default_ignorable) {
        return Err(UrlError::InvalidHost {
            host: excerpt(host, 80),
            reason: "it contains an invisible (default-ignorable) character",
        });
    }
    idna_encode(host).ok_or_else(|| UrlError::InvalidHost {
        host: excerpt(host, 80),
        reason: "it is not a valid internationalised domain name (IDNA)",
    })
}

/// Splits `address%zone` at `%25` if there is one, else at `%`.
fn split_zone(host: &str) -> (&str, &str, &str) {
    let sep = if host.contains("%25") { "%25" } else { "%" };
    match host.split_once(sep) {
        Some((ip, zone)) => (ip, sep, zone),
        None => (host, "", ""),
    }
}

/// Python's `str.isdigit()`: `Numeric_Type` is `Decimal` or `Digit`.
fn is_python_digit(c: char) -> bool {
    let numeric_type = CodePointMapData::<NumericType>::new().get(c);
    numeric_type == NumericType::Decimal || numeric_type == NumericType::Digit
}

/// The code points yarl refuses in a host (`_DEFAULT_IGNORABLE_RE`).
fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x34F
            | 0x61C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x1806
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Python's strict `IPv4Address` syntax: four decimal octets, no leading zeros.
fn parse_ipv4(s: &str) -> Option<u32> {
    let mut value: u32 = 0;
    let mut count = 0;
    for octet in s.split('.') {
        count += 1;
        if count > 4
            || octet.is_empty()
            || octet.len() > 3
            || !octet.bytes().all(|b| b.is_ascii_digit())
            || (octet.len() > 1 && octet.starts_with('0'))
        {
            return None;
        }
        let n: u32 = octet.parse().ok()?;
        if n > 255 {
            return None;
        }
        value = (value << 8) | n;
    }
    (count == 4).then_some(value)
}

/// Python's `IPv6Address(s).compressed` (Python 3.11: an IPv4 tail is
/// written in hexadecimal, a `%scope` is kept).
fn parse_ipv6(s: &str) -> Option<String> {
    let (addr, scope) = match s.split_once('%') {
        Some((_, scope)) if scope.is_empty() || scope.contains('%') => return None,
        Some((addr, scope)) => (addr, Some(scope)),
        None => (s, None),
    };
    if addr.is_empty() || addr.contains('/') {
        return None;
    }
    let mut parts: Vec<Cow<'_, str>> = addr.split(':').map(Cow::Borrowed).collect();
    if parts.len() < 3 {
        return None;
    }
    if parts.last().is_some_and(|p| p.contains('.')) {
        let v4 = parse_ipv4(&parts.pop()?)?;
        parts.push(Cow::Owned(format!("{:x}", v4 >> 16)));
        parts.push(Cow::Owned(format!("{:x}", v4 & 0xFFFF)));
    }
    if parts.len() > 9 {
        return None;
    }
    let len = parts.len();
    let mut skip_index = None;
    for (i, part) in parts.iter().enumerate().take(len - 1).skip(1) {
        if part.is_empty() {
            if skip_index.is_some() {
                return None;
            }
            skip_index = Some(i);
        }
    }
    let first_empty = parts.first().is_some_and(|p| p.is_empty());
    let last_empty = parts.last().is_some_and(|p| p.is_empty());
    let (parts_hi, parts_lo) = match skip_index {
        Some(skip) => {
            let mut hi = skip;
            let mut lo = len - skip - 1;
            if first_empty {
                hi -= 1;
                if hi != 0 {
                    return None;
                }
            }
            if last_empty {
                lo -= 1;
                if lo != 0 {
                    return None;
                }
            }
            if hi + lo >= 8 {
                return None;
            }
            (hi, lo)
        }
        None => {
            if len != 8 || first_empty || last_empty {
                return None;
            }
            (len, 0)
        }
    };
    let mut hextets = [0u16; 8];
    for (slot, part) in hextets.iter_mut().zip(parts.iter().take(parts_hi)) {
        *slot = parse_hextet(part)?;
    }
    for (slot, part) in hextets
        .iter_mut()
        .rev()
        .zip(parts.iter().rev().take(parts_lo))
    {
        *slot = parse_hextet(part)?;
    }
    let mut text = compress_ipv6(&hextets);
    if let Some(scope) = scope {
        text.push('%');
        text.push_str(scope);
    }
    Some(text)
}

/// One to four ASCII hex digits.
fn parse_hextet(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(s, 16).ok()
}

/// Python's `_compress_hextets`: the leftmost longest run of two or more
/// zero hextets becomes `::`.
fn compress_ipv6(hextets: &[u16; 8]) -> String {
    let (mut best_start, mut best_len) = (0, 0);
    let (mut start, mut len) = (0, 0);
    for (i, &h) in hextets.iter().enumerate() {
        if h == 0 {
            if len == 0 {
                start = i;
            }
            len += 1;
            if len > best_len {
                best_len = len;
                best_start = start;
            }
        } else {
            len = 0;
        }
    }
    let hex = |hs: &[u16]| {
        hs.iter()
            .map(|h| format!("{h:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len > 1 {
        let head = hextets.get(..best_start).unwrap_or_default();
        let tail = hextets.get(best_start + best_len..).unwrap_or_default();
        format!("{}::{}", hex(head), hex(tail))
    } else {
        hex(hextets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_compression_matches_python() {
        assert_eq!(parse_ipv6("::").as_deref(), Some("::"));
        assert_eq!(parse_ipv6("0:0:0:0:0:0:0:1").as_deref(), Some("::1"));
        assert_eq!(parse_ipv6("1:0:0:2:0:0:0:3").as_deref(), Some("1:0:0:2::3"));
        assert_eq!(
            parse_ipv6("1:0:2:3:4:5:6:7").as_deref(),
            Some("1:0:2:3:4:5:6:7")
        );
        assert_eq!(
            parse_ipv6("::FFFF:1.2.3.4").as_deref(),
            Some("::ffff:102:304")
        );
        assert_eq!(parse_ipv6("fe80::1%eth0").as_deref(), Some("fe80::1%eth0"));
        assert_eq!(parse_ipv6("1::2::3"), None);
        assert_eq!(parse_ipv6(":1:2:3:4:5:6:7"), None);
        assert_eq!(parse_ipv6("1:2:3:4:5:6:7:8:9"), None);
        assert_eq!(parse_ipv6("::01.2.3.4"), None);
    }
}
