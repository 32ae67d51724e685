//! A TCP connection through the tunnel, as the application sees it: byte
//! chunks over bounded channels to the stack. The stack's ends of the
//! channels are a [`Pipe`](crate::pipe::Pipe); every move on this side
//! wakes the stack, which may then move more.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::shared::Shared;
use crate::error::TunnelError;

/// A TCP connection through the tunnel: byte chunks in, byte chunks out.
/// Dropping the sending half (or the whole stream) closes the connection
/// in that direction, as a FIN.
pub struct TunnelStream {
    reader: TunnelReader,
    writer: TunnelWriter,
}

/// The sending half of a [`TunnelStream`].
pub struct TunnelWriter {
    to_stack: mpsc::Sender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// The receiving half of a [`TunnelStream`].
pub struct TunnelReader {
    from_stack: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
}

impl TunnelStream {
    /// The application's ends of a connection's channels.
    pub(crate) fn new(
        to_stack: mpsc::Sender<Vec<u8>>,
        from_stack: mpsc::Receiver<Vec<u8>>,
        shared: Arc<Shared>,
    ) -> Self {
        TunnelStream {
            reader: TunnelReader {
                from_stack,
                shared: Arc::clone(&shared),
            },
            writer: TunnelWriter { to_stack, shared },
        }
    }

    /// Sends bytes; waits while the connection's buffers are full.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), TunnelError> {
        self.writer.send(data).await
    }

    /// The next bytes received, or `None` once the peer closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.reader.recv().await
    }

    /// Splits into halves that can be used from two tasks.
    pub fn split(self) -> (TunnelReader, TunnelWriter) {
        (self.reader, self.writer)
    }
}

impl TunnelWriter {
    /// Sends bytes; waits while the connection's buffers are full.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), TunnelError> {
        self.to_stack
            .send(data)
            .await
            .map_err(|_| TunnelError::Closed)?;
        self.shared.wake.notify_one();
        Ok(())
    }
}

impl TunnelReader {
    /// The next bytes received, or `None` once the peer closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let chunk = self.from_stack.recv().await;
        // Room freed in the channel: the stack may move more data.
        self.shared.wake.notify_one();
        chunk
    }
}

/// Either half going away is news for the stack (FIN, or data to discard).
impl Drop for TunnelWriter {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}

impl Drop for TunnelReader {
    fn drop(&mut self) {
        self.shared.wake.notify_one();
    }
}
