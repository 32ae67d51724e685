//! `olive2022 rfb-snapshot` (hidden): a screenshot of a VNC server as a PNG.
//!
//! The demo's viewer when there is no display: `launch` runs it with the
//! single argument `vnc://127.0.0.1:PORT` (the tunnel's local end), so it is
//! reached through a symbolic link named [`ALIAS`] to this binary and takes
//! the rest from the environment (see [`crate::cli::RfbSnapshotArgs`]).
//!
//! It speaks RFB 3.8 (3.3 and 3.7 too): security type None, a shared
//! session, Raw encoding plus the DesktopSize pseudo-encoding (QEMU switches
//! between 640×480 graphics and 720×400 text modes while booting), pixels
//! in the server's own true-colour format (a colour-map server is asked for
//! 32-bit true colour instead). It keeps asking for incremental updates
//! until the screen shows something (not one colour) and has not changed
//! for [`SETTLE`] (a blinking cursor does not count), or the timeout
//! passes, then writes an 8-bit RGB PNG of it: zlib from `flate2`, chunk
//! CRCs from `flate2::Crc`, no image crate.

use std::ffi::OsString;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::RfbSnapshotArgs;

/// The name under which this binary acts as `rfb-snapshot` (a symbolic
/// link the demo makes, given to `launch --viewer`).
pub const ALIAS: &str = "olive2022-rfb-snapshot";

/// How long the screen must stay unchanged to count as settled.
pub const SETTLE: Duration = Duration::from_millis(1500);
/// Updates changing at most this many pixels are not changes (a blinking
/// text cursor is 9×2 pixels).
const NOISE_PIXELS: usize = 64;
/// How often to look at the clock while the server sends nothing.
const POLL: Duration = Duration::from_millis(100);
/// How long the rest of a message may take once its first byte came.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest framebuffer accepted (a hostile server cannot make us
/// allocate more): 8192×8192.
const MAX_SIDE: u16 = 8192;

/// The arguments as clap should see them: when this binary runs as
/// [`ALIAS`], the hidden `rfb-snapshot` subcommand is put first.
pub fn args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let alias = args
        .first()
        .and_then(|argv0| Path::new(argv0).file_name())
        .is_some_and(|name| name == ALIAS);
    if alias {
        args.insert(1, OsString::from("rfb-snapshot"));
    }
    args
}

