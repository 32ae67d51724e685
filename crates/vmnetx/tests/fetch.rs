#![allow(clippy::unwrap_used)]
//! Tests of `vmnetx::fetch` against a misbehaving HTTP/1.1 server (the fake
//! server of `testkit`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use testkit::http::{FakeServer, Reply, Request, Response};
use vmnetx::fetch::{FetchError, FetchOptions, NoProgress, Progress, fetch_to_file};

const BODY_LEN: usize = 5 * 1024 * 1024;

/// A deterministic pseudo-random body (xorshift64).
fn body() -> Arc<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(BODY_LEN);
    while out.len() < BODY_LEN {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(BODY_LEN);
    Arc::new(out)
}

/// How the test server (mis)behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Answer `Range: bytes=N-` with 206.
    honour_range: bool,
    /// Answer every range request with 416.
    refuse_range: bool,
    /// Shift the start of the Content-Range by one byte.
    wrong_range_start: bool,
    /// Close after this many body bytes on the first this many responses.
    drop_after: Option<(usize, usize)>,
    /// Send this many bytes (none after the first response), sleep, close,
    /// on the first this many responses.
    stall: Option<(usize, Duration, usize)>,
    /// Announce this many more bytes than are sent, every time.
    extra_announced: usize,
    /// Send this many bytes more than Content-Length, chunked.
    chunked_excess: usize,
    /// Send this many bytes more than Content-Length, raw.
    raw_excess: usize,
    /// After the first response, the body is this many bytes shorter.
    shrink_after_first: usize,
    /// No Content-Length; the end of the body is the end of the connection.
    no_length: bool,
    /// Answer every request on the data path with this status.
    status: Option<u16>,
    /// ETag header to send.
    etag: Option<&'static str>,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Logged {
    path: String,
    range: Option<String>,
    if_range: Option<String>,
}

/// A running test server: the fake server of `testkit`, answering as a
/// [`Behaviour`] says.
struct Server {
    fake: FakeServer,
    body: Arc<Vec<u8>>,
}

impl Server {
    fn start(behaviour: Behaviour) -> Server {
        let body = body();
        let data = Arc::clone(&body);
        let responses = AtomicUsize::new(0);
        let fake = testkit::http::fake(move |request| match request.path() {
            "/data" => answer_data(&behaviour, &data, request, &responses),
            "/old" => redirect("/data"),
            "/loop" => redirect("/loop"),
            "/ftp" => redirect("ftp://127.0.0.1/x"),
            _ => nope(404),
        });
        Server { fake, body }
    }

    fn url(&self, path: &str) -> String {
        self.fake.url(path)
    }

    fn log(&self) -> Vec<Logged> {
        self.fake
            .seen()
            .into_iter()
            .map(|request| Logged {
                range: request.header("range").map(str::to_owned),
                if_range: request.header("if-range").map(str::to_owned),
                path: request.target,
            })
            .collect()
    }
}

/// The answer to a request for `/data`, the `index`-th one.
fn answer_data(b: &Behaviour, body: &[u8], request: &Request, responses: &AtomicUsize) -> Reply {
    if let Some(status) = b.status {
        return nope(status);
    }
    let index = responses.fetch_add(1, Ordering::SeqCst);
    let real_len = if index > 0 {
        body.len() - b.shrink_after_first
    } else {
        body.len()
    };
    let body = &body[..real_len];
    let announced = (real_len + b.extra_announced) as u64;
    let start = request
        .range_start()
        .filter(|_| b.honour_range || b.refuse_range);
    let (mut response, mut payload) = match start {
        Some(_) if b.refuse_range => return nope(416),
        Some(start) => {
            let shown = if b.wrong_range_start {
                start + 1
            } else {
                start
            };
            let content_range = format!("bytes {shown}-{}/{announced}", announced - 1);
            let response = Response::new(206)
                .header("Content-Range", content_range)
                .announce(announced - start);
            (response, body[(start as usize).min(real_len)..].to_vec())
        }
        None if b.no_length => (Response::new(200).without_length(), body.to_vec()),
        None => (Response::new(200).announce(announced), body.to_vec()),
    };
    if let Some(etag) = b.etag {
        response = response.header("ETag", etag);
    }
    if b.chunked_excess > 0 {
        payload.extend(std::iter::repeat_n(0x55, b.chunked_excess));
        response = response.chunked();
    }
    payload.extend(std::iter::repeat_n(0xAA, b.raw_excess));
    let response = response.body(payload);
    Reply::Send(faults(b, response, index))
}

