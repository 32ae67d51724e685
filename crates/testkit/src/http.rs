//! Fake HTTP/1.1 servers for tests: [`serve`], a static file server with
//! Range support and faults (the first response cut, a slow body), and
//! [`fake`], a server whose every answer a closure decides (any status, a
//! hang), for clients that must survive misbehaving peers.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A running server; it lives as long as the test process.
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The request line and `Range` header of every request, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// Misbehaviours of the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// The first response sends only this many body bytes, then closes.
    pub cut_first_after: Option<u64>,
    /// Pause this long after every 64 KiB of body: a slow server.
    pub pause: Option<std::time::Duration>,
}

/// Serves the files of `dir`, misbehaving as `faults` says.
pub fn serve(dir: PathBuf, faults: Faults) -> FileServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (dir, log, served) = (dir.clone(), Arc::clone(&log), Arc::clone(&served));
            std::thread::spawn(move || {
                let first = served.fetch_add(1, Ordering::SeqCst) == 0;
                let cut = if first { faults.cut_first_after } else { None };
                let _ = answer(stream, &dir, &log, cut, faults.pause);
            });
        }
    });
    FileServer { base, requests }
}

fn answer(
    stream: TcpStream,
    dir: &std::path::Path,
    log: &Mutex<Vec<String>>,
    cut: Option<u64>,
    pause: Option<std::time::Duration>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range_start = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("range: bytes=") {
            range_start = value.trim().trim_end_matches('-').parse::<u64>().ok();
        }
    }
    log.lock()
        .unwrap()
        .push(format!("{} range={range_start:?}", request_line.trim()));
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path
        .split('?')
        .next()
        .unwrap_or(path)
        .trim_start_matches('/');
    let mut out = stream;
    let Ok(mut file) = std::fs::File::open(dir.join(path)) else {
        return out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let total = file.metadata()?.len();
    let start = range_start.unwrap_or(0).min(total);
    file.seek(SeekFrom::Start(start))?;
    let head = match range_start {
        Some(_) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{total}\r\nConnection: close\r\n\r\n",
            total - start,
            total.saturating_sub(1)
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        ),
    };
    out.write_all(head.as_bytes())?;
    let mut body = file.take(cut.unwrap_or(u64::MAX));
    let mut piece = vec![0; 64 << 10];
    loop {
        let n = body.read(&mut piece)?;
        if n == 0 {
            return out.flush();
        }
        out.write_all(&piece[..n])?;
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
    }
}

/// One request as a fake server saw it (headers lower-cased; the body is
/// read only when `Content-Length` says there is one).
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The request target, query included.
    pub target: String,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What a fake server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An answer: status, extra headers, body (`Content-Length` and
    /// `Connection: close` are added).
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Read the request, then say nothing until the client gives up.
    Hang,
}

/// A running fake server; it lives as long as the test process.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every request, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
}

/// Serves every request with `handler`: a server that misbehaves exactly as
/// a test needs (statuses, hangs), without a hand-written HTTP loop.
pub fn fake(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, handler) = (Arc::clone(&log), Arc::clone(&handler));
            std::thread::spawn(move || {
                let _ = answer_fake(stream, &log, handler.as_ref());
            });
        }
    });
    FakeServer { base, requests }
}

fn answer_fake(
    stream: TcpStream,
    log: &Mutex<Vec<Request>>,
    handler: &(dyn Fn(&Request) -> Reply + Send + Sync),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body: Vec::new(),
    };
    let length = request
        .header("content-length")
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    reader.take(length).read_to_end(&mut request.body)?;
    log.lock().unwrap().push(request.clone());
    let mut out = stream;
    match handler(&request) {
        Reply::Answer(status, extra, body) => {
            let mut head = format!("HTTP/1.1 {status} Fake\r\n");
            for (name, value) in extra {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            out.write_all(head.as_bytes())?;
            out.write_all(&body)?;
            out.flush()
        }
        Reply::Hang => {
            std::thread::sleep(std::time::Duration::from_secs(600));
            Ok(())
        }
    }
}