/// `olive2022 rfb-snapshot ADDRESS OUT.png`.
pub fn run(args: &RfbSnapshotArgs) -> Result<ExitCode> {
    let address = parse_address(&args.address)?;
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout);
    let screen = capture(&address, timeout, SETTLE)?;
    write_png_atomically(&args.output, &screen)?;
    println!(
        "VM screen at vnc://{address}: {}×{} saved to {} after {:.1} s{}",
        screen.width,
        screen.height,
        args.output.display(),
        started.elapsed().as_secs_f64(),
        if screen.settled {
            ""
        } else {
            " (it had not settled yet)"
        }
    );
    if args.hold {
        // `launch` keeps the tunnel up while its viewer (this process)
        // runs: wait until interrupted, or until `launch` itself is gone.
        println!("The VM stays reachable at vnc://{address}; press Ctrl-C to stop the demo");
        let parent = std::os::unix::process::parent_id();
        while std::os::unix::process::parent_id() == parent {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vnc://HOST:PORT`, `HOST::PORT` or `HOST:PORT` as `HOST:PORT`.
fn parse_address(text: &str) -> Result<String> {
    let rest = text.strip_prefix("vnc://").unwrap_or(text);
    let rest = rest.trim_end_matches('/');
    let split = if rest.starts_with('[') {
        rest.split_once("]:")
            .map(|(host, port)| (&rest[..=host.len()], port))
    } else {
        rest.split_once("::").or_else(|| rest.rsplit_once(':'))
    };
    let (host, port) = split.context("the VNC address has no port")?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("bad port in the VNC address {text:?}"))?;
    if host.is_empty() {
        bail!("the VNC address {text:?} has no host");
    }
    Ok(format!("{host}:{port}"))
}

/// A captured screen: RGB, 3 bytes a pixel, row after row.
#[derive(Debug, Clone)]
pub struct Screen {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The pixels.
    pub rgb: Vec<u8>,
    /// Whether the screen settled before the timeout.
    pub settled: bool,
}

impl Screen {
    fn new(width: u16, height: u16) -> Screen {
        Screen {
            width,
            height,
            rgb: vec![0; usize::from(width) * usize::from(height) * 3],
            settled: false,
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
}

/// A true-colour pixel format as RFB describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PixelFormat {
    bits_per_pixel: u8,
    depth: u8,
    big_endian: bool,
    true_colour: bool,
    max: [u16; 3],
    shift: [u8; 3],
}

impl PixelFormat {
    /// 32-bit little-endian true colour, 8 bits a channel.
    const RGB888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };

    fn parse(bytes: &[u8; 16]) -> PixelFormat {
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

    fn encode(&self) -> [u8; 16] {
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

    /// Whether we can decode it.
    fn usable(&self) -> bool {
        self.true_colour
            && matches!(self.bits_per_pixel, 8 | 16 | 32)
            && self.max.iter().all(|&max| max > 0)
            && self.shift.iter().all(|&shift| shift < 32)
    }

    fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// One pixel's bytes as RGB.
    fn rgb(&self, pixel: &[u8]) -> [u8; 3] {
        let value = match (pixel.len(), self.big_endian) {
            (1, _) => u32::from(pixel[0]),
            (2, false) => u32::from(u16::from_le_bytes([pixel[0], pixel[1]])),
            (2, true) => u32::from(u16::from_be_bytes([pixel[0], pixel[1]])),
            (_, false) => u32::from_le_bytes([pixel[0], pixel[1], pixel[2], pixel[3]]),
            (_, true) => u32::from_be_bytes([pixel[0], pixel[1], pixel[2], pixel[3]]),
        };
        let mut rgb = [0u8; 3];
        for (channel, out) in rgb.iter_mut().enumerate() {
            let max = u32::from(self.max[channel]);
            let level = (value >> self.shift[channel]) & max;
            // Scaled to 0–255, rounded; `level <= max`, so it fits.
            *out = u8::try_from((level * 255 + max / 2) / max).unwrap_or(u8::MAX);
        }
        rgb
    }
}

/// The RFB session: a buffered reader over the socket and its writer.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reader
            .read_exact(buf)
            .context("the VNC server closed the connection or stopped answering")
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn read_u8(&mut self) -> Result<u8> {
        Ok(self.read_array::<1>()?[0])
    }

    fn read_u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.read_array()?))
    }

    fn read_u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.read_array()?))
    }

    /// Skips `len` bytes.
    fn skip(&mut self, len: u64) -> Result<()> {
        let copied = std::io::copy(&mut (&mut self.reader).take(len), &mut std::io::sink())?;
        if copied != len {
            bail!("the VNC server closed the connection");
        }
        Ok(())
    }

    /// A length-prefixed string (a failure reason), at most 64 KiB read.
    fn read_reason(&mut self) -> Result<String> {
        let len = self.read_u32()?;
        let kept = len.min(65_536);
        let mut text = vec![0u8; usize::try_from(kept)?];
        self.read_exact(&mut text)?;
        self.skip(u64::from(len - kept))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .context("cannot write to the VNC server")
    }

    fn request_update(&mut self, incremental: bool, width: u16, height: u16) -> Result<()> {
        let mut message = vec![3, u8::from(incremental), 0, 0, 0, 0];
        message.extend(width.to_be_bytes());
        message.extend(height.to_be_bytes());
        self.send(&message)
    }

    /// Waits up to `wait` for the first byte of the next server message.
    fn next_message_type(&mut self, wait: Duration) -> Result<Option<u8>> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut byte = [0u8; 1];
        let result = self.reader.read(&mut byte);
        self.reader
            .get_ref()
            .set_read_timeout(Some(MESSAGE_TIMEOUT))?;
        match result {
            Ok(0) => bail!("the VNC server closed the connection"),
            Ok(_) => Ok(Some(byte[0])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e).context("cannot read from the VNC server"),
        }
    }
}

