//! The relayed connections of a client's stack: each accepted smoltcp
//! socket gets, once established, a task that connects to the service's
//! target with a Tokio `TcpStream` and moves bytes both ways through a
//! [`Pipe`]; the connection's [`Flow`] paces what goes to the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::TcpSeqNumber;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::congestion::Flow;
use super::shared::ServerShared;
use crate::pipe::{CHUNK, Pipe, smoltcp_duration};

/// Chunks buffered per direction of a relay.
const CHANNEL_CHUNKS: usize = 16;
/// A connection from a client must complete its handshake in this time,
/// and the service's target must accept in this time.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection is probed after this long without traffic, and
/// dropped after `TCP_TIMEOUT` without an answer: a client that went away
/// does not keep its relay (and the service's connection) forever.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
const TCP_TIMEOUT: Duration = Duration::from_secs(120);

/// A relayed connection: the smoltcp socket and, once established, the
/// channels of its relay task.
pub(super) struct Relay {
    handle: SocketHandle,
    target: SocketAddr,
    link: Option<Link>,
    flow: Flow,
}

/// The stack's ends of a relay task's channels.
struct Link {
    /// The stack's ends of the relay's channels.
    pipe: Pipe,
    /// Set by the relay task when the target could not be reached.
    refused: Arc<AtomicBool>,
}

impl Relay {
    /// A connection a listener for `target` accepted (its SYN came).
    pub fn accepted(handle: SocketHandle, target: SocketAddr) -> Relay {
        Relay {
            handle,
            target,
            link: None,
            flow: Flow::new(),
        }
    }

    /// Its smoltcp socket.
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// A data segment the stack sends on this connection.
    pub fn on_segment(&mut self, seq: TcpSeqNumber, len: usize) {
        self.flow.on_segment(seq, len);
    }

    /// Lets go of the relay task (its socket is being aborted): the task
    /// sees its channels close and closes the target's connection.
    pub fn unlink(&mut self) {
        self.link = None;
    }

    /// One connection's step; returns whether anything changed.
    pub fn service(&mut self, socket: &mut tcp::Socket<'_>, shared: &Arc<ServerShared>) -> bool {
        let Some(link) = &mut self.link else {
            return match socket.state() {
                tcp::State::Established | tcp::State::CloseWait => {
                    socket.set_timeout(Some(smoltcp_duration(TCP_TIMEOUT)));
                    socket.set_keep_alive(Some(smoltcp_duration(TCP_KEEPALIVE)));
                    self.link = Some(spawn_relay(self.target, Arc::clone(shared)));
                    true
                }
                // The handshake failed and the socket listens again: the
                // listeners are kept elsewhere, this one goes.
                tcp::State::Listen => {
                    socket.abort();
                    true
                }
                _ => false,
            };
        };
        if link.refused.load(Ordering::Acquire) {
            socket.abort();
            self.link = None;
            return true;
        }
        // Relay → socket while the flow's window has room; a closed relay
        // sends FIN.
        link.pipe.deliver_inbound(socket)
            | self.flow.write_within(socket, |socket, window| {
                link.pipe.accept_outbound(socket, window)
            })
    }
}

/// Starts the task relaying one connection to `target`.
fn spawn_relay(target: SocketAddr, shared: Arc<ServerShared>) -> Link {
    let (to_app, from_stack) = mpsc::channel(CHANNEL_CHUNKS);
    let (to_stack, from_app) = mpsc::channel(CHANNEL_CHUNKS);
    let refused = Arc::new(AtomicBool::new(false));
    tokio::spawn(relay(
        target,
        from_stack,
        to_stack,
        shared,
        Arc::clone(&refused),
    ));
    Link {
        pipe: Pipe::new(to_app, from_app),
        refused,
    }
}

/// Connects to `target` and moves bytes both ways until both directions
/// are closed, or the stack drops the connection.
async fn relay(
    target: SocketAddr,
    mut from_stack: mpsc::Receiver<Vec<u8>>,
    to_stack: mpsc::Sender<Vec<u8>>,
    shared: Arc<ServerShared>,
    refused: Arc<AtomicBool>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        _ => {
            refused.store(true, Ordering::Release);
            shared.wake.notify_one();
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let upstream = async {
        while let Some(chunk) = from_stack.recv().await {
            // Room freed in the channel: the stack may move more.
            shared.wake.notify_one();
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        drop(from_stack);
        shared.wake.notify_one();
        let _ = writer.shutdown().await;
    };
    let downstream = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = tokio::select! {
                read = reader.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                // The stack dropped the connection.
                _ = to_stack.closed() => break,
            };
            if to_stack.send(buffer[..n].to_vec()).await.is_err() {
                break;
            }
            shared.wake.notify_one();
        }
        drop(to_stack); // FIN to the client
        shared.wake.notify_one();
    };
    tokio::join!(upstream, downstream);
}
