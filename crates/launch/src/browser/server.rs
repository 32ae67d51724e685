//! The local HTTP server of the browser view, on 127.0.0.1 at a random
//! port: noVNC's files under `/TOKEN/`, and the WebSocket at
//! `/TOKEN/websockify` bridged to the VM's display. Every request passes
//! the [`Guard`] first; a refused one gets 403 and a log line with the
//! reason.
//!
//! One page at a time: a new WebSocket supersedes the previous one (a
//! reload replaces the page) so there is never more than one bridge.
//! Connections are bounded in number and in header time
//! ([`super::connections`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::browser::bridge::{BridgeEnd, CHUNK_SIZE, bridge};
use crate::browser::connections;
use crate::browser::error::BrowserError;
use crate::browser::guard::{Guard, Token};
use crate::browser::novnc::{NoVnc, PAGE};
use crate::browser::presence::{Presence, PresenceTracker};

/// The WebSocket's path below the token (noVNC's default name).
pub const WEBSOCKET_PATH: &str = "websockify";
/// The largest message or frame the page may send: noVNC's messages are
/// tens of bytes (keys, pointer) up to a clipboard's text.
const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// What every request handler shares.
struct Shared {
    guard: Guard,
    novnc: NoVnc,
    display: SocketAddr,
    presence: PresenceTracker,
}

/// The running server.
pub struct BrowserServer {
    guard: Guard,
    port: u16,
    presence: watch::Receiver<Presence>,
    task: JoinHandle<()>,
}

impl BrowserServer {
    /// Listens on 127.0.0.1 at a free port with a new token, serving
    /// `novnc` and bridging WebSockets to `display` (the forwarded port).
    pub async fn start(novnc: NoVnc, display: SocketAddr) -> Result<BrowserServer, BrowserError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(BrowserError::Serve)?;
        let port = listener.local_addr().map_err(BrowserError::Serve)?.port();
        let guard = Guard::new(Token::random()?, port);
        let (tracker, presence) = PresenceTracker::new();
        let shared = Arc::new(Shared {
            guard: guard.clone(),
            novnc,
            display,
            presence: tracker,
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let task = tokio::spawn(connections::serve(listener, app));
        tracing::debug!(port, "browser view's server listening on 127.0.0.1");
        Ok(BrowserServer {
            guard,
            port,
            presence,
            task,
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The page's address, token and query included: what the browser
    /// opens (and a secret while the launch runs).
    pub fn page_url(&self) -> String {
        let token = self.guard.token().as_str();
        let query = NoVnc::page_query(&format!("{token}/{WEBSOCKET_PATH}"));
        format!("{}/{token}/{PAGE}?{query}", self.guard.origin())
    }

    /// The server's origin, `http://127.0.0.1:PORT` (no token).
    pub fn origin(&self) -> &str {
        self.guard.origin()
    }

    /// The WebSockets as they come and go.
    pub fn presence(&self) -> watch::Receiver<Presence> {
        self.presence.clone()
    }

    /// Stops serving: open connections and bridges end with the task.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Every request: the guard, then the WebSocket or a file.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let rest = match shared.guard.check(&path, &parts.headers) {
        Ok(rest) => rest,
        Err(refusal) => {
            // The path may hold a token attempt: log the reason only.
            tracing::warn!(reason = refusal.reason(), method = %parts.method, "refused a request to the browser view");
            return StatusCode::FORBIDDEN.into_response();
        }
    };
    if parts.method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if rest == WEBSOCKET_PATH {
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => open_socket(shared, upgrade),
            Err(rejection) => rejection.into_response(),
        };
    }
    match shared.novnc.asset(rest).await {
        Some(asset) => {
            if rest == PAGE {
                tracing::info!("browser view's page served");
            } else {
                tracing::debug!(file = rest, "noVNC file served");
            }
            file_response(asset.body, asset.content_type)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A file with headers that keep it (and its token-bearing URL) private.
fn file_response(body: Vec<u8>, content_type: &'static str) -> Response {
    let headers = [
        (CONTENT_TYPE, content_type),
        (CACHE_CONTROL, "no-store"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
    ];
    (headers, Body::from(body)).into_response()
}

/// Accepts the WebSocket (binary subprotocol if offered, bounded
/// messages) and bridges it to the display.
fn open_socket(shared: Arc<Shared>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["binary"])
        .max_message_size(MAX_MESSAGE_SIZE)
        .max_frame_size(MAX_MESSAGE_SIZE)
        .write_buffer_size(CHUNK_SIZE)
        .on_upgrade(move |socket| async move {
            let number = shared.presence.opened();
            tracing::info!(socket = number, "browser view's WebSocket opened");
            let superseded = shared.presence.superseded(number);
            let end = bridge(socket, shared.display, superseded).await;
            shared.presence.closed();
            match end {
                BridgeEnd::DisplayError => {
                    tracing::warn!(
                        socket = number,
                        "browser view's WebSocket closed: the VM's display failed"
                    );
                }
                end => tracing::info!(socket = number, ?end, "browser view's WebSocket closed"),
            }
        })
}
