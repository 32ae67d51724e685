//! Peers for the registry tests besides the real registry
//! (`testkit::registry`): a TCP proxy that cuts connections, and a small
//! fake registry for faults a real one does not make. A missing tool fails
//! the test with the Debian package to install.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use containerdisk::Digest;
use containerdisk::registry::PushProgress;

/// Runs a tool; panics naming the Debian package when it is missing.
pub fn tool(program: &str, package: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}): install the Debian package {package}")
        })
}

/// Fails unless `program` can be started, naming its Debian package.
pub fn require(program: &str, package: &str) {
    if let Err(e) = Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!("cannot run `{program}` ({e}): install the Debian package {package}");
    }
}

/// `skopeo` with arguments; panics with its output when it fails.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let output = tool("skopeo", "skopeo", args);
    assert!(
        output.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// When a [`CutProxy`] cuts.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Once, when `n` bytes in all went from the client to the server.
    OnceAfter(u64),
    /// Every connection, after `n` bytes from its client.
    EveryConnectionAfter(u64),
}

/// A TCP proxy to `upstream` that cuts connections in the middle of what the
/// client sends (both directions shut, then the sockets closed).
pub struct CutProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Bytes forwarded from clients to the server.
    pub uploaded: Arc<AtomicU64>,
    /// Connections cut.
    pub cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    /// Starts the proxy.
    pub fn start(upstream: &str, cut: Cut) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let uploaded = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let cut_done = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (up, cu, st) = (uploaded.clone(), cuts.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            continue;
                        };
                        let (up, cu, cut_done) = (up.clone(), cu.clone(), cut_done.clone());
                        thread::spawn(move || pump(client, server, cut, &up, &cu, &cut_done));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CutProxy {
            host,
            uploaded,
            cuts,
            stop,
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    cut: Cut,
    uploaded: &AtomicU64,
    cuts: &AtomicU64,
    cut_done: &AtomicBool,
) {
    let (mut server_read, mut client_write) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    let downstream = thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let mut forwarded = 0u64;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n as u64,
        };
        let allowed = match cut {
            Cut::OnceAfter(limit) if !cut_done.load(Ordering::SeqCst) => {
                limit.saturating_sub(uploaded.load(Ordering::SeqCst))
            }
            Cut::OnceAfter(_) => u64::MAX,
            Cut::EveryConnectionAfter(limit) => limit.saturating_sub(forwarded),
        };
        let send = n.min(allowed) as usize;
        if server.write_all(&buf[..send]).is_err() {
            break;
        }
        forwarded += send as u64;
        uploaded.fetch_add(send as u64, Ordering::SeqCst);
        if (send as u64) < n || allowed == n {
            if matches!(cut, Cut::OnceAfter(_)) && cut_done.swap(true, Ordering::SeqCst) {
                continue; // another connection cut already
            }
            cuts.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = downstream.join();
}

/// How a [`FakeRegistry`] misbehaves.
#[derive(Debug, Clone, Default)]
pub struct FakeConfig {
    /// Answer everything with 500.
    pub always_500: bool,
    /// Answer the blob PUT with a wrong `Docker-Content-Digest`.
    pub wrong_digest: bool,
    /// Once, drop the connection after this many bytes of PATCH bodies in
    /// all, keeping what arrived (a registry that can resume mid-chunk).
    pub cut_once_at: Option<u64>,
    /// Require a Bearer token from `/token`, given for these credentials.
    pub bearer: Option<(String, String)>,
    /// Once, end a blob download after this many bytes (then serve Range
    /// requests).
    pub cut_download_once_at: Option<usize>,
}

/// What a [`FakeRegistry`] saw and holds.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Blobs by digest.
    pub blobs: HashMap<String, Vec<u8>>,
    /// Manifests by reference: media type, bytes.
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    uploads: HashMap<String, Vec<u8>>,
    next_upload: u64,
    /// PATCH body bytes received in all.
    pub patch_bytes: u64,
    cut_done: bool,
    /// Token requests.
    pub token_requests: u64,
    /// Blob downloads with a `Range` header.
    pub range_requests: u64,
    download_cut_done: bool,
    /// Requests seen: `METHOD path`.
    pub requests: Vec<String>,
}

/// A small in-process registry (one request per connection).
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Its state.
    pub state: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
}

const TOKEN: &str = "fake-token-0123";

