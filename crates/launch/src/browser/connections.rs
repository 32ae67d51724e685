//! The browser view's connections, bounded: at most [`MAX_CONNECTIONS`]
//! open at once, and each request's headers within [`HEADER_TIMEOUT`].
//!
//! The server listens on 127.0.0.1, where every local user may connect.
//! Without the token such a user only ever gets a 403, but idle
//! connections would otherwise stay open for ever and could use up the
//! launch's file descriptors. `axum::serve` sets no header timeout (hyper
//! needs a timer for one), so connections are served here with hyper's
//! HTTP/1 server directly. A connection upgraded to the WebSocket leaves
//! this count: the one-page rule bounds those ([`super::presence`]).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Most connections open at once: a page loads its scripts over a few
/// (browsers open about six per origin); beyond, new ones wait in the
/// kernel's accept queue until one closes.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a connection has to send a request's headers, the first or
/// the next on a kept-alive connection; a silent one is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept (out of descriptors, say) before the
/// next, so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until the returned future is dropped,
/// which ends every connection it serves.
pub async fn serve(listener: TcpListener, router: axum::Router) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return; // never closed: the semaphore lives here
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "browser view: accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "browser view: a connection ended with an error");
            }
            drop(permit);
        });
    }
}
