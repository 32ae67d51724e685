//! `olive2022 demo` end to end, headless: a SYSLINUX disk built from Debian
//! packages, packaged, converted, served by the embedded cloudlet under real
//! QEMU, reached by `launch` through the user-space WireGuard tunnel, and
//! its screen saved as a PNG by the hidden `rfb-snapshot` viewer. The same
//! snapshot mode is checked against QEMU's own screendump of a plain
//! `qemu-system-x86_64 -vnc` of the demo disk.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn olive() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_olive2022"));
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null());
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A decoded 8-bit RGB image.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        [self.rgb[at], self.rgb[at + 1], self.rgb[at + 2]]
    }

    fn colours(&self) -> usize {
        let mut colours: Vec<[u8; 3]> = self
            .rgb
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        colours.sort_unstable();
        colours.dedup();
        colours.len()
    }

    /// Pixels of the title bar: VGA blue (0, 0, 170) in text mode.
    fn blue_pixels(&self) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| p[0] < 64 && p[1] < 64 && p[2] > 128)
            .count()
    }

    fn differing_pixels(&self, other: &Image) -> usize {
        assert_eq!((self.width, self.height), (other.width, other.height));
        self.rgb
            .chunks_exact(3)
            .zip(other.rgb.chunks_exact(3))
            .filter(|(a, b)| a != b)
            .count()
    }
}

/// Decodes a PNG as written by `rfb-snapshot` (RGB, 8 bits, filter 0),
/// checking the signature, every chunk's CRC and the zlib stream.
fn decode_png(path: &Path) -> Image {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut at = 8;
    let (mut width, mut height) = (0, 0);
    let mut idat = Vec::new();
    let mut chunks = Vec::new();
    while at < data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind = &data[at + 4..at + 8];
        let body = &data[at + 8..at + 8 + len];
        let crc = u32::from_be_bytes(data[at + 8 + len..at + 12 + len].try_into().unwrap());
        let mut check = flate2::Crc::new();
        check.update(kind);
        check.update(body);
        assert_eq!(check.sum(), crc, "CRC of {}", String::from_utf8_lossy(kind));
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                assert_eq!(&body[8..], &[8, 2, 0, 0, 0], "8-bit RGB");
            }
            b"IDAT" => idat.extend_from_slice(body),
            _ => {}
        }
        chunks.push(String::from_utf8_lossy(kind).into_owned());
        at += 12 + len;
    }
    assert_eq!(chunks.first().map(String::as_str), Some("IHDR"));
    assert_eq!(chunks.last().map(String::as_str), Some("IEND"));
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), height * (1 + width * 3));
    let mut rgb = Vec::with_capacity(width * height * 3);
    for line in raw.chunks_exact(1 + width * 3) {
        assert_eq!(line[0], 0, "filter type");
        rgb.extend_from_slice(&line[1..]);
    }
    Image { width, height, rgb }
}

/// Checks a screenshot of the demo VM: QEMU's text mode (or VGA graphics)
/// size, and the SYSLINUX message drawn: text on black and the blue title
/// bar that `message.txt` asks for.
fn check_demo_screen(image: &Image) {
    assert!(
        matches!((image.width, image.height), (720, 400) | (640, 480)),
        "{}×{}",
        image.width,
        image.height
    );
    assert!(image.colours() > 2, "{} colours", image.colours());
    assert_eq!(image.pixel(image.width - 1, image.height - 1), [0, 0, 0]);
    // "  Olive 2022 demo VM  ": 22 cells of 9×16 pixels, mostly blue.
    let blue = image.blue_pixels();
    assert!((1500..=22 * 9 * 16).contains(&blue), "{blue} blue pixels");
}

/// QEMU processes whose command line mentions `dir`.
fn qemus_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // argv[0] is a path (`/usr/bin/qemu-system-x86_64`) or a bare name.
        let program = cmdline.split(' ').next().unwrap_or_default();
        let is_qemu = Path::new(program)
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("qemu-system"));
        if is_qemu && cmdline.contains(&needle) {
            found.push(cmdline);
        }
    }
    found
}

fn run_demo(dir: &Path, screenshot: &Path, work_dir: Option<&Path>) -> Output {
    let temp = dir.join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let mut command = olive();
    command
        .args(["demo", "--timeout", "120", "--screenshot"])
        .arg(screenshot)
        .env("TMPDIR", &temp);
    if let Some(work) = work_dir {
        command.arg("--work-dir").arg(work);
    }
    let started = Instant::now();
    let output = command.output().unwrap();
    eprintln!(
        "demo took {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        text(&output)
    );
    output
}

#[test]
fn demo_without_work_dir_saves_the_screen_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("screen.png");
    let output = run_demo(dir.path(), &screenshot, None);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("Screenshot: {}", screenshot.display())),
        "{stdout}"
    );
    for step in [
        "[1/5] disk",
        "[3/5] convert",
        "[4/5] cloudlet",
        "[5/5] launch",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    check_demo_screen(&decode_png(&screenshot));
    // The temporary work directory (under TMPDIR) is gone, and with it the
    // cloudlet's data; no QEMU of ours is left.
    let temp = dir.path().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&temp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(qemus_under(dir.path()).is_empty());
    // Nothing but the screenshot next to it (written atomically).
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["screen.png", "tmp"]);
}

