//! One WebSocket bridged to the VM's display: binary messages carry raw
//! RFB bytes both ways, in the same TCP connection to the forwarded port
//! that a native viewer would open.
//!
//! The bridge ends when either side closes, when the page sends anything
//! but binary data (noVNC never does), or when `superseded` fires (a newer
//! page took over: one client at a time).

use std::net::SocketAddr;

use axum::extract::ws::{Message, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes read from the display into one message.
pub const CHUNK_SIZE: usize = 64 << 10;

/// Why a bridge ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEnd {
    /// The page closed the WebSocket (or its connection dropped).
    PageClosed,
    /// The VM's display closed the connection.
    DisplayClosed,
    /// The page sent text: not RFB.
    NotBinary,
    /// A newer page took over.
    Superseded,
    /// The display's connection failed.
    DisplayError,
}

/// Pumps bytes between `socket` and a new connection to `display` until
/// one side ends or `superseded` completes.
pub async fn bridge(
    mut socket: WebSocket,
    display: SocketAddr,
    superseded: impl Future<Output = ()>,
) -> BridgeEnd {
    let Ok(stream) = TcpStream::connect(display).await else {
        let _ = socket.send(Message::Close(None)).await;
        return BridgeEnd::DisplayError;
    };
    let _ = stream.set_nodelay(true);
    let (mut from_display, mut to_display) = stream.into_split();
    let mut buffer = vec![0u8; CHUNK_SIZE];
    tokio::pin!(superseded);
    let end = loop {
        tokio::select! {
            () = &mut superseded => break BridgeEnd::Superseded,
            read = from_display.read(&mut buffer) => match read {
                Ok(0) => break BridgeEnd::DisplayClosed,
                Ok(count) => {
                    let bytes = axum::body::Bytes::copy_from_slice(&buffer[..count]);
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        break BridgeEnd::PageClosed;
                    }
                }
                Err(_) => break BridgeEnd::DisplayError,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if to_display.write_all(&bytes).await.is_err() {
                        break BridgeEnd::DisplayError;
                    }
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Text(_))) => break BridgeEnd::NotBinary,
                Some(Ok(Message::Close(_)) | Err(_)) | None => break BridgeEnd::PageClosed,
            },
        }
    };
    if end != BridgeEnd::PageClosed {
        let _ = socket.send(Message::Close(None)).await;
    }
    let _ = to_display.shutdown().await;
    end
}
