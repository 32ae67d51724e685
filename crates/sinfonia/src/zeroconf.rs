//! Local discovery: a cloudlet announced over mDNS / DNS-SD, and the
//! tier-3 side that finds it without any tier 1.
//!
//! The record is Sinfonia's tier 2 `--zeroconf` announcement, which every
//! announcer and browser here imports from this one place:
//!
//! - service type [`SERVICE_TYPE`] (`_sinfonia._tcp.local.`), instance
//!   [`INSTANCE_NAME`] (`cloudlet`, so `cloudlet._sinfonia._tcp.local.`;
//!   a second cloudlet on the same link gets a renamed instance);
//! - the port is the deploy API's port;
//! - one TXT property, [`PATH_PROPERTY`] = [`API_PATH`] (`path=/`): where
//!   the API is under that address.
//!
//! [`discover`] browses for the service type for a bounded time and turns
//! the answer into the base URL the deploy client ([`crate::deploy::Tier1`])
//! takes: `http://ADDRESS:PORT/PATH`. Sinfonia's own tier 3 left its
//! `--zeroconf` unfinished; its notes say it would look up the instance
//! `cloudlet` and send the deploy request there instead of to tier 1, which
//! is what this does: that instance is taken as soon as it resolves; if
//! only renamed instances answer, the first one resolved is taken when the
//! browse time is up.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent};

use crate::deploy::sanitize;

/// The DNS-SD service type of a Sinfonia cloudlet's deploy API.
pub const SERVICE_TYPE: &str = "_sinfonia._tcp.local.";
/// The instance name a cloudlet announces itself under.
pub const INSTANCE_NAME: &str = "cloudlet";
/// The TXT property that says where the API is on the announced port.
pub const PATH_PROPERTY: &str = "path";
/// The value of [`PATH_PROPERTY`]: the API at the root.
pub const API_PATH: &str = "/";
/// How long `launch --zeroconf` listens for answers.
pub const BROWSE_TIME: Duration = Duration::from_secs(3);
/// Longest instance name shown in messages, in characters.
const SHOWN_NAME: usize = 80;

/// The full DNS-SD name of the announced instance,
/// `cloudlet._sinfonia._tcp.local.`.
pub fn instance_full_name() -> String {
    format!("{INSTANCE_NAME}.{SERVICE_TYPE}")
}

/// A cloudlet found on the local network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCloudlet {
    /// Its DNS-SD instance name (from the network, made printable).
    pub name: String,
    /// The base URL of its deploy API, for [`crate::deploy::Tier1::new`].
    pub url: String,
}

/// Why no cloudlet was found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The mDNS responder could not be started or asked.
    #[error("cannot browse the local network with mDNS: {0}")]
    Mdns(String),
    /// Nothing usable answered within the browse time.
    #[error(
        "no Sinfonia cloudlet ({SERVICE_TYPE}) answered on the local network within {} s",
        waited.as_secs_f32()
    )]
    NoneFound {
        /// How long we listened.
        waited: Duration,
    },
}

/// Browses the local network for [`SERVICE_TYPE`] for at most `within`
/// and returns the cloudlet to deploy through (see the module docs for
/// which one when several answer).
pub fn discover(within: Duration) -> Result<FoundCloudlet, DiscoveryError> {
    let mdns = |e: mdns_sd::Error| DiscoveryError::Mdns(e.to_string());
    let daemon = ServiceDaemon::new().map_err(mdns)?;
    let found = browse(&daemon, within).map_err(mdns);
    // The responder's thread ends on its own; we need not wait for it.
    let _ = daemon.shutdown();
    found?.ok_or(DiscoveryError::NoneFound { waited: within })
}

