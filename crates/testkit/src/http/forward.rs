//! [`Forward`]: a fake server as a proxy in front of a real one, which can
//! cut a request in the middle (a connection that breaks while the client
//! uploads).

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use super::Request;

/// Passes a request on to `upstream` and its answer back.
#[derive(Debug, Clone)]
pub struct Forward {
    upstream: String,
    cut_after: Option<u64>,
}

impl Forward {
    /// To the server at `upstream` (`host:port`).
    pub fn to(upstream: &str) -> Forward {
        Forward {
            upstream: upstream.to_owned(),
            cut_after: None,
        }
    }

    /// Passes on only the first `bytes` of the request (as
    /// [`Request::encode`] writes it), then closes both connections without
    /// an answer. A request of at most `bytes` bytes goes through whole.
    pub fn cut_after(mut self, bytes: u64) -> Forward {
        self.cut_after = Some(bytes);
        self
    }

    /// Forwards `request`, received on `client`.
    pub(super) fn deliver(self, request: &Request, client: &mut TcpStream) -> std::io::Result<()> {
        let mut upstream = TcpStream::connect(&self.upstream)?;
        let bytes = request.encode();
        let cut = self
            .cut_after
            .and_then(|cut| usize::try_from(cut).ok())
            .filter(|&cut| cut < bytes.len());
        if let Some(cut) = cut {
            upstream.write_all(&bytes[..cut])?;
            upstream.flush()?;
            let _ = upstream.shutdown(Shutdown::Both);
            return client.shutdown(Shutdown::Both);
        }
        upstream.write_all(&bytes)?;
        std::io::copy(&mut upstream, client)?;
        client.flush()
    }
}
