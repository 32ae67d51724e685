//! The RFB handshake, from the server's banner to ServerInit.
//!
//! Versions 3.3, 3.7 and 3.8 are spoken (a newer 3.x server is answered
//! with 3.8, as the specification asks); the only security type is None;
//! ClientInit asks for a shared session, so other viewers stay connected.
//! ServerInit's framebuffer size is checked against [`MAX_SIDE`] before
//! anything is allocated for it, and its desktop name is kept up to
//! [`crate::wire::MAX_TEXT_KEPT`] bytes.

use std::io::Read;

use crate::RfbError;
use crate::pixel::PixelFormat;
use crate::wire::{Transport, Wire};

/// The largest framebuffer side accepted (a hostile server cannot make the
/// client allocate more than 8192×8192 pixels).
pub const MAX_SIDE: u16 = 8192;

/// The security type None.
const SECURITY_NONE: u8 = 1;

/// What the server said during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    /// The server's 12-byte banner, e.g. `"RFB 003.008\n"`.
    pub banner: String,
    /// The protocol minor version both sides use (3, 7 or 8).
    pub minor: u16,
    /// Framebuffer width in pixels.
    pub width: u16,
    /// Framebuffer height in pixels.
    pub height: u16,
    /// The server's own pixel format.
    pub format: PixelFormat,
    /// The desktop name (lossily decoded, possibly cut).
    pub name: String,
}

/// Reads just the 12-byte banner a server sends first, as text (for a
/// caller that only checks that a server answers).
pub fn read_banner(stream: &mut impl Read) -> Result<String, RfbError> {
    let mut banner = [0u8; 12];
    stream.read_exact(&mut banner).map_err(RfbError::Read)?;
    Ok(String::from_utf8_lossy(&banner).into_owned())
}

/// Whether `width`×`height` is a framebuffer size the client accepts.
pub(crate) fn acceptable_size(width: u16, height: u16) -> bool {
    width > 0 && height > 0 && width <= MAX_SIDE && height <= MAX_SIDE
}

/// Runs the handshake up to and including ServerInit.
pub(crate) fn handshake<S: Transport>(wire: &mut Wire<S>) -> Result<ServerInit, RfbError> {
    let banner: [u8; 12] = wire.read_array()?;
    let minor = parse_banner(&banner)?.min(8);
    wire.send(format!("RFB 003.{minor:03}\n").as_bytes())?;
    if minor >= 7 {
        choose_security_none(wire)?;
        if minor >= 8 {
            check_security_result(wire)?;
        }
    } else {
        accept_security_v33(wire)?;
    }
    wire.send(&[1])?; // ClientInit: shared.
    let width = wire.read_u16()?;
    let height = wire.read_u16()?;
    let format = PixelFormat::parse(&wire.read_array::<16>()?);
    let name = wire.read_text()?;
    if !acceptable_size(width, height) {
        return Err(RfbError::ScreenSize { width, height });
    }
    Ok(ServerInit {
        banner: String::from_utf8_lossy(&banner).into_owned(),
        minor,
        width,
        height,
        format,
        name,
    })
}

/// `RFB 003.00x\n` → x (the minor version, at least 3).
fn parse_banner(banner: &[u8; 12]) -> Result<u16, RfbError> {
    let minor = std::str::from_utf8(banner)
        .ok()
        .filter(|text| text.starts_with("RFB 003.") && text.ends_with('\n'))
        .and_then(|text| text.get(8..11))
        .and_then(|digits| digits.parse::<u16>().ok());
    match minor {
        Some(minor) if minor >= 3 => Ok(minor),
        _ => Err(RfbError::NotVnc {
            said: String::from_utf8_lossy(banner).into_owned(),
        }),
    }
}

/// RFB 3.7+: the server lists its security types, the client picks None.
fn choose_security_none<S: Transport>(wire: &mut Wire<S>) -> Result<(), RfbError> {
    let count = wire.read_u8()?;
    if count == 0 {
        let reason = wire.read_text()?;
        return Err(RfbError::Refused { reason });
    }
    let mut types = vec![0u8; usize::from(count)];
    wire.read_exact(&mut types)?;
    if !types.contains(&SECURITY_NONE) {
        return Err(RfbError::AuthenticationRequired { types });
    }
    wire.send(&[SECURITY_NONE])
}

/// RFB 3.3: the server decides the security type alone.
fn accept_security_v33<S: Transport>(wire: &mut Wire<S>) -> Result<(), RfbError> {
    match wire.read_u32()? {
        1 => Ok(()),
        0 => {
            let reason = wire.read_text()?;
            Err(RfbError::Refused { reason })
        }
        other => Err(RfbError::UnsupportedSecurity(other)),
    }
}

/// RFB 3.8: SecurityResult, with a reason when it failed.
fn check_security_result<S: Transport>(wire: &mut Wire<S>) -> Result<(), RfbError> {
    if wire.read_u32()? != 0 {
        let reason = wire.read_text().unwrap_or_default();
        return Err(RfbError::Refused { reason });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners() {
        assert_eq!(parse_banner(b"RFB 003.008\n").ok(), Some(8));
        assert_eq!(parse_banner(b"RFB 003.003\n").ok(), Some(3));
        assert_eq!(parse_banner(b"RFB 003.889\n").ok(), Some(889));
        for bad in [
            b"RFB 003.002\n",
            b"RFB 004.000\n",
            b"HTTP/1.1 200",
            b"RFB 003.00x\n",
        ] {
            assert!(
                matches!(parse_banner(bad), Err(RfbError::NotVnc { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_banner(&[0xff; 12]).is_err());
    }

    #[test]
    fn sizes() {
        assert!(acceptable_size(640, 480));
        assert!(acceptable_size(MAX_SIDE, MAX_SIDE));
        assert!(!acceptable_size(0, 480));
        assert!(!acceptable_size(u16::MAX, u16::MAX));
    }
}