/// Connects to `address`, and returns the screen once it has settled (or
/// when `timeout` has passed since connecting).
pub fn capture(address: &str, timeout: Duration, settle: Duration) -> Result<Screen> {
    let started = Instant::now();
    let deadline = started + timeout;
    let socket = address
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {address}"))?
        .next()
        .with_context(|| format!("{address} has no address"))?;
    // The server may still be starting: try again until the deadline.
    let stream = loop {
        match TcpStream::connect_timeout(&socket, Duration::from_secs(5)) {
            Ok(stream) => break stream,
            Err(error) if Instant::now() + POLL >= deadline => {
                return Err(error)
                    .with_context(|| format!("cannot connect to the VNC server at {address}"));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    };
    stream.set_read_timeout(Some(MESSAGE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let writer = stream.try_clone()?;
    let mut session = Session {
        reader: BufReader::with_capacity(1 << 16, stream),
        writer,
    };
    let (mut width, mut height, format) = handshake(&mut session)?;
    let mut screen = Screen::new(width, height);
    // Raw, then the DesktopSize pseudo-encoding (-223).
    let mut set_encodings = vec![2, 0, 0, 2];
    set_encodings.extend(0i32.to_be_bytes());
    set_encodings.extend((-223i32).to_be_bytes());
    session.send(&set_encodings)?;
    session.request_update(false, width, height)?;
    let mut have_full_screen = false;
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        if have_full_screen && !screen.is_uniform() && now.duration_since(last_change) >= settle {
            screen.settled = true;
            return Ok(screen);
        }
        if now >= deadline {
            if !have_full_screen {
                bail!(
                    "the VNC server at {address} sent no screen within {} s",
                    timeout.as_secs()
                );
            }
            return Ok(screen);
        }
        let wait = POLL.min(deadline - now);
        let Some(kind) = session.next_message_type(wait)? else {
            continue;
        };
        match kind {
            0 => {
                let update = read_update(&mut session, &mut screen, &format)?;
                if let Some((new_width, new_height)) = update.resized {
                    width = new_width;
                    height = new_height;
                    have_full_screen = false;
                    last_change = Instant::now();
                    session.request_update(false, width, height)?;
                    continue;
                }
                if update.changed > NOISE_PIXELS || !have_full_screen {
                    last_change = Instant::now();
                }
                have_full_screen = true;
                session.request_update(true, width, height)?;
            }
            1 => {
                // SetColourMapEntries: not used with true colour; skipped.
                session.skip(1)?;
                let _first = session.read_u16()?;
                let count = session.read_u16()?;
                session.skip(u64::from(count) * 6)?;
            }
            2 => {} // Bell
            3 => {
                // ServerCutText.
                session.skip(3)?;
                let len = session.read_u32()?;
                session.skip(u64::from(len))?;
            }
            other => bail!("the VNC server sent a message of unknown type {other}"),
        }
    }
}

/// The RFB handshake up to ServerInit; asks for 32-bit true colour when
/// the server's format cannot be decoded. Returns the size and the format.
fn handshake(session: &mut Session) -> Result<(u16, u16, PixelFormat)> {
    let banner: [u8; 12] = session.read_array()?;
    let minor = parse_banner(&banner)?;
    let minor = minor.min(8);
    session.send(format!("RFB 003.{minor:03}\n").as_bytes())?;
    if minor >= 7 {
        let count = session.read_u8()?;
        if count == 0 {
            let reason = session.read_reason()?;
            bail!("the VNC server refused the connection: {reason}");
        }
        let mut types = vec![0u8; usize::from(count)];
        session.read_exact(&mut types)?;
        if !types.contains(&1) {
            bail!(
                "the VNC server wants authentication (security types {types:?}); only None is supported"
            );
        }
        session.send(&[1])?;
        if minor >= 8 {
            check_security_result(session)?;
        }
    } else {
        match session.read_u32()? {
            1 => {}
            0 => {
                let reason = session.read_reason()?;
                bail!("the VNC server refused the connection: {reason}");
            }
            other => bail!("the VNC server wants security type {other}; only None is supported"),
        }
    }
    session.send(&[1])?; // ClientInit: shared.
    let width = session.read_u16()?;
    let height = session.read_u16()?;
    let format = PixelFormat::parse(&session.read_array::<16>()?);
    let name_len = session.read_u32()?;
    session.skip(u64::from(name_len))?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        bail!("the VNC server's screen is {width}×{height}");
    }
    if format.usable() {
        return Ok((width, height, format));
    }
    let mut message = vec![0, 0, 0, 0];
    message.extend(PixelFormat::RGB888.encode());
    session.send(&message)?;
    Ok((width, height, PixelFormat::RGB888))
}

fn check_security_result(session: &mut Session) -> Result<()> {
    if session.read_u32()? != 0 {
        let reason = session.read_reason().unwrap_or_default();
        bail!("the VNC server refused the connection: {reason}");
    }
    Ok(())
}

/// `RFB 003.00x\n` → x (the minor version).
fn parse_banner(banner: &[u8; 12]) -> Result<u16> {
    let text = std::str::from_utf8(banner).ok();
    let minor = text
        .filter(|text| text.starts_with("RFB 003.") && text.ends_with('\n'))
        .and_then(|text| text[8..11].parse::<u16>().ok());
    match minor {
        Some(minor) if minor >= 3 => Ok(minor),
        _ => bail!(
            "not a VNC server (it said {:?})",
            String::from_utf8_lossy(banner)
        ),
    }
}

/// What one FramebufferUpdate did.
struct Update {
    /// Pixels whose colour changed.
    changed: usize,
    /// The new size, when the server resized the screen.
    resized: Option<(u16, u16)>,
}

fn read_update(session: &mut Session, screen: &mut Screen, format: &PixelFormat) -> Result<Update> {
    session.skip(1)?;
    let rectangles = session.read_u16()?;
    let mut update = Update {
        changed: 0,
        resized: None,
    };
    let bytes_per_pixel = format.bytes_per_pixel();
    let mut row = Vec::new();
    for _ in 0..rectangles {
        let x = session.read_u16()?;
        let y = session.read_u16()?;
        let w = session.read_u16()?;
        let h = session.read_u16()?;
        let encoding = i32::from_be_bytes(session.read_array()?);
        match encoding {
            0 => {
                row.resize(usize::from(w) * bytes_per_pixel, 0);
                for line in 0..h {
                    session.read_exact(&mut row)?;
                    let y = usize::from(y) + usize::from(line);
                    if y >= usize::from(screen.height) {
                        continue;
                    }
                    for (column, pixel) in row.chunks_exact(bytes_per_pixel).enumerate() {
                        let x = usize::from(x) + column;
                        if x >= usize::from(screen.width) {
                            break;
                        }
                        let at = (y * usize::from(screen.width) + x) * 3;
                        let rgb = format.rgb(pixel);
                        if screen.rgb[at..at + 3] != rgb {
                            screen.rgb[at..at + 3].copy_from_slice(&rgb);
                            update.changed += 1;
                        }
                    }
                }
            }
            -223 => {
                if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
                    bail!("the VNC server resized its screen to {w}×{h}");
                }
                *screen = Screen::new(w, h);
                update.resized = Some((w, h));
            }
            other => bail!("the VNC server used encoding {other}, which was not asked for"),
        }
    }
    Ok(update)
}

/// Writes `screen` as a PNG at `path`, complete or not at all.
fn write_png_atomically(path: &Path, screen: &Screen) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".olive2022-screenshot")
        .suffix(".png")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(&png(screen.width, screen.height, &screen.rgb)?)?;
    // A picture, not a secret: readable like any new file (tempfile makes
    // it 0600).
    std::fs::set_permissions(
        file.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// An 8-bit RGB PNG of `width`×`height` pixels (`rgb` row after row).
pub fn png(width: u16, height: u16, rgb: &[u8]) -> Result<Vec<u8>> {
    use flate2::write::ZlibEncoder;
    let stride = usize::from(width) * 3;
    if rgb.len() != stride * usize::from(height) {
        bail!("{} bytes are not {width}×{height} RGB pixels", rgb.len());
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    for line in rgb.chunks_exact(stride) {
        encoder.write_all(&[0])?; // filter: None
        encoder.write_all(line)?;
    }
    let compressed = encoder.finish()?;
    let mut header = Vec::with_capacity(13);
    header.extend(u32::from(width).to_be_bytes());
    header.extend(u32::from(height).to_be_bytes());
    // 8 bits a channel, colour type 2 (RGB), deflate, adaptive filters,
    // no interlace.
    header.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &header[..]),
        (b"IDAT", &compressed),
        (b"IEND", &[]),
    ] {
        out.extend(u32::try_from(data.len())?.to_be_bytes());
        out.extend(kind);
        out.extend(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend(crc.sum().to_be_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("vnc://127.0.0.1:5901").unwrap(),
            "127.0.0.1:5901"
        );
        assert_eq!(parse_address("127.0.0.1::5902").unwrap(), "127.0.0.1:5902");
        assert_eq!(parse_address("localhost:5903").unwrap(), "localhost:5903");
        assert_eq!(parse_address("vnc://[::1]:5904").unwrap(), "[::1]:5904");
        assert!(parse_address("vnc://127.0.0.1").is_err());
        assert!(parse_address(":5900").is_err());
    }

    #[test]
    fn pixel_formats() {
        let rgb888 = PixelFormat::RGB888;
        assert_eq!(rgb888.rgb(&[0x33, 0x22, 0x11, 0]), [0x11, 0x22, 0x33]);
        assert_eq!(PixelFormat::parse(&rgb888.encode()), rgb888);
        let rgb565 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            true_colour: true,
            max: [31, 63, 31],
            shift: [11, 5, 0],
        };
        assert_eq!(rgb565.rgb(&[0xf8, 0x00]), [255, 0, 0]);
        assert_eq!(rgb565.rgb(&[0x07, 0xe0]), [0, 255, 0]);
        assert!(
            !PixelFormat {
                true_colour: false,
                ..rgb888
            }
            .usable()
        );
    }

    #[test]
    fn png_chunks() {
        let png = png(2, 1, &[255, 0, 0, 0, 0, 255]).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"));
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
    }
}
