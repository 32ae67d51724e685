//! RFB pixel formats: the 16-byte description, and turning one pixel of a
//! true-colour format into 8-bit RGB.

/// A pixel format as RFB describes it (ServerInit, SetPixelFormat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bits a pixel takes on the wire: 8, 16 or 32 for a usable format.
    pub bits_per_pixel: u8,
    /// Bits of colour in a pixel.
    pub depth: u8,
    /// Whether multi-byte pixels are big-endian.
    pub big_endian: bool,
    /// Whether pixels are colours (else colour-map indices).
    pub true_colour: bool,
    /// The largest red, green and blue levels.
    pub max: [u16; 3],
    /// How far right to shift a pixel to find red, green and blue.
    pub shift: [u8; 3],
}

impl PixelFormat {
    /// 32-bit little-endian true colour, 8 bits a channel: what the client
    /// asks for when the server's own format cannot be decoded.
    pub const RGB888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };

    /// The format in its 16-byte wire form (the last 3 bytes are padding).
    pub fn parse(bytes: &[u8; 16]) -> PixelFormat {
        let u16_at = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        PixelFormat {
            bits_per_pixel: bytes[0],
            depth: bytes[1],
            big_endian: bytes[2] != 0,
            true_colour: bytes[3] != 0,
            max: [u16_at(4), u16_at(6), u16_at(8)],
            shift: [bytes[10], bytes[11], bytes[12]],
        }
    }

    /// The 16-byte wire form.
    pub fn encode(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[0] = self.bits_per_pixel;
        bytes[1] = self.depth;
        bytes[2] = u8::from(self.big_endian);
        bytes[3] = u8::from(self.true_colour);
        for (i, max) in self.max.iter().enumerate() {
            bytes[4 + 2 * i..6 + 2 * i].copy_from_slice(&max.to_be_bytes());
        }
        bytes[10..13].copy_from_slice(&self.shift);
        bytes
    }

    /// Whether [`PixelFormat::rgb`] can decode it: true colour, 8, 16 or
    /// 32 bits a pixel, every channel present, every shift inside a pixel
    /// word.
    pub fn usable(&self) -> bool {
        self.true_colour
            && matches!(self.bits_per_pixel, 8 | 16 | 32)
            && self.max.iter().all(|&max| max > 0)
            && self.shift.iter().all(|&shift| shift < 32)
    }

    /// Bytes a pixel takes on the wire.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// One pixel's bytes (1, 2 or 4 of them, per a [`usable`] format) as
    /// 8-bit RGB, each channel scaled from `0..=max` to `0..=255`.
    ///
    /// [`usable`]: PixelFormat::usable
    pub fn rgb(&self, pixel: &[u8]) -> [u8; 3] {
        let value = match (pixel, self.big_endian) {
            ([byte], _) => u32::from(*byte),
            ([a, b], false) => u32::from(u16::from_le_bytes([*a, *b])),
            ([a, b], true) => u32::from(u16::from_be_bytes([*a, *b])),
            ([a, b, c, d], false) => u32::from_le_bytes([*a, *b, *c, *d]),
            ([a, b, c, d], true) => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => 0,
        };
        let mut rgb = [0u8; 3];
        for (channel, out) in rgb.iter_mut().enumerate() {
            let max = u32::from(self.max[channel]);
            let level = value
                .checked_shr(u32::from(self.shift[channel]))
                .unwrap_or(0)
                & max;
            // Scaled to 0–255, rounded; `level <= max`, so it fits.
            *out = u8::try_from((level * 255 + max / 2) / max.max(1)).unwrap_or(u8::MAX);
        }
        rgb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb888_decodes_and_round_trips() {
        let rgb888 = PixelFormat::RGB888;
        assert_eq!(rgb888.rgb(&[0x33, 0x22, 0x11, 0]), [0x11, 0x22, 0x33]);
        assert_eq!(PixelFormat::parse(&rgb888.encode()), rgb888);
        assert_eq!(rgb888.bytes_per_pixel(), 4);
    }

    #[test]
    fn rgb565_big_endian_scales_to_full_levels() {
        let rgb565 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            true_colour: true,
            max: [31, 63, 31],
            shift: [11, 5, 0],
        };
        assert!(rgb565.usable());
        assert_eq!(rgb565.rgb(&[0xf8, 0x00]), [255, 0, 0]);
        assert_eq!(rgb565.rgb(&[0x07, 0xe0]), [0, 255, 0]);
    }

    #[test]
    fn colour_maps_and_odd_formats_are_not_usable() {
        let rgb888 = PixelFormat::RGB888;
        for format in [
            PixelFormat {
                true_colour: false,
                ..rgb888
            },
            PixelFormat {
                bits_per_pixel: 24,
                ..rgb888
            },
            PixelFormat {
                max: [255, 0, 255],
                ..rgb888
            },
            PixelFormat {
                shift: [40, 8, 0],
                ..rgb888
            },
        ] {
            assert!(!format.usable(), "{format:?}");
        }
    }

    #[test]
    fn hostile_formats_never_panic() {
        let hostile = PixelFormat {
            bits_per_pixel: 32,
            depth: 0,
            big_endian: true,
            true_colour: true,
            max: [0, u16::MAX, 1],
            shift: [255, 31, 0],
        };
        assert_eq!(hostile.rgb(&[0xff; 4]), [0, 0, 255]);
        assert_eq!(hostile.rgb(&[1, 2, 3]), [0, 0, 0]);
    }
}
