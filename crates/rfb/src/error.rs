//! Everything that can go wrong talking to a VNC server or writing its
//! screen, as one typed error.

use std::io;

/// Why an RFB session or a screenshot failed.
#[derive(Debug, thiserror::Error)]
pub enum RfbError {
    /// A read failed or the server closed the connection mid-message.
    #[error("the VNC server closed the connection or stopped answering")]
    Read(#[source] io::Error),
    /// A write to the server failed.
    #[error("cannot write to the VNC server")]
    Write(#[source] io::Error),
    /// The server closed the connection between two messages.
    #[error("the VNC server closed the connection")]
    Closed,
    /// Waiting for the next message failed (not a timeout).
    #[error("cannot read from the VNC server")]
    Wait(#[source] io::Error),
    /// The server's first 12 bytes are not an RFB 3.x banner.
    #[error("not a VNC server (it said {said:?})")]
    NotVnc {
        /// The banner, decoded lossily.
        said: String,
    },
    /// The server refused the connection, giving a reason.
    #[error("the VNC server refused the connection: {reason}")]
    Refused {
        /// The server's reason (at most [`crate::wire::MAX_TEXT_KEPT`] bytes).
        reason: String,
    },
    /// RFB 3.7+: the server does not offer security type None.
    #[error(
        "the VNC server wants authentication (security types {types:?}); only None is supported"
    )]
    AuthenticationRequired {
        /// The security types the server offered.
        types: Vec<u8>,
    },
    /// RFB 3.3: the server chose a security type other than None.
    #[error("the VNC server wants security type {0}; only None is supported")]
    UnsupportedSecurity(u32),
    /// ServerInit announced an empty or too large framebuffer.
    #[error("the VNC server's screen is {width}×{height}")]
    ScreenSize {
        /// The announced width.
        width: u16,
        /// The announced height.
        height: u16,
    },
    /// A DesktopSize update announced an empty or too large framebuffer.
    #[error("the VNC server resized its screen to {width}×{height}")]
    Resized {
        /// The new width.
        width: u16,
        /// The new height.
        height: u16,
    },
    /// A server message of a type RFB 3.8 does not define.
    #[error("the VNC server sent a message of unknown type {0}")]
    UnknownMessage(u8),
    /// A rectangle in an encoding the client did not ask for.
    #[error("the VNC server used encoding {0}, which was not asked for")]
    UnexpectedEncoding(i32),
    /// No full screen arrived before the deadline.
    #[error("the VNC server sent no screen within {seconds} s")]
    NoScreen {
        /// The time allowed, in whole seconds.
        seconds: u64,
    },
    /// [`RfbError::NoScreen`] from the server at a known address.
    #[error("the VNC server at {address} sent no screen within {seconds} s")]
    NoScreenAt {
        /// The address as given.
        address: String,
        /// The time allowed, in whole seconds.
        seconds: u64,
    },
    /// The address did not resolve.
    #[error("cannot resolve {address}")]
    Resolve {
        /// The address as given.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The address resolved to nothing.
    #[error("{address} has no address")]
    NoAddress {
        /// The address as given.
        address: String,
    },
    /// Connecting failed until the deadline.
    #[error("cannot connect to the VNC server at {address}")]
    Connect {
        /// The address as given.
        address: String,
        /// The last connection error.
        #[source]
        source: io::Error,
    },
    /// Pixels that do not fill the stated size (a caller's mistake).
    #[error("{len} bytes are not {width}×{height} RGB pixels")]
    PixelCount {
        /// The number of bytes given.
        len: usize,
        /// The stated width.
        width: u16,
        /// The stated height.
        height: u16,
    },
    /// The PNG encoder failed (or its output could not be written).
    #[error("cannot encode the screenshot as PNG")]
    Png(#[from] png::EncodingError),
    /// A file that should be a PNG is not one (or is damaged).
    #[error("not a readable PNG")]
    NotPng(#[from] png::DecodingError),
}
