//! [`ThrottleProxy`]: a TCP proxy on loopback that makes a registry look
//! far away: one shared bandwidth cap for everything it sends back (one
//! link), a delay on each new connection, and a delay before each request
//! goes upstream (a round trip per request). It counts the bytes it sent
//! back and the HTTP requests it saw, and can be switched to refuse and
//! cut everything (an outage) and back.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the link behaves; change it at any time through
/// [`ThrottleProxy::shape`]. Only what goes back to the client is capped:
/// uploads go at full speed, each request waiting the latency once.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Bytes per second back to the clients, all connections together (0:
    /// no cap).
    pub rate: u64,
    /// Added before each request is passed upstream, and to each new
    /// connection.
    pub latency: Duration,
}

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes sent back to clients.
    pub bytes_down: AtomicU64,
    /// Requests (`GET`, `HEAD`, … lines) seen.
    pub requests: AtomicU64,
    /// `GET`s of blobs.
    pub blob_gets: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
}

struct State {
    upstream: String,
    shape: Mutex<Shape>,
    /// The shared cap's bucket: bytes allowed, and when it was filled.
    bucket: Mutex<(f64, Instant)>,
    outage: AtomicBool,
    stopped: AtomicBool,
    counters: Counters,
}

/// A running proxy, stopped when dropped.
pub struct ThrottleProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    state: Arc<State>,
}

impl ThrottleProxy {
    /// Proxies `127.0.0.1:PORT` to `upstream` (`host:port`) with `shape`.
    pub fn start(upstream: &str, shape: Shape) -> ThrottleProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            shape: Mutex::new(shape),
            bucket: Mutex::new((0.0, Instant::now())),
            outage: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || accept_loop(&listener, &accepting));
        ThrottleProxy { host, state }
    }

    /// Changes the link.
    pub fn shape(&self, shape: Shape) {
        *self.state.shape.lock().unwrap() = shape;
    }

    /// Starts (true) or ends an outage: while on, open connections are cut
    /// and new ones closed at once.
    pub fn outage(&self, on: bool) {
        self.state.outage.store(on, Ordering::SeqCst);
    }

    /// What it saw so far.
    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(&self.host);
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>) {
    for client in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if state.outage.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        state.counters.connections.fetch_add(1, Ordering::Relaxed);
        let state = Arc::clone(state);
        std::thread::spawn(move || relay(client, &state));
    }
}

/// Pumps one connection both ways until either side closes.
fn relay(client: TcpStream, state: &Arc<State>) {
    std::thread::sleep(state.shape.lock().unwrap().latency);
    let Ok(server) = TcpStream::connect(&state.upstream) else {
        return;
    };
    for stream in [&client, &server] {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let _ = stream.set_nodelay(true);
    }
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upward = Arc::clone(state);
    let up = std::thread::spawn(move || pump(client_reader, server_writer, &upward, true));
    pump(server, client, state, false);
    let _ = up.join();
}

/// Copies `from` to `to`: upward, each request waits the latency first;
/// downward, every byte waits for the shared cap.
fn pump(mut from: TcpStream, mut to: TcpStream, state: &State, upward: bool) {
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        if state.stopped.load(Ordering::SeqCst) || state.outage.load(Ordering::SeqCst) {
            break;
        }
        let read = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        let piece = &buffer[..read];
        if upward {
            // A new request waits a round trip; its body does not.
            if count_requests(piece, &state.counters) {
                std::thread::sleep(state.shape.lock().unwrap().latency);
            }
        } else {
            take_tokens(state, read);
            state
                .counters
                .bytes_down
                .fetch_add(read as u64, Ordering::Relaxed);
        }
        if to.write_all(piece).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Counts a request line at the start of `piece` (a client sends each
/// request head in its own writes, so a request starts a piece); whether
/// there was one.
fn count_requests(piece: &[u8], counters: &Counters) -> bool {
    const METHODS: [&[u8]; 6] = [b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE "];
    if !METHODS.iter().any(|method| piece.starts_with(method)) {
        return false;
    }
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if piece.starts_with(b"GET ") && piece.windows(7).any(|w| w == b"/blobs/") {
        counters.blob_gets.fetch_add(1, Ordering::Relaxed);
    }
    true
}

/// Waits until the shared cap allows `bytes` more.
fn take_tokens(state: &State, bytes: usize) {
    let rate = state.shape.lock().unwrap().rate;
    if rate == 0 {
        return;
    }
    let wait = {
        let mut bucket = state.bucket.lock().unwrap();
        let now = Instant::now();
        // At most a tenth of a second of burst.
        let refill = now.duration_since(bucket.1).as_secs_f64() * rate as f64;
        bucket.0 = (bucket.0 + refill).min(rate as f64 / 10.0);
        bucket.1 = now;
        bucket.0 -= bytes as f64;
        if bucket.0 < 0.0 {
            Duration::from_secs_f64(-bucket.0 / rate as f64)
        } else {
            Duration::ZERO
        }
    };
    std::thread::sleep(wait);
}