#[test]
fn demo_with_work_dir_keeps_it_and_its_screen_is_qemus() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let screenshot = dir.path().join("demo.png");
    let output = run_demo(dir.path(), &screenshot, Some(&work));
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Work directory (kept)"));
    let through_tunnel = decode_png(&screenshot);
    check_demo_screen(&through_tunnel);
    assert!(qemus_under(&work).is_empty(), "{:?}", qemus_under(&work));
    for kept in [
        "demo.img",
        "disk.qcow2",
        "demo.nxpk",
        "layout/index.json",
        "RECIPES",
    ] {
        assert!(work.join(kept).exists(), "{kept}");
    }
    // The demo disk under a plain QEMU: our snapshot mode and QEMU's own
    // screendump see the same screen (but for the blinking cursor), and so
    // does the screenshot that came through the cloudlet and the tunnel.
    let qemu = PlainQemu::start(&work.join("demo.img"), dir.path());
    let direct = dir.path().join("direct.png");
    let output = olive()
        .args(["rfb-snapshot", &format!("vnc://127.0.0.1:{}", qemu.port)])
        .arg(&direct)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let direct = decode_png(&direct);
    check_demo_screen(&direct);
    let dump = qemu.screendump(&dir.path().join("dump.ppm"));
    let cursor = 9 * 16;
    assert!(
        direct.differing_pixels(&dump) <= cursor,
        "{} pixels differ from QEMU's screendump",
        direct.differing_pixels(&dump)
    );
    assert!(
        through_tunnel.differing_pixels(&dump) <= cursor,
        "{} pixels differ between the demo's screenshot and QEMU's screendump",
        through_tunnel.differing_pixels(&dump)
    );
}

/// SIGTERM once the VM runs (the launch is waiting for its screen): the demo
/// stops its children, exits 130 as after Ctrl-C, and leaves no QEMU and
/// nothing in TMPDIR.
#[test]
fn sigterm_midway_stops_the_demo_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let mut child = olive()
        .args(["demo", "--timeout", "120", "--screenshot"])
        .arg(dir.path().join("screen.png"))
        .env("TMPDIR", &temp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("[4/5] cloudlet") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the demo ended before its cloudlet ran: {seen}"
        );
        seen.push_str(&line);
    }
    // Signalled once the VM's QEMU runs: that too must go.
    let waited = Instant::now();
    while qemus_under(dir.path()).is_empty() {
        assert!(waited.elapsed() < Duration::from_secs(30), "no VM: {seen}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let all = format!("{seen}{rest}{stderr}");
    assert_eq!(status.code(), Some(130), "{all}");
    assert!(signalled.elapsed() < Duration::from_secs(30), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(
        qemus_under(dir.path()).is_empty(),
        "{:?}",
        qemus_under(dir.path())
    );
    let left: Vec<_> = std::fs::read_dir(&temp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    assert!(!dir.path().join("screen.png").exists());
}

/// `qemu-system-x86_64 -vnc` of a raw disk, with a QMP socket.
struct PlainQemu {
    child: Child,
    port: u16,
    qmp: PathBuf,
}

impl PlainQemu {
    fn start(disk: &Path, dir: &Path) -> PlainQemu {
        let qmp = dir.join("qmp.sock");
        // The first free display from :50 on.
        let display = (50..100)
            .find(|display| std::net::TcpListener::bind(("127.0.0.1", 5900 + display)).is_ok())
            .unwrap();
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", "64", "-nodefaults", "-vga", "std"])
            .args(["-display", "none", "-vnc", &format!("127.0.0.1:{display}")])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=ide,snapshot=on",
                disk.display()
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        PlainQemu {
            child,
            port: 5900 + display,
            qmp,
        }
    }

    /// QEMU's own picture of the screen (QMP `screendump`, PPM).
    fn screendump(&self, out: &Path) -> Image {
        let stream = UnixStream::connect(&self.qmp).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap(); // greeting
        for command in [
            r#"{"execute":"qmp_capabilities"}"#.to_owned(),
            format!(
                r#"{{"execute":"screendump","arguments":{{"filename":"{}"}}}}"#,
                out.display()
            ),
        ] {
            writeln!(writer, "{command}").unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                assert!(!line.contains("\"error\""), "{line}");
                if line.contains("\"return\"") {
                    break;
                }
            }
        }
        let data = std::fs::read(out).unwrap();
        // P6\nWIDTH HEIGHT\n255\n then RGB.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while data[at].is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !data[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
        }
        assert_eq!(fields[0], "P6");
        assert_eq!(fields[3], "255");
        let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let rgb = data[at + 1..].to_vec();
        assert_eq!(rgb.len(), width * height * 3);
        Image { width, height, rgb }
    }
}

impl Drop for PlainQemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
