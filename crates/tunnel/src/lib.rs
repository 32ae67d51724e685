//! A WireGuard tunnel in user space, with its own TCP/IP stack.
//!
//! The original olive2022 needs a network namespace, a bundled
//! `wireguard-go` and sometimes `sudo` to reach a VM on a cloudlet. Here the
//! whole tunnel lives in our process, as in onetun: boringtun speaks the
//! WireGuard protocol over one UDP socket, smoltcp runs TCP/IP on the tunnel
//! address, DNS queries go through the tunnel to the cloudlet's servers with
//! its search domains, and local TCP connections are forwarded to a service
//! inside the tunnel. No root, no helper binaries, no system configuration.
//!
//! The other side, for a cloudlet that terminates its clients' tunnels
//! itself: [`TunnelServer`] (in [`server`]) speaks WireGuard with many
//! peers on one UDP socket, answers each client's service names over DNS
//! and relays each client's TCP connections to its own services only.
//!
//! The room:
//!
//! - [`client`]: [`Tunnel`], started from a [`TunnelConfig`];
//!   [`TunnelHandle`] resolves names and opens [`TunnelStream`]s from any
//!   task; [`forward()`] relays local connections through the tunnel;
//! - [`server`]: [`TunnelServer`], [`ServerHandle`] and the clients'
//!   settings ([`PeerConfig`], [`Service`]);
//! - `error`: [`TunnelError`], for both sides;
//! - `worker`: what both sides' running tasks share: the command channel
//!   that wakes the task, graceful shutdown, abort on drop;
//! - `pipe`: what both sides' stacks share: bytes between a smoltcp socket
//!   and a task's channels, the UDP socket, seeds;
//! - `device`: the smoltcp device of both sides, IP packets in queues.
//!
//! `client` and `server` do not know each other; both build on `worker`,
//! `pipe`, `device` and `error`, which know neither.
//!
//! The tunnel settings Sinfonia hands out (keep-alive, addresses, DNS,
//! `ndots:5`) are described in `docs/sinfonia.md`; their values have one
//! home, `sinfonia::wireguard` (`PERSISTENT_KEEPALIVE`, `NDOTS`).

pub mod client;
mod device;
mod error;
mod pipe;
pub mod server;
mod worker;

pub use client::{
    Stats, Tunnel, TunnelConfig, TunnelHandle, TunnelReader, TunnelStream, TunnelWriter, forward,
    search_order,
};
pub use error::TunnelError;
pub use server::{
    PeerConfig, PeerStatus, ServerConfig, ServerHandle, Service, TunnelServer, public_key,
};

/// WireGuard's usual MTU inside the tunnel.
pub const DEFAULT_MTU: usize = 1420;
