//! A small RFB (VNC) client: enough of RFB 3.8 to look at a VM's screen.
//!
//! The map of the crate:
//!
//! - [`wire`]: the byte level over any [`Transport`] (a TCP or Unix
//!   socket: `Read + Write` whose reads can time out), bounded strings;
//! - [`handshake`]: versions 3.3, 3.7 and 3.8, security type None,
//!   ClientInit (shared) and ServerInit ([`ServerInit`]);
//! - [`pixel`]: pixel formats and decoding true-colour pixels to RGB;
//! - [`framebuffer`]: the client's RGB copy of the screen and decoding
//!   FramebufferUpdate (Raw, DesktopSize);
//! - [`client`]: the session ([`Client`]): SetPixelFormat when the server's
//!   format cannot be decoded, SetEncodings, update requests, server
//!   messages;
//! - [`capture`]: waiting until the screen shows something and has
//!   settled;
//! - [`screenshot`]: writing a screen as an RGB PNG.
//!
//! The server is untrusted: every malformed or truncated message is an
//! [`RfbError`], never a panic, and nothing it announces makes the client
//! allocate more than one 8192×8192 screen ([`handshake::MAX_SIDE`]), one
//! row of a rectangle and 64 KiB of text ([`wire::MAX_TEXT_KEPT`]).

pub mod capture;
pub mod client;
mod error;
pub mod framebuffer;
pub mod handshake;
pub mod pixel;
pub mod screenshot;
pub mod wire;

#[cfg(test)]
mod tests;

pub use capture::{Capture, capture};
pub use client::{Client, ServerMessage};
pub use error::RfbError;
pub use framebuffer::{Framebuffer, Rectangle, Update};
pub use handshake::ServerInit;
pub use pixel::PixelFormat;
pub use wire::Transport;