/// The cut or the stall of the `index`-th answer.
fn faults(b: &Behaviour, response: Response, index: usize) -> Response {
    if let Some((bytes, count)) = b.drop_after
        && index < count
    {
        return response.cut_after(bytes as u64);
    }
    if let Some((bytes, sleep, count)) = b.stall
        && index < count
    {
        // Only the first response sends something before stalling.
        let bytes = if index == 0 { bytes } else { 0 };
        return response.cut_after(bytes as u64).stall(sleep);
    }
    response
}

/// A response with a short text body.
fn nope(status: u16) -> Reply {
    Reply::Answer(status, vec![], b"nope".to_vec())
}

/// A `302 Found` to `location`.
fn redirect(location: &str) -> Reply {
    let headers = vec![("Location".to_owned(), location.to_owned())];
    Reply::Answer(302, headers, b"nope".to_vec())
}

/// Records what the download reported.
#[derive(Default)]
struct Recorder {
    starts: Vec<Option<u64>>,
    position: u64,
    retries: Vec<(u32, String)>,
}

impl Progress for Recorder {
    fn start(&mut self, total: Option<u64>) {
        self.starts.push(total);
        self.position = 0;
    }
    fn advance(&mut self, bytes: u64) {
        self.position += bytes;
    }
    fn retry(&mut self, attempt: u32, error: &dyn std::error::Error) {
        self.retries.push((attempt, error.to_string()));
    }
}

fn quick() -> FetchOptions {
    FetchOptions {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(1),
        max_retries: 3,
        ..FetchOptions::default()
    }
}

/// `quick()` with at most `max_retries` retries.
fn retrying(max_retries: u32) -> FetchOptions {
    FetchOptions {
        max_retries,
        ..quick()
    }
}

struct Dest {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn dest() -> Dest {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("package.nxpk");
    Dest { _dir: dir, path }
}

fn fetch(url: &str, path: &Path, options: &FetchOptions) -> Result<u64, FetchError> {
    fetch_to_file(url, path, options, &mut NoProgress)
}

fn assert_exact(path: &Path, body: &[u8]) {
    let got = std::fs::read(path).unwrap();
    assert_eq!(got.len(), body.len(), "file size");
    assert!(got == body, "file contents differ from the served body");
}

/// What one download from a new test server left behind.
struct Download {
    server: Server,
    dest: Dest,
    progress: Recorder,
    /// How long `fetch_to_file` took.
    took: Duration,
    result: Result<u64, FetchError>,
}

/// Downloads `path` from a new server that behaves as `behaviour`.
fn download_with(behaviour: Behaviour, path: &str, options: &FetchOptions) -> Download {
    let server = Server::start(behaviour);
    let dest = dest();
    let mut progress = Recorder::default();
    let began = Instant::now();
    let result = fetch_to_file(&server.url(path), &dest.path, options, &mut progress);
    Download {
        took: began.elapsed(),
        server,
        dest,
        progress,
        result,
    }
}

/// Downloads `/data` with the `quick()` options.
fn download(behaviour: Behaviour) -> Download {
    download_with(behaviour, "/data", &quick())
}

impl Download {
    /// Asserts that the whole body arrived, exactly.
    fn assert_complete(&self) {
        match &self.result {
            Ok(size) => assert_eq!(*size, BODY_LEN as u64),
            Err(error) => panic!("the download failed: {error:?}"),
        }
        assert_exact(&self.dest.path, &self.server.body);
    }

    /// The error of a download that must fail.
    fn error(&self) -> &FetchError {
        match &self.result {
            Ok(size) => panic!("the download succeeded with {size} bytes"),
            Err(error) => error,
        }
    }
}

#[test]
fn downloads_the_exact_body() {
    let run = download(Behaviour::default());
    run.assert_complete();
    assert_eq!(run.progress.starts, vec![Some(BODY_LEN as u64)]);
    assert_eq!(run.progress.position, BODY_LEN as u64);
    assert!(run.progress.retries.is_empty());
    assert_eq!(run.server.log().len(), 1);
    assert!(run.server.log()[0].range.is_none());
}

#[test]
fn overwrites_an_existing_destination() {
    let server = Server::start(Behaviour::default());
    let dest = dest();
    std::fs::write(&dest.path, vec![1u8; BODY_LEN + 1000]).unwrap();
    fetch(&server.url("/data"), &dest.path, &quick()).unwrap();
    assert_exact(&dest.path, &server.body);
}

#[test]
fn resumes_dropped_connections_with_range() {
    let run = download(Behaviour {
        honour_range: true,
        drop_after: Some((1_000_003, 3)),
        etag: Some("\"v1\""),
        ..Behaviour::default()
    });
    run.assert_complete();
    let log = run.server.log();
    let ranges: Vec<_> = log.iter().map(|l| l.range.clone()).collect();
    assert_eq!(
        ranges,
        vec![
            None,
            Some("bytes=1000003-".to_owned()),
            Some("bytes=2000006-".to_owned()),
            Some("bytes=3000009-".to_owned()),
        ]
    );
    assert!(
        log[1..]
            .iter()
            .all(|l| l.if_range.as_deref() == Some("\"v1\""))
    );
    let progress = &run.progress;
    assert_eq!(progress.starts.len(), 1);
    assert_eq!(progress.position, BODY_LEN as u64);
    assert_eq!(progress.retries.len(), 3);
    assert!(progress.retries.iter().all(|(attempt, _)| *attempt == 1));
}

#[test]
fn restarts_when_the_server_ignores_range() {
    let run = download(Behaviour {
        drop_after: Some((2_000_000, 2)),
        ..Behaviour::default()
    });
    run.assert_complete();
    let log = run.server.log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[1].range.as_deref(), Some("bytes=2000000-"));
    assert_eq!(run.progress.starts.len(), 3);
    assert_eq!(run.progress.position, BODY_LEN as u64);
}

