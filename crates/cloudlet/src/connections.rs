//! The API's connections, served with hyper's HTTP/1 server: each
//! request's headers must arrive within
//! [`HEADER_TIMEOUT`](crate::listener::HEADER_TIMEOUT), the first (after
//! the request line [`crate::listener`] checked) or the next on a
//! kept-alive connection.
//!
//! `axum::serve` sets no timer, and hyper's header timeout needs one:
//! under it, a connection that dribbled its headers, or sat silent after
//! its first request, held one of the
//! [`MAX_CONNECTIONS`](crate::listener::MAX_CONNECTIONS) slots for ever.
//! A stop ([`serve`]'s `shutdown`) ends accepting, lets each connection
//! finish the request it is serving, and closes the idle ones, as
//! axum's graceful shutdown does.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_service::Service;

use crate::listener::{ClientAddr, GuardedListener, HEADER_TIMEOUT, Replayed};

/// Serves `router` on `listener` until `shutdown` completes, then until
/// the requests in progress are answered.
pub async fn serve(
    mut listener: GuardedListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (io, peer) = listener.accept() => {
                while connections.try_join_next().is_some() {}
                connections.spawn(connection(io, peer, router.clone(), stop.clone()));
            }
        }
    }
    drop(listener);
    let _ = stopping.send(true);
    while connections.join_next().await.is_some() {}
}

/// One connection: its requests carry the client's address
/// (`ConnectInfo<ClientAddr>`) for the handlers and the access log.
async fn connection(
    io: Replayed,
    peer: SocketAddr,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(peer)));
        router.clone().call(request.map(axum::body::Body::new))
    });
    let mut served = pin!(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(io), service)
    );
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        () = stopped(&mut stop) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = ended {
        tracing::debug!(client = %peer.ip(), %error, "connection ended with an error");
    }
}

/// Completes when the server stops (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = stop.wait_for(|stopping| *stopping).await.map(drop);
}
