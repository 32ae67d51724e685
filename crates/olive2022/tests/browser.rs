//! `olive2022 demo --browser` in a real headless Chromium (Debian's
//! `chromium`), driven through its DevTools protocol on a pipe: `$BROWSER`
//! is a script that records the URL the launch opens; Chromium loads it,
//! and its screenshots must show the demo VM's blue title bar, then the
//! letters typed into the page echoed at SYSLINUX's `boot:` prompt.
//! Requests to the same server without the token, with another `Host` or
//! another `Origin` get 403. Closing the page ends the launch (after the
//! reload grace) and the demo with it.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The DevTools protocol over `--remote-debugging-pipe`: JSON messages
/// ended by NUL, commands on Chromium's fd 3, answers on its fd 4 (mapped
/// to its standard input and output by a shell, so no `unsafe` is needed).
struct Chromium {
    child: Child,
    commands: ChildStdin,
    answers: BufReader<ChildStdout>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn start() -> Chromium {
        assert!(
            Path::new("/usr/bin/chromium").is_file(),
            "chromium is missing: install the Debian package chromium (scripts/setup.sh)"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .args(["-c", "exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>/dev/null"])
            .arg("/usr/bin/chromium")
            // What Chromium needs as root in a container, and nothing that
            // phones home.
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
                "--window-size=1024,768",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .env("HOME", profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let commands = child.stdin.take().unwrap();
        let answers = BufReader::new(child.stdout.take().unwrap());
        Chromium {
            child,
            commands,
            answers,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a command (to a page's session if given) and returns its
    /// result, skipping the events in between.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        loop {
            let mut answer = Vec::new();
            let read = self.answers.read_until(0, &mut answer).unwrap();
            assert!(read > 0, "Chromium closed its pipe during {method}");
            answer.pop();
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            if answer["id"] == json!(id) {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new tab; returns the tab's target and session.
    fn open(&mut self, url: &str) -> (String, String) {
        let target = self.call(None, "Target.createTarget", json!({"url": url}));
        let target = target["targetId"].as_str().unwrap().to_owned();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        (target, attached["sessionId"].as_str().unwrap().to_owned())
    }

    /// A screenshot of the tab, also saved as `name`.png in the test
    /// target's temporary directory (to look at when a check fails).
    fn screenshot(&mut self, session: &str, name: &str) -> Screen {
        let shot = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-{name}.png"));
        std::fs::write(saved, &png).unwrap();
        Screen::decode(&png)
    }

    /// Where the page's canvas (the VM's screen) is, rounded inwards
    /// (noVNC's status bar and control bar overlap the page's edges).
    fn canvas(&mut self, session: &str) -> Area {
        let script = "(() => { const r = document.querySelector('canvas').getBoundingClientRect(); \
                      return [r.left, r.top, r.right, r.bottom]; })()";
        let result = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": script, "returnByValue": true}),
        );
        let edges: Vec<f64> = serde_json::from_value(result["result"]["value"].clone()).unwrap();
        Area {
            left: edges[0].ceil() as usize,
            top: edges[1].ceil() as usize,
            right: edges[2].floor() as usize,
            bottom: edges[3].floor() as usize,
        }
    }

    /// Types `text` (lowercase letters) as key presses.
    fn type_text(&mut self, session: &str, text: &str) {
        for letter in text.chars() {
            let upper = letter.to_ascii_uppercase();
            let key = json!({
                "key": letter.to_string(),
                "code": format!("Key{upper}"),
                "windowsVirtualKeyCode": upper as u32,
                "nativeVirtualKeyCode": upper as u32,
            });
            let mut down = key.clone();
            down["type"] = json!("keyDown");
            down["text"] = json!(letter.to_string());
            let mut up = key;
            up["type"] = json!("keyUp");
            self.call(Some(session), "Input.dispatchKeyEvent", down);
            self.call(Some(session), "Input.dispatchKeyEvent", up);
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let mut close = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"})).unwrap();
        close.push(0);
        let _ = self.commands.write_all(&close);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A screenshot's pixels (RGB).
struct Screen {
    width: usize,
    rgb: Vec<[u8; 3]>,
}

impl Screen {
    fn decode(png_bytes: &[u8]) -> Screen {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buffer).unwrap();
        let channels = info.color_type.samples();
        let rgb = buffer[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|pixel| [pixel[0], pixel[1], pixel[2]])
            .collect();
        Screen {
            width: info.width as usize,
            rgb,
        }
    }

    /// The VGA blue of the demo's title bar.
    fn blue_pixels(&self) -> usize {
        let blue = |p: &&[u8; 3]| p[0] < 64 && p[1] < 64 && p[2] > 128;
        self.rgb.iter().filter(blue).count()
    }

    /// The light grey of text-mode letters in `area` (the VM's screen),
    /// right of noVNC's control bar (whose grey icons come and go at the
    /// left edge).
    fn text_pixels(&self, area: Area) -> usize {
        let grey = |p: &[u8; 3]| {
            p.iter().all(|&channel| channel > 120)
                && p.iter().max().unwrap() - p.iter().min().unwrap() < 24
        };
        let left = area.left.max(CONTROL_BAR_WIDTH);
        self.rgb
            .iter()
            .enumerate()
            .filter(|(at, pixel)| {
                let (x, y) = (at % self.width, at / self.width);
                (left..area.right).contains(&x)
                    && (area.top..area.bottom).contains(&y)
                    && grey(pixel)
            })
            .count()
    }
}

/// How far noVNC's control bar reaches into the page, in pixels.
const CONTROL_BAR_WIDTH: usize = 64;

/// Where the page draws the VM's screen (its canvas), in pixels.
#[derive(Debug, Clone, Copy)]
struct Area {
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
}

/// Polls `check` on screenshots until it holds or `within` has passed.
fn screenshot_until(
    chromium: &mut Chromium,
    session: &str,
    name: &str,
    within: Duration,
    check: impl Fn(&Screen) -> bool,
) -> Screen {
    let deadline = Instant::now() + within;
    loop {
        let screen = chromium.screenshot(session, name);
        if check(&screen) || Instant::now() > deadline {
            return screen;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// One raw HTTP/1.1 GET; returns the status code.
fn status_of(port: u16, path: &str, host: &str, extra: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// `olive2022 demo --browser` with `$BROWSER` recording the URL; stopped
/// (Ctrl-C, then a kill) if the test ends early.
struct Demo {
    child: Child,
    dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let recorder = dir.path().join("browser");
        std::fs::write(
            &recorder,
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
                dir.path().join("url").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_olive2022"))
            .args(["demo", "--browser", "--timeout", "120"])
            .env("BROWSER", &recorder)
            .env("TMPDIR", dir.path().join("tmp"))
            .env_remove("OLIVE2022_VIEWER")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Demo { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("demo.log")).unwrap_or_default()
    }

    /// The URL the launch opened.
    fn url(&mut self) -> String {
        let file = self.dir.path().join("url");
        let deadline = Instant::now() + Duration::from_secs(180);
        while !file.exists() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the demo ended before opening a page: {}",
                self.log()
            );
            assert!(Instant::now() < deadline, "no page opened: {}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        std::fs::read_to_string(file).unwrap()
    }

    /// Waits for the demo to end by itself; its exit status.
    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        testkit::process::stop(&mut self.child, "INT", Duration::from_secs(30));
    }
}

#[test]
fn the_demo_vm_in_a_headless_chromium() {
    let mut demo = Demo::start();
    let url = demo.url();
    // http://127.0.0.1:PORT/TOKEN/vnc.html?…
    let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
    let (port, rest) = rest.split_once('/').unwrap();
    let port: u16 = port.parse().unwrap();
    let token = rest.split('/').next().unwrap();
    let host = format!("127.0.0.1:{port}");
    let page = format!("/{token}/vnc.html");
    let socket = format!("/{token}/websockify");
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    // Plain HTTP first: only the page's own requests pass.
    assert_eq!(status_of(port, &page, &host, ""), 200);
    let wrong_token = format!("/{}/vnc.html", "0".repeat(token.len()));
    assert_eq!(status_of(port, &wrong_token, &host, ""), 403, "wrong token");
    assert_eq!(status_of(port, "/vnc.html", &host, ""), 403, "no token");
    assert_eq!(
        status_of(port, &page, &format!("rebound.example:{port}"), ""),
        403,
        "wrong Host"
    );
    let evil = format!("Origin: http://evil.example\r\n{upgrade}");
    assert_eq!(status_of(port, &socket, &host, &evil), 403, "wrong Origin");
    assert_eq!(
        status_of(port, &page, &host, "Origin: http://evil.example\r\n"),
        403,
        "wrong Origin"
    );

    let mut chromium = Chromium::start();
    let (target, session) = chromium.open(&url);
    // The title bar: 22 cells of 9×16 pixels, scaled up to the window.
    let screen = screenshot_until(
        &mut chromium,
        &session,
        "title",
        Duration::from_secs(30),
        |screen| screen.blue_pixels() > 1500,
    );
    assert!(
        screen.blue_pixels() > 1500,
        "no blue title bar in the page ({} blue pixels): {}",
        screen.blue_pixels(),
        demo.log()
    );
    // The prompt's text, twice: the cursor blinks.
    let canvas = chromium.canvas(&session);
    std::thread::sleep(Duration::from_millis(500));
    let before = chromium
        .screenshot(&session, "before")
        .text_pixels(canvas)
        .max(screen.text_pixels(canvas));
    chromium.type_text(&session, "oliveolive");
    // Ten letters at the prompt: some 400 more lit pixels (a letter
    // lights 20–40 pixels of its 9×16 cell, scaled by about 1.4 each way;
    // the blinking cursor, counted in `before`, 18).
    let typed = |screen: &Screen| screen.text_pixels(canvas) > before + 200;
    let after = screenshot_until(
        &mut chromium,
        &session,
        "typed",
        Duration::from_secs(15),
        typed,
    );
    eprintln!(
        "lit pixels in the VM's screen: {before} before typing, {} after",
        after.text_pixels(canvas)
    );
    assert!(
        typed(&after),
        "the typed letters did not appear: {before} lit pixels before, {} after",
        after.text_pixels(canvas)
    );

    // Closing the page ends the launch after the reload grace, and the
    // demo with it.
    chromium.call(None, "Target.closeTarget", json!({"targetId": target}));
    let status = demo.wait(Duration::from_secs(60));
    let log = demo.log();
    assert!(
        status.is_some_and(|status| status.success()),
        "{status:?}: {log}"
    );
    assert!(log.contains("the browser's page was closed"), "{log}");
}

/// SIGTERM while the page is open: the demo stops the launch (its browser
/// server and tunnel), the cloudlet and the VM, exits 130, and leaves
/// nothing in TMPDIR and no QEMU.
#[test]
fn sigterm_with_the_page_open_leaves_nothing() {
    let mut demo = Demo::start();
    let url = demo.url();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tmp = demo.dir.path().join("tmp");
    let qemus = || {
        testkit::run(
            "sh",
            &[
                "-c",
                &format!("pgrep -fc '[q]emu-system.*{}' || true", tmp.display()),
            ],
        )
        .trim()
        .to_owned()
    };
    assert_eq!(qemus(), "1", "{}", demo.log());
    assert!(
        Command::new("kill")
            .args(["-TERM", &demo.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = demo.wait(Duration::from_secs(40));
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{}", demo.log());
    assert!(!demo.log().contains("panicked"), "{}", demo.log());
    assert_eq!(qemus(), "0", "{}", demo.log());
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    // The page's server is gone with the launch.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// `olive2022 launch` against a tier 1 that is not there (port 1), with
/// `PATH` holding no viewer: how far it gets shows what it chose, as the
/// viewer (or browser) is found before anything is deployed.
fn launch_without_viewers(env: &[(&str, &str)], extra: &[&str]) -> String {
    let empty = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_olive2022"));
    command
        .args([
            "launch",
            "--timeout",
            "5",
            "--tier1-url",
            "http://127.0.0.1:1",
        ])
        .args(extra)
        .arg("vmnetx+https://olivearchive.org/demo/olive2022-demo.nxpk")
        .env("PATH", empty.path())
        .env("XDG_CACHE_HOME", empty.path())
        .env_remove("BROWSER")
        .env_remove("OLIVE2022_VIEWER")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_browser_is_chosen_when_asked_for_or_when_no_viewer_is_installed() {
    let no_viewer = launch_without_viewers(&[], &[]);
    assert!(no_viewer.contains("no VNC viewer found"), "{no_viewer}");
    // A browser but no viewer: the browser, so the launch goes on to deploy.
    let fallback = launch_without_viewers(&[("BROWSER", "/bin/true")], &[]);
    assert!(!fallback.contains("VNC viewer"), "{fallback}");
    assert!(fallback.contains("deploy"), "{fallback}");
    // Asked for, each way, it needs noVNC.
    let missing = ["--novnc-dir", "/nonexistent"];
    for (env, extra) in [
        (vec![("BROWSER", "/bin/true")], vec!["--browser"]),
        (
            vec![("BROWSER", "/bin/true"), ("OLIVE2022_VIEWER", "browser")],
            vec![],
        ),
    ] {
        let no_novnc = launch_without_viewers(&env, &[&extra[..], &missing[..]].concat());
        assert!(
            no_novnc.contains("noVNC is not in /nonexistent"),
            "{no_novnc}"
        );
    }
}
