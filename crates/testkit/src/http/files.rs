//! [`serve`]: the fake server as a static file server with `Range`
//! support, and two faults (the first answer cut, a slow body).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Reply, Request, Response, fake};

/// A running file server; it lives as long as the test process.
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The request line and `Range` start of every request, in order
    /// (`GET /path HTTP/1.1 range=Some(1024)`).
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// Misbehaviours of the file server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// The first response sends only this many body bytes, then closes.
    pub cut_first_after: Option<u64>,
    /// Pause this long after every 64 KiB of body: a slow server.
    pub pause: Option<std::time::Duration>,
}

/// Serves the files of `dir`, misbehaving as `faults` says.
pub fn serve(dir: PathBuf, faults: Faults) -> FileServer {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    let served = AtomicUsize::new(0);
    let server = fake(move |request| {
        log.lock().unwrap().push(format!(
            "{} {} HTTP/1.1 range={:?}",
            request.method,
            request.target,
            request.range_start()
        ));
        let first = served.fetch_add(1, Ordering::SeqCst) == 0;
        let mut reply = answer(&dir, request);
        if let (true, Some(cut)) = (first, faults.cut_first_after) {
            reply = reply.cut_after(cut);
        }
        if let Some(pause) = faults.pause {
            reply = reply.pause_every_piece(pause);
        }
        Reply::Send(reply)
    });
    FileServer {
        base: server.base,
        requests,
    }
}

/// The file `request` asks for, or the part of it its `Range` asks for.
fn answer(dir: &std::path::Path, request: &Request) -> Response {
    let path = request.path().trim_start_matches('/');
    let Ok(file) = std::fs::read(dir.join(path)) else {
        return Response::new(404);
    };
    let total = file.len() as u64;
    match request.range_start() {
        Some(start) => {
            let start = start.min(total);
            let range = format!("bytes {start}-{}/{total}", total.saturating_sub(1));
            let rest = file[usize::try_from(start).unwrap()..].to_vec();
            Response::new(206).header("Content-Range", range).body(rest)
        }
        None => Response::new(200)
            .header("Accept-Ranges", "bytes")
            .body(file),
    }
}