impl FakeRegistry {
    /// Starts it.
    pub fn start(config: FakeConfig) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, state2, host2) = (stop.clone(), state.clone(), host.clone());
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let (config, state, host) = (config.clone(), state2.clone(), host2.clone());
                        thread::spawn(move || {
                            let _ = serve_one(stream, &config, &state, &host);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeRegistry { host, state, stop }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct FakeRequest {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

fn serve_one(
    stream: TcpStream,
    config: &FakeConfig,
    state: &Mutex<FakeState>,
    host: &str,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let request = FakeRequest {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
    };
    let length: u64 = request
        .headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    state
        .lock()
        .unwrap()
        .requests
        .push(format!("{} {}", request.method, request.path));

    if config.always_500 {
        drain(&mut reader, length)?;
        let body = br#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"the disk is on fire"}]}"#;
        return respond(
            &mut stream,
            "500 Internal Server Error",
            &[("Content-Type", "application/json".into())],
            body,
        );
    }

    if let Some((user, password)) = &config.bearer {
        use base64::Engine as _;
        if request.path == "/token" {
            state.lock().unwrap().token_requests += 1;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            let scope = query_param(&request.query, "scope").unwrap_or_default();
            if request.headers.get("authorization") != Some(&expected)
                || !scope.starts_with("repository:")
            {
                return respond(
                    &mut stream,
                    "401 Unauthorized",
                    &[],
                    br#"{"details":"bad credentials"}"#,
                );
            }
            return respond(
                &mut stream,
                "200 OK",
                &[],
                format!(r#"{{"access_token":"{TOKEN}"}}"#).as_bytes(),
            );
        }
        if request.headers.get("authorization").map(String::as_str)
            != Some(&format!("Bearer {TOKEN}"))
        {
            drain(&mut reader, length)?;
            let challenge =
                format!(r#"Bearer realm="http://{host}/token",service="fake-registry""#);
            let body =
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            return respond(
                &mut stream,
                "401 Unauthorized",
                &[("WWW-Authenticate", challenge)],
                body,
            );
        }
    }

    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let find = |word: &str| segments.iter().rposition(|s| *s == word);
    if let Some(i) = find("uploads").filter(|&i| i >= 2 && segments[i - 1] == "blobs") {
        let repo = segments[1..i - 1].join("/");
        let id = segments.get(i + 1).copied().unwrap_or("");
        let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}?state=opaque%2Fvalue");
        match (request.method.as_str(), id) {
            ("POST", "") => {
                let mut st = state.lock().unwrap();
                st.next_upload += 1;
                let id = format!("upload-{}", st.next_upload);
                st.uploads.insert(id.clone(), Vec::new());
                drop(st);
                return respond(
                    &mut stream,
                    "202 Accepted",
                    &[("Location", location(&id)), ("Range", "0-0".into())],
                    b"",
                );
            }
            ("PATCH", id) => {
                let current = state.lock().unwrap().uploads.get(id).map(Vec::len);
                let Some(current) = current else {
                    return respond(
                        &mut stream,
                        "404 Not Found",
                        &[],
                        br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}"#,
                    );
                };
                let start = request
                    .headers
                    .get("content-range")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<usize>().ok());
                if start != Some(current) {
                    return respond(&mut stream, "416 Range Not Satisfiable", &[], b"");
                }
                let cut_at = {
                    let st = state.lock().unwrap();
                    match config.cut_once_at {
                        Some(at) if !st.cut_done && st.patch_bytes + length > at => {
                            Some(at - st.patch_bytes)
                        }
                        _ => None,
                    }
                };
                let take = cut_at.unwrap_or(length);
                let mut body = vec![0u8; usize::try_from(take).unwrap()];
                reader.read_exact(&mut body)?;
                let mut st = state.lock().unwrap();
                st.patch_bytes += take;
                let upload = st.uploads.get_mut(id).unwrap();
                upload.extend_from_slice(&body);
                let end = upload.len().saturating_sub(1);
                if cut_at.is_some() {
                    st.cut_done = true;
                    drop(st);
                    // Drop the connection with the rest of the chunk unread.
                    let _ = stream.shutdown(Shutdown::Both);
                    return Ok(());
                }
                drop(st);
                return respond(
                    &mut stream,
                    "202 Accepted",
                    &[("Location", location(id)), ("Range", format!("0-{end}"))],
                    b"",
                );
            }
            ("GET", id) => {
                let len = state.lock().unwrap().uploads.get(id).map(Vec::len);
                return match len {
                    Some(len) => respond(
                        &mut stream,
                        "204 No Content",
                        &[
                            ("Location", location(id)),
                            ("Range", format!("0-{}", len.saturating_sub(1))),
                        ],
                        b"",
                    ),
                    None => respond(&mut stream, "404 Not Found", &[], b""),
                };
            }
            ("PUT", id) => {
                let mut body = vec![0u8; usize::try_from(length).unwrap()];
                reader.read_exact(&mut body)?;
                let state_ok =
                    query_param(&request.query, "state").as_deref() == Some("opaque/value");
                let digest = query_param(&request.query, "digest").unwrap_or_default();
                let mut st = state.lock().unwrap();
                let Some(mut blob) = st.uploads.remove(id) else {
                    return respond(&mut stream, "404 Not Found", &[], b"");
                };
                blob.extend_from_slice(&body);
                let actual = Digest::of(&blob).to_string();
                if actual != digest || !state_ok {
                    return respond(
                        &mut stream,
                        "400 Bad Request",
                        &[],
                        br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#,
                    );
                }
                st.blobs.insert(actual.clone(), blob);
                drop(st);
                let answered = if config.wrong_digest {
                    format!("sha256:{}", "0".repeat(64))
                } else {
                    actual.clone()
                };
                return respond(
                    &mut stream,
                    "201 Created",
                    &[
                        ("Location", format!("/v2/{repo}/blobs/{actual}")),
                        ("Docker-Content-Digest", answered),
                    ],
                    b"",
                );
            }
            _ => return respond(&mut stream, "405 Method Not Allowed", &[], b""),
        }
    }
    if let Some(i) = find("blobs").filter(|&i| i >= 2) {
        let digest = segments.get(i + 1).copied().unwrap_or("");
        let blob = state.lock().unwrap().blobs.get(digest).cloned();
        return match (request.method.as_str(), blob) {
            ("HEAD", Some(blob)) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\nDocker-Content-Digest: {digest}\r\n\r\n",
                    blob.len()
                );
                stream.write_all(head.as_bytes())
            }
            ("GET", Some(blob)) => {
                let cut = {
                    let mut st = state.lock().unwrap();
                    let cut = config
                        .cut_download_once_at
                        .filter(|_| !st.download_cut_done);
                    st.download_cut_done |= cut.is_some();
                    cut
                };
                let range = request.headers.get("range").and_then(|r| {
                    r.strip_prefix("bytes=")?
                        .strip_suffix('-')?
                        .parse::<usize>()
                        .ok()
                });
                if let Some(cut) = cut {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                        blob.len()
                    );
                    stream.write_all(head.as_bytes())?;
                    stream.write_all(&blob[..cut])?;
                    stream.flush()?;
                    return stream.shutdown(Shutdown::Both);
                }
                match range {
                    Some(start) if start < blob.len() => {
                        state.lock().unwrap().range_requests += 1;
                        let content_range =
                            format!("bytes {start}-{}/{}", blob.len() - 1, blob.len());
                        respond(
                            &mut stream,
                            "206 Partial Content",
                            &[("Content-Range", content_range)],
                            &blob[start..],
                        )
                    }
                    _ => respond(
                        &mut stream,
                        "200 OK",
                        &[("Docker-Content-Digest", digest.to_owned())],
                        &blob,
                    ),
                }
            }
            _ => respond(
                &mut stream,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
            ),
        };
    }
    if let Some(i) = find("manifests").filter(|&i| i >= 2) {
        let reference = segments.get(i + 1).copied().unwrap_or("").to_owned();
        match request.method.as_str() {
            "PUT" => {
                let mut body = vec![0u8; usize::try_from(length).unwrap()];
                reader.read_exact(&mut body)?;
                let digest = Digest::of(&body).to_string();
                let media_type = request
                    .headers
                    .get("content-type")
                    .cloned()
                    .unwrap_or_default();
                let mut st = state.lock().unwrap();
                st.manifests
                    .insert(reference, (media_type.clone(), body.clone()));
                st.manifests.insert(digest.clone(), (media_type, body));
                drop(st);
                return respond(
                    &mut stream,
                    "201 Created",
                    &[("Docker-Content-Digest", digest)],
                    b"",
                );
            }
            "GET" => {
                let manifest = state.lock().unwrap().manifests.get(&reference).cloned();
                return match manifest {
                    Some((media_type, body)) => respond(
                        &mut stream,
                        "200 OK",
                        &[("Content-Type", media_type)],
                        &body,
                    ),
                    None => respond(&mut stream, "404 Not Found", &[], b""),
                };
            }
            _ => {}
        }
    }
    if request.path == "/v2/" {
        return respond(&mut stream, "200 OK", &[], b"{}");
    }
    respond(&mut stream, "404 Not Found", &[], b"")
}

fn drain(reader: &mut impl Read, length: u64) -> std::io::Result<()> {
    std::io::copy(&mut reader.take(length), &mut std::io::sink()).map(|_| ())
}

/// A [`PushProgress`] that records what it hears.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Totals announced by `start`.
    pub starts: Vec<u64>,
    /// Sum of `advance`.
    pub advanced: u64,
    /// `skipped` calls.
    pub skipped: u32,
    /// `retry` calls: attempt and message.
    pub retries: Vec<(u32, String)>,
}

impl PushProgress for Recorder {
    fn start(&mut self, total: Option<u64>) {
        self.starts.push(total.unwrap_or(0));
    }
    fn advance(&mut self, bytes: u64) {
        self.advanced += bytes;
    }
    fn skipped(&mut self) {
        self.skipped += 1;
    }
    fn retry(&mut self, attempt: u32, error: &dyn std::error::Error) {
        self.retries.push((attempt, error.to_string()));
    }
}
