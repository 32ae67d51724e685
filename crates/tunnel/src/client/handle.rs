//! Using a running tunnel from any task: [`TunnelHandle`] turns each call
//! into a [`Command`] for the stack's task and waits for its reply.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use super::shared::Shared;
use super::stream::TunnelStream;
use crate::error::TunnelError;
use crate::worker::{Mailbox, Stop};

/// What handles ask of the stack.
pub(crate) enum Command {
    Resolve {
        name: String,
        reply: oneshot::Sender<Result<Ipv4Addr, TunnelError>>,
    },
    Connect {
        address: SocketAddrV4,
        reply: oneshot::Sender<Result<TunnelStream, TunnelError>>,
    },
    Shutdown,
}

impl Stop for Command {
    fn stop() -> Self {
        Command::Shutdown
    }
}

/// A cheap, cloneable way to use a running tunnel from any task.
#[derive(Clone)]
pub struct TunnelHandle {
    mailbox: Mailbox<Command, Shared>,
    endpoint: SocketAddr,
}

/// Traffic counters of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// UDP bytes received from the cloudlet.
    pub rx_bytes: u64,
    /// UDP bytes sent to the cloudlet.
    pub tx_bytes: u64,
}

impl TunnelHandle {
    /// A handle on the stack behind `mailbox`, talking to `endpoint`.
    pub(crate) fn new(mailbox: Mailbox<Command, Shared>, endpoint: SocketAddr) -> Self {
        TunnelHandle { mailbox, endpoint }
    }

    /// Waits until a handshake with the cloudlet completed.
    pub async fn wait_handshake(&self, timeout: Duration) -> Result<(), TunnelError> {
        let shared = self.mailbox.shared();
        let done = async {
            loop {
                let notified = shared.handshake.notified();
                if shared.handshake_done.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, done)
            .await
            .map_err(|_| TunnelError::Handshake {
                endpoint: self.endpoint,
                seconds: timeout.as_secs(),
            })
    }

    /// Resolves `name` through the tunnel, trying the search domains as
    /// resolv.conf with `ndots:5` would.
    pub async fn resolve(&self, name: &str) -> Result<Ipv4Addr, TunnelError> {
        let name = name.to_owned();
        self.mailbox
            .ask(|reply| Command::Resolve { name, reply })
            .await?
    }

    /// Opens a TCP connection to `address` through the tunnel.
    pub async fn connect(&self, address: SocketAddrV4) -> Result<TunnelStream, TunnelError> {
        self.mailbox
            .ask(|reply| Command::Connect { address, reply })
            .await?
    }

    /// Traffic so far.
    pub fn stats(&self) -> Stats {
        let shared = self.mailbox.shared();
        Stats {
            rx_bytes: shared.rx_bytes.load(Ordering::Relaxed),
            tx_bytes: shared.tx_bytes.load(Ordering::Relaxed),
        }
    }
}
