//! [`CutProxy`]: the fake server of `testkit` as a proxy in front of a real
//! registry, cutting requests in the middle of what the client sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::http::{Forward, Reply, Request};

/// When a [`CutProxy`] cuts.
#[derive(Debug, Clone, Copy)]
pub enum Cut {
    /// Once, when `n` bytes in all went from the client to the server.
    OnceAfter(u64),
    /// Every connection, after `n` bytes from its client.
    EveryConnectionAfter(u64),
}

/// A proxy to `upstream` that cuts requests in the middle (the upstream
/// gets their start, then both connections close without an answer).
pub struct CutProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Bytes forwarded from clients to the server.
    pub uploaded: Arc<AtomicU64>,
    /// Connections cut.
    pub cuts: Arc<AtomicU64>,
}

impl CutProxy {
    /// Starts the proxy.
    pub fn start(upstream: &str, cut: Cut) -> CutProxy {
        let uploaded = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let counters = Counters {
            uploaded: Arc::clone(&uploaded),
            cuts: Arc::clone(&cuts),
            cut_done: AtomicBool::new(false),
        };
        let upstream = upstream.to_owned();
        let server = testkit::http::fake(move |request| {
            Reply::Forward(counters.forward(Forward::to(&upstream), cut, request))
        });
        CutProxy {
            host: server.host,
            uploaded,
            cuts,
        }
    }
}

/// What the proxy counts, and whether its one cut happened.
struct Counters {
    uploaded: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
    cut_done: AtomicBool,
}

impl Counters {
    /// `forward`, cut if `request` goes past the limit of `cut`.
    fn forward(&self, forward: Forward, cut: Cut, request: &Request) -> Forward {
        let size = request.encode().len() as u64;
        let allowed = match cut {
            Cut::OnceAfter(limit) if !self.cut_done.load(Ordering::SeqCst) => {
                limit.saturating_sub(self.uploaded.load(Ordering::SeqCst))
            }
            Cut::OnceAfter(_) => u64::MAX,
            Cut::EveryConnectionAfter(limit) => limit,
        };
        let once = matches!(cut, Cut::OnceAfter(_));
        if size <= allowed || (once && self.cut_done.swap(true, Ordering::SeqCst)) {
            self.uploaded.fetch_add(size, Ordering::SeqCst);
            return forward;
        }
        self.cuts.fetch_add(1, Ordering::SeqCst);
        self.uploaded.fetch_add(allowed, Ordering::SeqCst);
        forward.cut_after(allowed)
    }
}