#[test]
fn a_restart_with_another_size_is_an_error() {
    let run = download(Behaviour {
        drop_after: Some((1_000_000, 1)),
        shrink_after_first: 10,
        ..Behaviour::default()
    });
    let error = run.error();
    assert!(matches!(error, FetchError::Changed { .. }), "{error:?}");
    assert!(error.to_string().contains("size"), "{error}");
}

#[test]
fn a_refused_range_is_an_error() {
    let run = download(Behaviour {
        refuse_range: true,
        drop_after: Some((1_000_000, 1)),
        ..Behaviour::default()
    });
    let error = run.error();
    assert!(error.to_string().contains("416"), "{error}");
}

#[test]
fn a_wrong_content_range_is_an_error() {
    let run = download(Behaviour {
        honour_range: true,
        wrong_range_start: true,
        drop_after: Some((1_000_000, 1)),
        ..Behaviour::default()
    });
    let error = run.error();
    assert!(matches!(error, FetchError::BadRange { .. }), "{error:?}");
}

#[test]
fn a_server_that_sends_less_than_announced_is_an_error() {
    let behaviour = Behaviour {
        honour_range: true,
        extra_announced: 1000,
        ..Behaviour::default()
    };
    let run = download_with(behaviour, "/data", &retrying(2));
    assert!(run.took < Duration::from_secs(5));
    let error = run.error();
    let text = error.to_string();
    assert!(
        matches!(error, FetchError::RetriesExhausted { .. }),
        "{error:?}"
    );
    assert!(text.contains("fewer bytes than announced"), "{text}");
    assert!(
        text.contains(&format!("of {} bytes", BODY_LEN + 1000)),
        "{text}"
    );
    // First request, then 2 retries.
    assert_eq!(run.server.log().len(), 3);
}

#[test]
fn a_lying_server_that_ignores_range_is_an_error() {
    let behaviour = Behaviour {
        extra_announced: 1000,
        ..Behaviour::default()
    };
    let run = download_with(behaviour, "/data", &retrying(1));
    let error = run.error();
    assert!(
        error.to_string().contains("fewer bytes than announced"),
        "{error}"
    );
}

#[test]
fn a_server_that_sends_more_than_announced_is_an_error() {
    let run = download(Behaviour {
        chunked_excess: 100,
        ..Behaviour::default()
    });
    let error = run.error();
    assert!(matches!(error, FetchError::TooLong { .. }), "{error:?}");
    assert!(
        error.to_string().contains("more bytes than announced"),
        "{error}"
    );
    let written = std::fs::metadata(&run.dest.path).unwrap().len();
    assert!(written <= BODY_LEN as u64);
}

#[test]
fn bytes_past_the_content_length_never_reach_the_file() {
    // HTTP/1.1 delimits the body by Content-Length: the excess is not part of
    // the body and cannot be seen by the client, but must never be written.
    download(Behaviour {
        raw_excess: 100_000,
        ..Behaviour::default()
    })
    .assert_complete();
}

#[test]
fn without_content_length_reads_to_the_end() {
    let run = download(Behaviour {
        no_length: true,
        ..Behaviour::default()
    });
    run.assert_complete();
    assert_eq!(run.progress.starts, vec![None]);
}

