//! One fake HTTP/1.1 server for tests, whose every answer a closure decides
//! ([`fake`]), for clients that must survive misbehaving peers.
//!
//! The handler gets each [`Request`] (read whole; something that is not
//! HTTP arrives as a request with an empty method) and returns a [`Reply`]:
//! a [`Response`] with any status, headers and body and the faults a test
//! needs (a lying or missing `Content-Length`, bytes beyond it, a chunked
//! body, a body cut after N bytes, a pause per piece, a stall), silence
//! ([`Reply::Hang`]), a closed connection ([`Reply::Close`]), raw bytes
//! ([`Reply::Raw`]), or the request passed on to a real server, possibly
//! cut ([`Reply::Forward`]). Redirects, a lying `Content-Range` or a server
//! that ignores `Range` are statuses and headers the handler picks.
//!
//! The room:
//!
//! - `request`: [`Request`], and reading it;
//! - `reply`: [`Reply`], [`Response`], and writing them;
//! - `forward`: [`Forward`], the proxy;
//! - `files`: [`serve`], a static file server with `Range` built on
//!   [`fake`].
//!
//! Every connection carries one exchange (`Connection: close`).

mod files;
mod forward;
mod reply;
mod request;

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use self::files::{Faults, FileServer, serve};
pub use self::forward::Forward;
pub use self::reply::{Reply, Response};
pub use self::request::Request;

/// How long a connection may stay silent while its request is read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A running fake server; it lives as long as the test process.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Every request, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    /// The URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The requests so far, in order.
    pub fn seen(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves every request with `handler`: a server that misbehaves exactly as
/// a test needs, without a hand-written HTTP loop.
pub fn fake(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, handler) = (Arc::clone(&log), Arc::clone(&handler));
            std::thread::spawn(move || {
                let _ = exchange(stream, &log, handler.as_ref());
            });
        }
    });
    FakeServer {
        base: format!("http://{host}"),
        host,
        requests,
    }
}

/// Reads one request, logs it, and carries out the handler's reply.
fn exchange(
    stream: TcpStream,
    log: &Mutex<Vec<Request>>,
    handler: &(dyn Fn(&Request) -> Reply + Send + Sync),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let request = request::read_request(&mut reader)?;
    log.lock().unwrap().push(request.clone());
    handler(&request).deliver(&request, stream)
}
