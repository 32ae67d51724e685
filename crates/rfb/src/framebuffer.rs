//! The client's copy of the screen, and decoding FramebufferUpdate
//! messages into it.
//!
//! Two encodings are understood, the ones the client asks for: Raw (0)
//! and the DesktopSize pseudo-encoding (-223; QEMU switches between
//! 640×480 graphics and 720×400 text modes while booting). Rectangles may
//! reach past the screen: their pixels are read and the part outside is
//! dropped, so a hostile rectangle costs one row buffer (at most 65535 × 4
//! bytes), never more.

use crate::RfbError;
use crate::handshake::acceptable_size;
use crate::pixel::PixelFormat;
use crate::wire::{Transport, Wire};

/// The Raw encoding.
pub const ENCODING_RAW: i32 = 0;
/// The DesktopSize pseudo-encoding: the server may resize the screen.
pub const ENCODING_DESKTOP_SIZE: i32 = -223;

/// A screen as 8-bit RGB: 3 bytes a pixel, row after row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The pixels.
    pub rgb: Vec<u8>,
}

impl Framebuffer {
    /// A black screen of `width`×`height`.
    pub fn new(width: u16, height: u16) -> Framebuffer {
        Framebuffer {
            width,
            height,
            rgb: vec![0; usize::from(width) * usize::from(height) * 3],
        }
    }

    /// Whether every pixel has the same colour (a blank screen).
    pub fn is_uniform(&self) -> bool {
        let mut pixels = self.rgb.chunks_exact(3);
        match pixels.next() {
            None => true,
            Some(first) => pixels.all(|pixel| pixel == first),
        }
    }

    /// The pixels as `[r, g, b]` triples.
    pub fn pixels(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
        self.rgb
            .chunks_exact(3)
            .map(|pixel| [pixel[0], pixel[1], pixel[2]])
    }

    /// Sets the pixel at (`x`, `y`), which must be on screen; whether its
    /// colour changed.
    fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) -> bool {
        let at = (y * usize::from(self.width) + x) * 3;
        let Some(pixel) = self.rgb.get_mut(at..at + 3) else {
            return false;
        };
        if *pixel == rgb {
            return false;
        }
        pixel.copy_from_slice(&rgb);
        true
    }
}

/// One rectangle of a FramebufferUpdate, as announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rectangle {
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// The encoding (0 Raw, -223 DesktopSize).
    pub encoding: i32,
}

/// What one FramebufferUpdate did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Its rectangles, in order.
    pub rectangles: Vec<Rectangle>,
    /// Pixels whose colour changed.
    pub changed: usize,
    /// The new size, when the server resized the screen.
    pub resized: Option<(u16, u16)>,
}

impl Update {
    /// The pixels the Raw rectangles covered (overlaps counted twice).
    pub fn covered(&self) -> u64 {
        self.rectangles
            .iter()
            .filter(|rectangle| rectangle.encoding == ENCODING_RAW)
            .map(|rectangle| u64::from(rectangle.width) * u64::from(rectangle.height))
            .sum()
    }
}

/// Reads the rest of a FramebufferUpdate (after its type byte) into
/// `screen`.
pub(crate) fn read_update<S: Transport>(
    wire: &mut Wire<S>,
    screen: &mut Framebuffer,
    format: &PixelFormat,
) -> Result<Update, RfbError> {
    wire.skip(1)?; // padding
    let count = wire.read_u16()?;
    let mut update = Update::default();
    let mut row = Vec::new();
    for _ in 0..count {
        let rectangle = Rectangle {
            x: wire.read_u16()?,
            y: wire.read_u16()?,
            width: wire.read_u16()?,
            height: wire.read_u16()?,
            encoding: wire.read_i32()?,
        };
        update.rectangles.push(rectangle);
        match rectangle.encoding {
            ENCODING_RAW => {
                update.changed += read_raw(wire, screen, format, &rectangle, &mut row)?;
            }
            ENCODING_DESKTOP_SIZE => {
                let (width, height) = (rectangle.width, rectangle.height);
                if !acceptable_size(width, height) {
                    return Err(RfbError::Resized { width, height });
                }
                *screen = Framebuffer::new(width, height);
                update.resized = Some((width, height));
            }
            other => return Err(RfbError::UnexpectedEncoding(other)),
        }
    }
    Ok(update)
}

/// Reads one Raw rectangle row by row; the number of pixels it changed.
fn read_raw<S: Transport>(
    wire: &mut Wire<S>,
    screen: &mut Framebuffer,
    format: &PixelFormat,
    rectangle: &Rectangle,
    row: &mut Vec<u8>,
) -> Result<usize, RfbError> {
    let bytes_per_pixel = format.bytes_per_pixel().max(1);
    row.resize(usize::from(rectangle.width) * bytes_per_pixel, 0);
    let mut changed = 0;
    for line in 0..rectangle.height {
        wire.read_exact(row)?;
        let y = usize::from(rectangle.y) + usize::from(line);
        if y >= usize::from(screen.height) {
            continue;
        }
        for (column, pixel) in row.chunks_exact(bytes_per_pixel).enumerate() {
            let x = usize::from(rectangle.x) + column;
            if x >= usize::from(screen.width) {
                break;
            }
            if screen.set(x, y, format.rgb(pixel)) {
                changed += 1;
            }
        }
    }
    Ok(changed)
}
