//! Screenshots: a screen as an 8-bit RGB PNG, by the `png` crate.

use std::io::{BufRead, Seek, Write};

use crate::RfbError;
use crate::framebuffer::Framebuffer;

/// Writes `width`×`height` RGB pixels (`rgb`, row after row) as a PNG.
pub fn write_png(out: impl Write, width: u16, height: u16, rgb: &[u8]) -> Result<(), RfbError> {
    let expected = usize::from(width) * usize::from(height) * 3;
    if width == 0 || height == 0 || rgb.len() != expected {
        return Err(RfbError::PixelCount {
            len: rgb.len(),
            width,
            height,
        });
    }
    let mut encoder = png::Encoder::new(out, u32::from(width), u32::from(height));
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Every row unfiltered (filter type 0), as the screenshots have always
    // been written: simple for any reader, and screens deflate well as
    // they are.
    encoder.set_filter(png::Filter::NoFilter);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

/// A PNG of `width`×`height` RGB pixels in memory.
pub fn png(width: u16, height: u16, rgb: &[u8]) -> Result<Vec<u8>, RfbError> {
    let mut out = Vec::new();
    write_png(&mut out, width, height, rgb)?;
    Ok(out)
}

/// The width and height a PNG's header states (only the header is read).
pub fn png_size(png: impl BufRead + Seek) -> Result<(u32, u32), RfbError> {
    let reader = png::Decoder::new(png).read_info()?;
    let info = reader.info();
    Ok((info.width, info.height))
}

impl Framebuffer {
    /// The screen as a PNG in memory.
    pub fn to_png(&self) -> Result<Vec<u8>, RfbError> {
        png(self.width, self.height, &self.rgb)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_png_decodes_to_the_same_pixels() {
        let rgb = [255, 0, 0, 0, 0, 255, 1, 2, 3, 4, 5, 6];
        let bytes = png(2, 2, &rgb).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"));
        assert!(bytes.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut decoded = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut decoded).unwrap();
        assert_eq!((info.width, info.height), (2, 2));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&decoded[..info.buffer_size()], &rgb);
    }

    #[test]
    fn png_sizes() {
        let bytes = png(3, 2, &[7; 18]).unwrap();
        assert_eq!(png_size(std::io::Cursor::new(bytes)).unwrap(), (3, 2));
        let not_png = std::io::Cursor::new(b"GIF89a and so on".to_vec());
        assert!(matches!(png_size(not_png), Err(RfbError::NotPng(_))));
    }

    #[test]
    fn wrong_pixel_counts_are_errors() {
        assert!(matches!(
            png(2, 1, &[0; 5]),
            Err(RfbError::PixelCount { len: 5, .. })
        ));
        assert!(png(0, 0, &[]).is_err());
    }
}
