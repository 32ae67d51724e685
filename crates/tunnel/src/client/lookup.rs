//! Name resolution inside the client's stack: smoltcp's DNS socket asks
//! the tunnel's name servers, one candidate name after the other in the
//! order of [`search_order`].

use std::net::Ipv4Addr;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dns::{self, GetQueryResultError, QueryHandle};
use smoltcp::wire::{DnsQueryType, IpAddress};
use tokio::sync::oneshot;

use super::resolve::search_order;
use crate::error::TunnelError;

/// smoltcp's DNS socket takes at most this many servers.
const MAX_DNS_SERVERS: usize = 4;

/// A name being resolved: candidates tried one after the other.
struct Lookup {
    name: String,
    candidates: Vec<String>,
    next: usize,
    query: Option<QueryHandle>,
    reply: oneshot::Sender<Result<Ipv4Addr, TunnelError>>,
}

/// The stack's DNS socket (none without name servers) and the lookups in
/// progress.
pub(super) struct Lookups {
    dns: Option<SocketHandle>,
    search_domains: Vec<String>,
    pending: Vec<Lookup>,
}

impl Lookups {
    /// Adds the DNS socket for `dns_servers` to `sockets`.
    pub fn new(
        dns_servers: &[Ipv4Addr],
        search_domains: Vec<String>,
        sockets: &mut SocketSet<'static>,
    ) -> Lookups {
        let servers: Vec<IpAddress> = dns_servers
            .iter()
            .take(MAX_DNS_SERVERS)
            .map(|ip| IpAddress::Ipv4(*ip))
            .collect();
        let dns =
            (!servers.is_empty()).then(|| sockets.add(dns::Socket::new(&servers, Vec::new())));
        Lookups {
            dns,
            search_domains,
            pending: Vec::new(),
        }
    }

    /// Starts resolving `name`; an address literal answers at once.
    pub fn start(&mut self, name: String, reply: oneshot::Sender<Result<Ipv4Addr, TunnelError>>) {
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            let _ = reply.send(Ok(ip));
            return;
        }
        if self.dns.is_none() {
            let _ = reply.send(Err(TunnelError::NoDnsServer(name)));
            return;
        }
        let candidates = search_order(&name, &self.search_domains);
        self.pending.push(Lookup {
            name,
            candidates,
            next: 0,
            query: None,
            reply,
        });
    }

    /// Advances every lookup; returns whether anything changed.
    pub fn service(&mut self, sockets: &mut SocketSet<'_>, iface: &mut Interface) -> bool {
        let Some(dns_handle) = self.dns else {
            return false;
        };
        let mut changed = false;
        let mut index = 0;
        while index < self.pending.len() {
            let socket = sockets.get_mut::<dns::Socket>(dns_handle);
            let lookup = &mut self.pending[index];
            let mut answer = None;
            if let Some(query) = lookup.query {
                match socket.get_query_result(query) {
                    Ok(addresses) => {
                        let ipv4 = addresses.iter().find_map(|address| match address {
                            IpAddress::Ipv4(ip) => Some(*ip),
                            #[allow(unreachable_patterns)]
                            _ => None,
                        });
                        lookup.query = None;
                        answer = ipv4.map(Ok);
                    }
                    Err(GetQueryResultError::Pending) => {}
                    Err(GetQueryResultError::Failed) => lookup.query = None,
                }
            }
            while answer.is_none() && lookup.query.is_none() {
                let Some(candidate) = lookup.candidates.get(lookup.next) else {
                    answer = Some(Err(TunnelError::Resolve {
                        name: lookup.name.clone(),
                        tried: lookup.candidates.join(", "),
                    }));
                    break;
                };
                lookup.next += 1;
                lookup.query = socket
                    .start_query(iface.context(), candidate, DnsQueryType::A)
                    .ok();
                changed = true;
            }
            match answer {
                Some(result) => {
                    let lookup = self.pending.swap_remove(index);
                    let _ = lookup.reply.send(result);
                    changed = true;
                }
                None => index += 1,
            }
        }
        changed
    }
}
