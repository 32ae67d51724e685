//! The protocol against scripted servers: well-formed sessions in every
//! version, and truncated or hostile messages, which must end in a clear
//! error without panicking or allocating what the server announces.
#![allow(clippy::unwrap_used)]

use std::io::{self, Cursor, ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use crate::capture::capture_settled;
use crate::framebuffer::{ENCODING_DESKTOP_SIZE, ENCODING_RAW};
use crate::wire::{MAX_TEXT_KEPT, Transport};
use crate::{Client, PixelFormat, RfbError, ServerMessage};

/// A scripted server: what it sends, and what the client wrote. Once the
/// script is over it either hangs up or stays silent (reads time out).
struct FakeServer {
    script: Cursor<Vec<u8>>,
    written: Vec<u8>,
    silent_at_end: bool,
}

impl FakeServer {
    fn new(script: Vec<u8>) -> FakeServer {
        FakeServer {
            script: Cursor::new(script),
            written: Vec::new(),
            silent_at_end: false,
        }
    }
}

impl Read for FakeServer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.script.read(buf)?;
        if n == 0 && self.silent_at_end && !buf.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Write for FakeServer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for FakeServer {
    fn set_read_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// ServerInit for `width`×`height` in `format`, named `name`.
fn server_init(width: u16, height: u16, format: PixelFormat, name: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(width.to_be_bytes());
    bytes.extend(height.to_be_bytes());
    bytes.extend(format.encode());
    bytes.extend(u32::try_from(name.len()).unwrap().to_be_bytes());
    bytes.extend(name);
    bytes
}

/// An RFB 3.8 server's side of the handshake, up to ServerInit.
fn handshake_v38(width: u16, height: u16, name: &[u8]) -> Vec<u8> {
    let mut bytes = b"RFB 003.008\n".to_vec();
    bytes.extend([1, 1]); // one security type: None
    bytes.extend(0u32.to_be_bytes()); // SecurityResult: OK
    bytes.extend(server_init(width, height, PixelFormat::RGB888, name));
    bytes
}

/// A FramebufferUpdate message of Raw RGB888 rectangles.
fn raw_update(rectangles: &[(u16, u16, u16, u16, [u8; 3])]) -> Vec<u8> {
    let mut bytes = vec![0, 0];
    bytes.extend(u16::try_from(rectangles.len()).unwrap().to_be_bytes());
    for &(x, y, w, h, [r, g, b]) in rectangles {
        for value in [x, y, w, h] {
            bytes.extend(value.to_be_bytes());
        }
        bytes.extend(ENCODING_RAW.to_be_bytes());
        for _ in 0..usize::from(w) * usize::from(h) {
            bytes.extend([b, g, r, 0]);
        }
    }
    bytes
}

fn connect(script: Vec<u8>) -> Result<Client<FakeServer>, RfbError> {
    Client::connect(FakeServer::new(script))
}

#[test]
fn version_3_8_handshake_and_a_raw_update() {
    let mut script = handshake_v38(4, 2, b"QEMU (test)");
    script.extend(raw_update(&[
        (0, 0, 4, 2, [255, 0, 0]),
        (1, 1, 1, 1, [0, 0, 255]),
    ]));
    let mut client = connect(script).unwrap();
    assert_eq!(client.server().banner, "RFB 003.008\n");
    assert_eq!(client.server().name, "QEMU (test)");
    assert_eq!((client.server().width, client.server().height), (4, 2));
    client.use_raw().unwrap();
    client.request_update(false).unwrap();
    let update = client.wait_for_update(Duration::from_secs(1)).unwrap();
    assert_eq!(update.rectangles.len(), 2);
    assert_eq!(update.covered(), 9);
    let screen = client.screen();
    let red = screen.pixels().filter(|p| *p == [255, 0, 0]).count();
    assert_eq!(red, 7);
    assert!(!screen.is_uniform());
    let mut expected = b"RFB 003.008\n".to_vec();
    expected.extend([1, 1]); // None, ClientInit shared
    expected.extend([2, 0, 0, 1, 0, 0, 0, 0]); // SetEncodings: Raw
    expected.extend([3, 0, 0, 0, 0, 0, 0, 4, 0, 2]); // full update request
    assert_eq!(client.wire_written(), expected);
}

#[test]
fn versions_3_3_and_3_7() {
    let mut v33 = b"RFB 003.003\n".to_vec();
    v33.extend(1u32.to_be_bytes());
    v33.extend(server_init(8, 8, PixelFormat::RGB888, b"old"));
    let client = connect(v33).unwrap();
    assert_eq!(client.server().minor, 3);
    assert_eq!(client.wire_written(), b"RFB 003.003\n\x01");

    let mut v37 = b"RFB 003.007\n".to_vec();
    v37.extend([2, 2, 1]);
    v37.extend(server_init(8, 8, PixelFormat::RGB888, b""));
    let client = connect(v37).unwrap();
    assert_eq!(client.server().minor, 7);
    assert_eq!(client.wire_written(), b"RFB 003.007\n\x01\x01");

    // A newer 3.x server is answered with 3.8.
    let mut newer = b"RFB 003.889\n".to_vec();
    newer.extend(handshake_v38(8, 8, b"")[12..].iter());
    assert_eq!(connect(newer).unwrap().server().minor, 8);
}

#[test]
fn refusals_and_authentication_are_clear_errors() {
    let mut refused = b"RFB 003.008\n".to_vec();
    refused.push(0);
    refused.extend(7u32.to_be_bytes());
    refused.extend(b"go away");
    let error = connect(refused).err().unwrap();
    assert_eq!(
        error.to_string(),
        "the VNC server refused the connection: go away"
    );

    let mut vnc_auth = b"RFB 003.008\n".to_vec();
    vnc_auth.extend([1, 2]);
    assert!(matches!(
        connect(vnc_auth),
        Err(RfbError::AuthenticationRequired { types }) if types == [2]
    ));

    let mut failed = b"RFB 003.008\n".to_vec();
    failed.extend([1, 1]);
    failed.extend(1u32.to_be_bytes());
    assert!(matches!(connect(failed), Err(RfbError::Refused { .. })));

    let mut v33_auth = b"RFB 003.003\n".to_vec();
    v33_auth.extend(2u32.to_be_bytes());
    assert!(matches!(
        connect(v33_auth),
        Err(RfbError::UnsupportedSecurity(2))
    ));

    let not_vnc = b"SSH-2.0-OpenSSH_9.2\r\n".to_vec();
    assert!(matches!(connect(not_vnc), Err(RfbError::NotVnc { .. })));
}

#[test]
fn every_truncated_handshake_is_an_error() {
    let full = handshake_v38(16, 16, b"QEMU");
    for len in 0..full.len() {
        let error = connect(full[..len].to_vec()).err();
        assert!(
            matches!(error, Some(RfbError::Read(_) | RfbError::Closed)),
            "{len}: {error:?}"
        );
    }
}

#[test]
fn a_giant_framebuffer_is_refused_before_allocating_it() {
    let error = connect(handshake_v38(u16::MAX, u16::MAX, b"x")).err();
    assert!(
        matches!(
            error,
            Some(RfbError::ScreenSize {
                width: u16::MAX,
                height: u16::MAX
            })
        ),
        "{error:?}"
    );
    assert!(matches!(
        connect(handshake_v38(0, 480, b"")),
        Err(RfbError::ScreenSize { .. })
    ));
}

#[test]
fn a_huge_desktop_name_is_cut_not_buffered() {
    let name = vec![b'n'; 3 * MAX_TEXT_KEPT as usize];
    let client = connect(handshake_v38(8, 8, &name)).unwrap();
    assert_eq!(client.server().name.len(), MAX_TEXT_KEPT as usize);

    // A 4 GiB name that never comes: an error, not a 4 GiB buffer.
    let mut lying = handshake_v38(8, 8, b"");
    let at = lying.len() - 4;
    lying[at..].copy_from_slice(&u32::MAX.to_be_bytes());
    lying.extend(b"short");
    assert!(matches!(connect(lying), Err(RfbError::Read(_))));
}

#[test]
fn a_colour_map_server_is_asked_for_true_colour() {
    let colour_map = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        true_colour: false,
        max: [0, 0, 0],
        shift: [0, 0, 0],
    };
    let mut script = b"RFB 003.008\n".to_vec();
    script.extend([1, 1]);
    script.extend(0u32.to_be_bytes());
    script.extend(server_init(8, 8, colour_map, b""));
    let client = connect(script).unwrap();
    assert_eq!(*client.format(), PixelFormat::RGB888);
    let written = client.wire_written();
    let mut set_pixel_format = vec![0, 0, 0, 0];
    set_pixel_format.extend(PixelFormat::RGB888.encode());
    assert!(written.ends_with(&set_pixel_format));
}

#[test]
fn hostile_updates_are_errors_or_clipped() {
    let update = |body: Vec<u8>| {
        let mut script = handshake_v38(4, 4, b"");
        script.extend(body);
        let mut client = connect(script).unwrap();
        client.wait_for_update(Duration::from_secs(1))
    };
    // A rectangle reaching far past the screen: read, clipped.
    let clipped = update(raw_update(&[(2, 3, 300, 2, [0, 255, 0])])).unwrap();
    assert_eq!(clipped.changed, 2);
    // Announced but not sent: a read error (one row buffered at most).
    let mut truncated = raw_update(&[(0, 0, 1, 1, [1, 2, 3])]);
    truncated[8..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    truncated.truncate(30);
    assert!(matches!(update(truncated), Err(RfbError::Read(_))));
    // Resized to a giant screen.
    let mut giant = vec![0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    giant.extend(ENCODING_DESKTOP_SIZE.to_be_bytes());
    assert!(matches!(update(giant), Err(RfbError::Resized { .. })));
    // An encoding not asked for (Hextile).
    let mut hextile = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1];
    hextile.extend(5i32.to_be_bytes());
    assert!(matches!(
        update(hextile),
        Err(RfbError::UnexpectedEncoding(5))
    ));
    // A message type RFB does not have.
    assert!(matches!(
        update(vec![42]),
        Err(RfbError::UnknownMessage(42))
    ));
    // Hanging up between messages.
    assert!(matches!(update(Vec::new()), Err(RfbError::Closed)));
}

#[test]
fn other_server_messages_are_skipped() {
    let mut script = handshake_v38(2, 1, b"");
    script.extend([1, 0, 0, 0, 0, 2]); // SetColourMapEntries: 2 colours
    script.extend([0; 12]);
    script.push(2); // Bell
    script.extend([3, 0, 0, 0, 0, 0, 0, 3]); // ServerCutText
    script.extend(b"abc");
    script.extend(raw_update(&[(0, 0, 2, 1, [9, 9, 9])]));
    let mut client = connect(script).unwrap();
    let wait = Duration::from_secs(1);
    assert_eq!(
        client.next_message(wait).unwrap(),
        Some(ServerMessage::ColourMap)
    );
    assert_eq!(
        client.next_message(wait).unwrap(),
        Some(ServerMessage::Bell)
    );
    assert_eq!(
        client.next_message(wait).unwrap(),
        Some(ServerMessage::CutText)
    );
    assert!(client.screen().is_uniform());
    client.wait_for_update(wait).unwrap();
    assert_eq!(client.screen().pixels().next(), Some([9, 9, 9]));
}

#[test]
fn a_capture_follows_resizes_and_waits_until_the_screen_settles() {
    let mut script = handshake_v38(2, 2, b"");
    // Text mode to graphics: the screen starts again at 3×1.
    let mut resize = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 1];
    resize.extend(ENCODING_DESKTOP_SIZE.to_be_bytes());
    script.extend(resize);
    script.extend(raw_update(&[(0, 0, 3, 1, [0, 0, 0])]));
    script.extend(raw_update(&[(1, 0, 1, 1, [255, 255, 255])]));
    let mut server = FakeServer::new(script);
    server.silent_at_end = true;
    let client = Client::connect(server).unwrap();
    let started = Instant::now();
    let settle = Duration::from_millis(200);
    let capture = capture_settled(client, started + Duration::from_secs(10), settle).unwrap();
    assert!(capture.settled);
    assert!(started.elapsed() >= settle);
    assert_eq!((capture.screen.width, capture.screen.height), (3, 1));
    assert_eq!(capture.screen.rgb, [0, 0, 0, 255, 255, 255, 0, 0, 0]);
}

#[test]
fn a_capture_of_a_silent_server_is_no_screen() {
    let mut server = FakeServer::new(handshake_v38(2, 2, b""));
    server.silent_at_end = true;
    let client = Client::connect(server).unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    let result = capture_settled(client, deadline, Duration::from_millis(50));
    assert!(matches!(result, Err(RfbError::NoScreen { .. })));
}

impl Client<FakeServer> {
    /// What the client has written so far.
    fn wire_written(&self) -> Vec<u8> {
        self.transport().written.clone()
    }
}
