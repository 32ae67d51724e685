//! The client side: a tunnel to one cloudlet, as the original olive2022's
//! `wireguard-go` + network namespace gave it, in our own process.
//!
//! The room:
//!
//! - `config`: [`TunnelConfig`], the settings a deployment answer gives;
//! - `handle`: [`TunnelHandle`] (resolve names, open streams, counters)
//!   and the commands it sends to the stack's task;
//! - `stream`: [`TunnelStream`] and its halves, the application's ends of
//!   one TCP connection's channels;
//! - `shared`: what the stack publishes to handles and streams (wake-up,
//!   handshake, counters);
//! - `stack`: the task itself: UDP socket, boringtun, smoltcp, the loop;
//! - `lookup` and `connection`: DNS lookups and TCP connections inside
//!   the stack;
//! - `resolve`: the resolv.conf search order ([`search_order`]);
//! - `forward`: local port forwarding ([`forward()`]).
//!
//! Imports run one way: `mod` → `stack` → `lookup` → `resolve`;
//! `stack` → `connection`, `handle` → `stream` → `shared`; `forward` →
//! `handle`. Nothing imports `mod` or `stack`.

mod config;
mod connection;
mod forward;
mod handle;
mod lookup;
mod resolve;
mod shared;
mod stack;
mod stream;

use std::sync::Arc;

pub use config::TunnelConfig;
pub use forward::forward;
pub use handle::{Stats, TunnelHandle};
pub use resolve::search_order;
pub use stream::{TunnelReader, TunnelStream, TunnelWriter};

use crate::error::TunnelError;
use crate::worker::{Mailbox, Worker};
use handle::Command;
use shared::Shared;

/// A running tunnel. Dropping it (or [`Tunnel::shutdown`]) stops it.
pub struct Tunnel {
    worker: Worker<Command, Shared>,
    handle: TunnelHandle,
}

impl Tunnel {
    /// Binds a UDP socket and starts the tunnel on the current Tokio
    /// runtime; the handshake starts at once.
    pub async fn start(config: TunnelConfig) -> Result<Tunnel, TunnelError> {
        let endpoint = config.endpoint;
        let (mailbox, commands) = Mailbox::new(Arc::new(Shared::default()));
        let stack = stack::Stack::new(config, Arc::clone(mailbox.shared()), commands).await?;
        let handle = TunnelHandle::new(mailbox.clone(), endpoint);
        Ok(Tunnel {
            worker: Worker::spawn(mailbox, stack.run()),
            handle,
        })
    }

    /// A handle to use the tunnel from other tasks.
    pub fn handle(&self) -> TunnelHandle {
        self.handle.clone()
    }

    /// Stops the tunnel and waits for its task.
    pub async fn shutdown(self) {
        self.worker.shutdown().await;
    }
}
