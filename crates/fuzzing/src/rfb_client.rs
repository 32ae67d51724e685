//! The RFB (VNC) client against a server whose every byte is the input.

use std::io::{self, Cursor, Read, Write};
use std::time::Duration;

use rfb::{Client, Transport};

/// Server messages read at most: the input ends sooner anyway.
const MAX_MESSAGES: usize = 4096;

/// Screens up to this many pixels are also encoded as PNG.
const MAX_PNG_PIXELS: usize = 64 * 64;

/// A server that says the input and then hangs up; what the client writes
/// is dropped.
struct Script(Cursor<Vec<u8>>);

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Script {
    fn set_read_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// Runs a client session against a server that sends `data`: the
/// handshake, then what a capture does (encodings, an update request) and
/// every server message until the input ends. A small final screen is also
/// written as a PNG, which must read back with its size.
///
/// # Panics
///
/// When a small screen's PNG does not read back with the screen's size.
pub fn rfb(data: &[u8]) {
    let Ok(mut client) = Client::connect(Script(Cursor::new(data.to_vec()))) else {
        return;
    };
    if client.use_raw_and_desktop_size().is_err() || client.request_update(false).is_err() {
        return;
    }
    for _ in 0..MAX_MESSAGES {
        match client.next_message(Duration::ZERO) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let screen = client.screen();
    let (width, height) = (screen.width, screen.height);
    if usize::from(width) * usize::from(height) > MAX_PNG_PIXELS {
        return;
    }
    let _ = screen.is_uniform();
    if let Ok(png) = screen.to_png() {
        let size = rfb::screenshot::png_size(Cursor::new(png));
        assert_eq!(
            size.ok(),
            Some((u32::from(width), u32::from(height))),
            "the PNG of a {width}x{height} screen"
        );
    }
}
