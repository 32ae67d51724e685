//! An RFB session over any [`Transport`]: the handshake, the pixel format,
//! the client-to-server messages and reading what the server sends.
//!
//! Pixels are taken in the server's own true-colour format when it can be
//! decoded; a colour-map server (or an odd format) is sent SetPixelFormat
//! for 32-bit true colour ([`PixelFormat::RGB888`]) instead.

use std::time::{Duration, Instant};

use crate::RfbError;
use crate::framebuffer::{ENCODING_DESKTOP_SIZE, ENCODING_RAW, Framebuffer, Update, read_update};
use crate::handshake::{ServerInit, handshake};
use crate::pixel::PixelFormat;
use crate::wire::{Transport, Wire};

/// How often [`Client::wait_for_update`] looks at the clock.
const POLL: Duration = Duration::from_millis(100);

/// A message from the server, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// A FramebufferUpdate, already applied to [`Client::screen`].
    FramebufferUpdate(Update),
    /// SetColourMapEntries (unused with true colour; skipped).
    ColourMap,
    /// Bell.
    Bell,
    /// ServerCutText (skipped).
    CutText,
}

/// A connected RFB session and the client's copy of the screen.
pub struct Client<S: Transport> {
    wire: Wire<S>,
    server: ServerInit,
    format: PixelFormat,
    screen: Framebuffer,
}

impl<S: Transport> Client<S> {
    /// Runs the handshake on `stream` and settles the pixel format.
    pub fn connect(stream: S) -> Result<Client<S>, RfbError> {
        let mut wire = Wire::new(stream)?;
        let server = handshake(&mut wire)?;
        let format = if server.format.usable() {
            server.format
        } else {
            let mut message = vec![0, 0, 0, 0]; // SetPixelFormat + padding
            message.extend(PixelFormat::RGB888.encode());
            wire.send(&message)?;
            PixelFormat::RGB888
        };
        let screen = Framebuffer::new(server.width, server.height);
        tracing::debug!(
            minor = server.minor,
            width = server.width,
            height = server.height,
            desktop = ?server.name,
            converted = !server.format.usable(),
            "RFB handshake done"
        );
        Ok(Client {
            wire,
            server,
            format,
            screen,
        })
    }

    /// What the server said in the handshake.
    pub fn server(&self) -> &ServerInit {
        &self.server
    }

    /// The pixel format in use.
    pub fn format(&self) -> &PixelFormat {
        &self.format
    }

    /// The screen as far as the updates so far have drawn it.
    pub fn screen(&self) -> &Framebuffer {
        &self.screen
    }

    /// The stream the session runs on.
    pub fn transport(&self) -> &S {
        self.wire.stream()
    }

    /// Takes the screen out of the session.
    pub fn into_screen(self) -> Framebuffer {
        self.screen
    }

    /// SetEncodings with just Raw.
    pub fn use_raw(&mut self) -> Result<(), RfbError> {
        self.set_encodings(&[ENCODING_RAW])
    }

    /// SetEncodings with Raw and the DesktopSize pseudo-encoding.
    pub fn use_raw_and_desktop_size(&mut self) -> Result<(), RfbError> {
        self.set_encodings(&[ENCODING_RAW, ENCODING_DESKTOP_SIZE])
    }

    fn set_encodings(&mut self, encodings: &[i32]) -> Result<(), RfbError> {
        // At most two encodings: the count always fits.
        let count = u16::try_from(encodings.len()).unwrap_or(u16::MAX);
        let mut message = vec![2, 0];
        message.extend(count.to_be_bytes());
        for encoding in encodings {
            message.extend(encoding.to_be_bytes());
        }
        self.wire.send(&message)
    }

    /// FramebufferUpdateRequest for the whole screen.
    pub fn request_update(&mut self, incremental: bool) -> Result<(), RfbError> {
        let mut message = vec![3, u8::from(incremental), 0, 0, 0, 0];
        message.extend(self.screen.width.to_be_bytes());
        message.extend(self.screen.height.to_be_bytes());
        self.wire.send(&message)
    }

    /// Waits up to `wait` for the next server message and reads it; `None`
    /// when none began in time.
    pub fn next_message(&mut self, wait: Duration) -> Result<Option<ServerMessage>, RfbError> {
        let Some(kind) = self.wire.next_byte(wait)? else {
            return Ok(None);
        };
        let message = match kind {
            0 => ServerMessage::FramebufferUpdate(read_update(
                &mut self.wire,
                &mut self.screen,
                &self.format,
            )?),
            1 => {
                self.wire.skip(1)?;
                let _first = self.wire.read_u16()?;
                let count = self.wire.read_u16()?;
                self.wire.skip(u64::from(count) * 6)?;
                ServerMessage::ColourMap
            }
            2 => ServerMessage::Bell,
            3 => {
                self.wire.skip(3)?;
                let len = self.wire.read_u32()?;
                self.wire.skip(u64::from(len))?;
                ServerMessage::CutText
            }
            other => return Err(RfbError::UnknownMessage(other)),
        };
        Ok(Some(message))
    }

    /// Reads messages until a FramebufferUpdate arrives (or `timeout`
    /// passes: [`RfbError::NoScreen`]) and returns it.
    pub fn wait_for_update(&mut self, timeout: Duration) -> Result<Update, RfbError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(RfbError::NoScreen {
                    seconds: timeout.as_secs(),
                });
            }
            let wait = POLL.min(deadline - now);
            if let Some(ServerMessage::FramebufferUpdate(update)) = self.next_message(wait)? {
                return Ok(update);
            }
        }
    }
}
