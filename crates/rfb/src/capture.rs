//! "Wait until the screen shows something and has settled": the capture a
//! screenshot needs.
//!
//! The client asks for incremental updates until the screen is not one
//! colour and has not changed for the settle time (updates of at most
//! [`NOISE_PIXELS`] pixels, such as a blinking text cursor, do not count),
//! or the timeout passes: then the screen is returned as it is, marked not
//! settled, unless no full screen ever came ([`RfbError::NoScreen`]).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::RfbError;
use crate::client::{Client, ServerMessage};
use crate::framebuffer::Framebuffer;
use crate::wire::Transport;

/// How long the screen must stay unchanged to count as settled.
pub const SETTLE: Duration = Duration::from_millis(1500);

/// Updates changing at most this many pixels are not changes (a blinking
/// text cursor is 9×2 pixels).
pub const NOISE_PIXELS: usize = 64;

/// How often to look at the clock while the server sends nothing.
const POLL: Duration = Duration::from_millis(100);

/// How long one TCP connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A captured screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The screen.
    pub screen: Framebuffer,
    /// Whether it settled before the timeout.
    pub settled: bool,
}

/// Connects to `address` (`HOST:PORT`), retrying while the server is not
/// up yet, until `deadline`.
pub fn connect_tcp(address: &str, deadline: Instant) -> Result<TcpStream, RfbError> {
    let socket = address
        .to_socket_addrs()
        .map_err(|source| RfbError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| RfbError::NoAddress {
            address: address.to_owned(),
        })?;
    loop {
        match TcpStream::connect_timeout(&socket, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Small requests must not wait for Nagle.
                stream.set_nodelay(true).map_err(RfbError::Write)?;
                return Ok(stream);
            }
            Err(source) if Instant::now() + POLL >= deadline => {
                return Err(RfbError::Connect {
                    address: address.to_owned(),
                    source,
                });
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Connects to the VNC server at `address` (`HOST:PORT`) and returns its
/// screen once it has settled for `settle`, or when `timeout` has passed
/// since connecting.
pub fn capture(address: &str, timeout: Duration, settle: Duration) -> Result<Capture, RfbError> {
    let deadline = Instant::now() + timeout;
    let stream = connect_tcp(address, deadline)?;
    let client = Client::connect(stream)?;
    capture_settled(client, deadline, settle).map_err(|error| match error {
        RfbError::NoScreen { .. } => RfbError::NoScreenAt {
            address: address.to_owned(),
            seconds: timeout.as_secs(),
        },
        other => other,
    })
}

/// On a connected session: asks for Raw and DesktopSize, then for updates
/// until the screen has settled for `settle` or `deadline` passes.
pub fn capture_settled<S: Transport>(
    mut client: Client<S>,
    deadline: Instant,
    settle: Duration,
) -> Result<Capture, RfbError> {
    let started = Instant::now();
    client.use_raw_and_desktop_size()?;
    client.request_update(false)?;
    let mut have_full_screen = false;
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        let settled = now.duration_since(last_change) >= settle;
        if have_full_screen && !client.screen().is_uniform() && settled {
            return Ok(Capture {
                screen: client.into_screen(),
                settled: true,
            });
        }
        if now >= deadline {
            if !have_full_screen {
                return Err(RfbError::NoScreen {
                    seconds: deadline.duration_since(started).as_secs(),
                });
            }
            return Ok(Capture {
                screen: client.into_screen(),
                settled: false,
            });
        }
        let Some(ServerMessage::FramebufferUpdate(update)) =
            client.next_message(POLL.min(deadline - now))?
        else {
            continue;
        };
        if update.resized.is_some() {
            // A new mode: everything so far is gone, ask for all of it.
            have_full_screen = false;
            last_change = Instant::now();
            client.request_update(false)?;
            continue;
        }
        if update.changed > NOISE_PIXELS || !have_full_screen {
            last_change = Instant::now();
        }
        have_full_screen = true;
        client.request_update(true)?;
    }
}