/// The browse loop: the preferred instance at once, else the first usable
/// answer once `within` is over.
fn browse(
    daemon: &ServiceDaemon,
    within: Duration,
) -> Result<Option<FoundCloudlet>, mdns_sd::Error> {
    let deadline = Instant::now() + within;
    let events = daemon.browse(SERVICE_TYPE)?;
    let preferred = instance_full_name();
    let mut first = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(event) = events.recv_timeout(left) else {
            // Timed out, or the responder stopped: what we have is all.
            return Ok(first);
        };
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        let is_preferred = service.get_fullname().eq_ignore_ascii_case(&preferred);
        match usable(&service) {
            Some(found) if is_preferred => {
                tracing::debug!(name = %found.name, url = %found.url, "zeroconf: cloudlet found");
                return Ok(Some(found));
            }
            Some(found) => {
                tracing::debug!(name = %found.name, url = %found.url, "zeroconf: renamed cloudlet found");
                first.get_or_insert(found);
            }
            None => tracing::debug!(
                name = %sanitize(service.get_fullname(), SHOWN_NAME),
                "zeroconf: answer without a usable address or path, skipped"
            ),
        }
    }
}

/// The cloudlet an answer describes, if it has an address we can reach
/// and a sane path.
fn usable(service: &ResolvedService) -> Option<FoundCloudlet> {
    let path = match service.get_property_val_str(PATH_PROPERTY) {
        Some(path) if is_sane_path(path) => path,
        Some(_) => return None,
        None => API_PATH,
    };
    let addresses: Vec<IpAddr> = service
        .get_addresses()
        .iter()
        .map(|ip| ip.to_ip_addr())
        .collect();
    let address = pick_address(&addresses)?;
    Some(FoundCloudlet {
        name: sanitize(service.get_fullname(), SHOWN_NAME),
        url: base_url(address, service.get_port(), path),
    })
}

/// IPv4 first (Sinfonia announces only that), then an IPv6 address that
/// needs no interface scope; never an unspecified one.
fn pick_address(addresses: &[IpAddr]) -> Option<IpAddr> {
    let mut sorted: Vec<IpAddr> = addresses
        .iter()
        .copied()
        .filter(|ip| !ip.is_unspecified())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .collect();
    sorted.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    sorted.first().copied()
}

/// A path we put into a URL as it is: absolute, printable ASCII, no
/// query, fragment or spaces.
fn is_sane_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 255
        && path
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '?' | '#' | '\\'))
}

/// The deploy client's base URL for an announced address, port and path.
pub fn base_url(address: IpAddr, port: u16, path: &str) -> String {
    match address {
        IpAddr::V4(v4) => format!("http://{v4}:{port}{path}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_full_name_is_sinfonias() {
        assert_eq!(instance_full_name(), "cloudlet._sinfonia._tcp.local.");
    }

    #[test]
    fn urls_bracket_ipv6() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(base_url(v4, 8080, "/"), "http://10.0.0.2:8080/");
        let v6: IpAddr = "2001:db8::1".parse().expect("an address");
        assert_eq!(base_url(v6, 80, "/api"), "http://[2001:db8::1]:80/api");
    }

    #[test]
    fn ipv4_is_preferred_and_link_local_ipv6_refused() {
        let link_local: IpAddr = "fe80::1".parse().expect("an address");
        let global: IpAddr = "2001:db8::1".parse().expect("an address");
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5));
        assert_eq!(pick_address(&[global, link_local, v4]), Some(v4));
        assert_eq!(pick_address(&[link_local, global]), Some(global));
        assert_eq!(pick_address(&[link_local]), None);
        assert_eq!(pick_address(&[IpAddr::V6(Ipv6Addr::UNSPECIFIED)]), None);
    }

    #[test]
    fn only_plain_absolute_paths_are_used() {
        assert!(is_sane_path("/"));
        assert!(is_sane_path("/sinfonia/"));
        for bad in ["", "api", "/a b", "/a?b", "/a#b", "/\u{1b}[2J", "/é"] {
            assert!(!is_sane_path(bad), "{bad:?}");
        }
    }
}