#[test]
fn an_http_error_is_reported_with_its_status() {
    let run = download(Behaviour {
        status: Some(404),
        ..Behaviour::default()
    });
    let text = run.error().to_string();
    assert!(text.contains("404"), "{text}");
    assert!(text.contains(&run.server.url("/data")), "{text}");
    let run = download(Behaviour {
        status: Some(500),
        ..Behaviour::default()
    });
    let error = run.error();
    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(
        run.server.log().len(),
        1,
        "a first answer 500 is not retried"
    );
}

#[test]
fn query_strings_never_appear_in_errors() {
    let server = Server::start(Behaviour::default());
    let dest = dest();
    let url = format!(
        "http://user:PASSWORD@{}/missing?token=SECRET#frag",
        server.fake.host
    );
    let error = fetch(&url, &dest.path, &quick()).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("404"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(!text.contains("PASSWORD"), "{text}");
    assert!(text.contains("/missing"), "{text}");
}

#[test]
fn query_strings_never_appear_in_redirect_errors() {
    let run = download_with(Behaviour::default(), "/loop?token=SECRET", &quick());
    let error = run.error();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("SECRET"), "{text}");
}

#[test]
fn a_stalled_connection_is_resumed() {
    let run = download(Behaviour {
        honour_range: true,
        stall: Some((100_000, Duration::from_secs(4), 1)),
        ..Behaviour::default()
    });
    assert!(run.took < Duration::from_secs(4), "{:?}", run.took);
    run.assert_complete();
    assert_eq!(run.server.log()[1].range.as_deref(), Some("bytes=100000-"));
    let retries = &run.progress.retries;
    assert_eq!(retries.len(), 1);
    assert!(retries[0].1.contains("no data"), "{retries:?}");
}

#[test]
fn a_server_that_always_stalls_gives_up_in_bounded_time() {
    let behaviour = Behaviour {
        honour_range: true,
        stall: Some((100_000, Duration::from_secs(10), usize::MAX)),
        ..Behaviour::default()
    };
    let run = download_with(behaviour, "/data", &retrying(1));
    // Two idle timeouts of 1 s and one backoff of 0.5 s.
    assert!(run.took < Duration::from_secs(5), "{:?}", run.took);
    let error = run.error();
    assert!(
        matches!(error, FetchError::RetriesExhausted { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no data"), "{error}");
}

#[test]
fn a_refused_connection_is_an_error() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dest = dest();
    let began = Instant::now();
    let error = fetch(&format!("http://{addr}/data"), &dest.path, &quick()).unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(3));
    assert!(matches!(error, FetchError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[test]
fn a_redirect_is_followed() {
    let run = download_with(Behaviour::default(), "/old", &quick());
    run.assert_complete();
    let paths: Vec<_> = run.server.log().iter().map(|l| l.path.clone()).collect();
    assert_eq!(paths, vec!["/old", "/data"]);
}

#[test]
fn a_redirect_loop_is_an_error() {
    let run = download_with(Behaviour::default(), "/loop", &quick());
    let error = run.error();
    assert!(matches!(error, FetchError::Redirect { .. }), "{error:?}");
    assert!(error.to_string().contains("redirects"), "{error}");
    assert_eq!(run.server.log().len(), 11);
}

#[test]
fn a_redirect_to_another_scheme_is_an_error() {
    let run = download_with(Behaviour::default(), "/ftp", &quick());
    let error = run.error();
    assert!(matches!(error, FetchError::Redirect { .. }), "{error:?}");
}

#[test]
fn other_schemes_are_rejected_without_network() {
    let dest = dest();
    for url in ["ftp://127.0.0.1:1/package.nxpk", "file:///etc/passwd"] {
        let error = fetch(url, &dest.path, &quick()).unwrap_err();
        assert!(
            matches!(error, FetchError::UnsupportedScheme { .. }),
            "{error:?}"
        );
    }
    let error = fetch("not a url", &dest.path, &quick()).unwrap_err();
    assert!(matches!(error, FetchError::InvalidUrl { .. }), "{error:?}");
    assert!(!dest.path.exists());
}

#[test]
fn default_options() {
    let options = FetchOptions::default();
    assert_eq!(options.connect_timeout, Duration::from_secs(30));
    assert_eq!(options.idle_timeout, Duration::from_secs(60));
    assert_eq!(options.max_retries, 5);
    assert!(options.user_agent.starts_with("olive2022/"));
}

#[test]
fn a_tls_failure_is_a_connect_error() {
    // Something that is not a TLS server: answers plain text at once.
    let server = testkit::http::fake(|_| {
        Reply::Raw(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n".to_vec())
    });
    let dest = dest();
    let began = Instant::now();
    let url = format!("https://{}/data", server.host);
    let error = fetch(&url, &dest.path, &quick()).unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(3));
    assert!(matches!(error, FetchError::Connect { .. }), "{error:?}");
}
