//! Local port forwarding: every TCP connection accepted on a local
//! listener is relayed to one address inside the tunnel.

use std::net::SocketAddrV4;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::handle::TunnelHandle;
use crate::error::TunnelError;

/// Accepts connections on `listener` forever, relaying each to `target`
/// through the tunnel; several at once, and again after a viewer
/// reconnects. Returns only if accepting fails.
pub async fn forward(
    tunnel: TunnelHandle,
    listener: TcpListener,
    target: SocketAddrV4,
) -> std::io::Result<()> {
    loop {
        let (local, _) = listener.accept().await?;
        let tunnel = tunnel.clone();
        tokio::spawn(async move {
            let _ = relay(&tunnel, local, target).await;
        });
    }
}

/// Relays one local connection until both directions are closed.
async fn relay(
    tunnel: &TunnelHandle,
    local: TcpStream,
    target: SocketAddrV4,
) -> Result<(), TunnelError> {
    let _ = local.set_nodelay(true);
    let remote = tunnel.connect(target).await?;
    let (mut from_remote, to_remote) = remote.split();
    let (mut local_read, mut local_write) = local.into_split();
    let upstream = async move {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            match local_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_remote.send(buffer[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
        drop(to_remote); // FIN to the remote side
    };
    let downstream = async move {
        while let Some(chunk) = from_remote.recv().await {
            if local_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = local_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
    Ok(())
}
