//! The API's listening socket, with a look at each connection's request
//! line before the HTTP library takes it.
//!
//! The HTTP library answers a request target it cannot hold (over 64 KiB)
//! with a bare 414 that never reaches our router, so no problem+json body.
//! [`GuardedListener`] reads each new connection's first line itself, in a
//! task of its own (a slow client delays no one), within
//! [`REQUEST_LINE_TIMEOUT`]:
//!
//! - longer than [`MAX_REQUEST_LINE`]: answered here with a 414 problem and
//!   closed;
//! - silent or cut short: closed;
//! - otherwise handed to the server with the bytes already read replayed
//!   first ([`Replayed`]).
//!
//! Later requests on a kept-alive connection are not looked at here; the
//! router refuses their long targets (`problems::limit_uri`) up to 64 KiB.
//!
//! At most [`MAX_CONNECTIONS`] connections are open at once; they are
//! served by [`crate::connections`], which bounds the time of every
//! later request's headers ([`HEADER_TIMEOUT`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sinfonia::problem::{PROBLEM_JSON, Problem};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::problems::MAX_URI_LENGTH;

/// Longest first line read: the longest target accepted plus the method
/// and version around it.
pub const MAX_REQUEST_LINE: usize = MAX_URI_LENGTH + 64;
/// How long a new connection has to send its request line.
pub const REQUEST_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection has to send a request's headers, the first or
/// the next on a kept-alive connection (a silent one is closed).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long our own HTTP clients of cloudlets and tier 1s (forwards,
/// reports) keep an idle connection: less than [`HEADER_TIMEOUT`], so they
/// let it go before the server closes it, and never send a request on a
/// connection the server is closing.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections checked and waiting for the server to take them.
const QUEUE: usize = 64;
/// Most connections open at once; beyond, new ones wait in the kernel's
/// accept queue until one closes (a client holding thousands of idle
/// connections must not exhaust our file descriptors).
pub const MAX_CONNECTIONS: usize = 1024;

/// The address of the client of a connection, for the handlers and the
/// access log (`ConnectInfo<ClientAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A [`TcpListener`] whose connections have had their request line checked.
pub struct GuardedListener {
    checked: mpsc::Receiver<(Replayed, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl GuardedListener {
    /// Starts checking the connections of `listener`.
    pub fn new(listener: TcpListener) -> io::Result<GuardedListener> {
        let local_addr = listener.local_addr()?;
        let (sender, checked) = mpsc::channel(QUEUE);
        let acceptor = tokio::spawn(accept_loop(listener, sender));
        Ok(GuardedListener {
            checked,
            local_addr,
            acceptor,
        })
    }
}

impl Drop for GuardedListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl GuardedListener {
    /// The next checked connection and its client's address.
    pub async fn accept(&mut self) -> (Replayed, SocketAddr) {
        match self.checked.recv().await {
            Some(connection) => connection,
            // The acceptor only stops when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

async fn accept_loop(listener: TcpListener, checked: mpsc::Sender<(Replayed, SocketAddr)>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // The semaphore is never closed.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let checked = checked.clone();
        tokio::spawn(async move {
            let read =
                tokio::time::timeout(REQUEST_LINE_TIMEOUT, read_request_line(stream, slot)).await;
            if let Ok(Ok(Some(connection))) = read {
                let _ = checked.send((connection, peer)).await;
            }
        });
    }
}

/// Reads until the end of the first line: `Some` to serve, `None` when the
/// connection was answered here or closed.
async fn read_request_line(
    mut stream: TcpStream,
    slot: OwnedSemaphorePermit,
) -> io::Result<Option<Replayed>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        let searched_from = head.len();
        head.extend_from_slice(&chunk[..read]);
        let line_end = head[searched_from..].iter().position(|&b| b == b'\n');
        match line_end {
            Some(at) if searched_from + at <= MAX_REQUEST_LINE => {
                return Ok(Some(Replayed::new(head, stream, slot)));
            }
            None if head.len() <= MAX_REQUEST_LINE => continue,
            _ => {
                refuse_long_target(&mut stream, head.len()).await?;
                return Ok(None);
            }
        }
    }
}

async fn refuse_long_target(stream: &mut TcpStream, seen: usize) -> io::Result<()> {
    let problem = Problem::new(
        414,
        "URI Too Long",
        format!(
            "the request line is longer than the {MAX_REQUEST_LINE} bytes accepted ({seen} read)"
        ),
    );
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// A connection whose first bytes were read already: they are read again
/// first, then the socket.
pub struct Replayed {
    head: Vec<u8>,
    position: usize,
    stream: TcpStream,
    /// This connection's place among [`MAX_CONNECTIONS`], given back when
    /// it closes.
    _slot: OwnedSemaphorePermit,
}

impl Replayed {
    fn new(head: Vec<u8>, stream: TcpStream, slot: OwnedSemaphorePermit) -> Replayed {
        Replayed {
            head,
            position: 0,
            stream,
            _slot: slot,
        }
    }
}

impl AsyncRead for Replayed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let left = &this.head[this.position..];
        if left.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let taken = left.len().min(buf.remaining());
        buf.put_slice(&left[..taken]);
        this.position += taken;
        if this.position == this.head.len() {
            this.head = Vec::new();
            this.position = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
