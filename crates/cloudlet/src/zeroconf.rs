//! `--zeroconf`: the cloudlet announced on its local network over mDNS /
//! DNS-SD, as Sinfonia's tier 2 announces itself, so that a client finds it
//! without any tier 1 (`olive2022 launch --zeroconf`).
//!
//! The record (service type, instance name, TXT property) has its home in
//! [`sinfonia::zeroconf`], shared with the browser. [`Announcement::start`]
//! registers it for the API's port; [`Announcement::withdraw`] (or dropping
//! the announcement) sends the goodbye packets that tell browsers it is
//! gone, which the cloudlet does as soon as it is asked to stop.
//!
//! Which addresses are announced follows the API's listening address: the
//! one address it is bound to, or, bound to every IPv4 (or every) address,
//! those of every interface, kept up to date as they change. Sinfonia
//! names the address records after the instance itself
//! (`cloudlet._sinfonia._tcp.local.`) rather than the machine, and so do
//! we: no host name has to be found or trusted.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use sinfonia::zeroconf::{API_PATH, INSTANCE_NAME, PATH_PROPERTY, SERVICE_TYPE};

/// How long a withdrawal waits for the goodbye to be sent.
const WITHDRAW_WAIT: Duration = Duration::from_secs(1);

/// Why the cloudlet cannot be announced.
#[derive(Debug, thiserror::Error)]
#[error("cannot announce the cloudlet with mDNS: {0}")]
pub struct AnnounceError(String);

/// The cloudlet's mDNS record, announced until withdrawn or dropped.
pub struct Announcement {
    daemon: Option<ServiceDaemon>,
    full_name: String,
}

impl Announcement {
    /// Announces the deploy API listening on `api` under
    /// [`INSTANCE_NAME`]`.`[`SERVICE_TYPE`] (renamed by the responder if
    /// another cloudlet on the link has that name).
    pub fn start(api: SocketAddr) -> Result<Announcement, AnnounceError> {
        let error = |e: mdns_sd::Error| AnnounceError(e.to_string());
        let info = record(api).map_err(error)?;
        let full_name = info.get_fullname().to_owned();
        if api.ip().is_loopback() {
            tracing::warn!(
                %api,
                "zeroconf: the API listens on loopback, so only this machine can use the announcement"
            );
        }
        let daemon = ServiceDaemon::new().map_err(error)?;
        if let Err(e) = daemon.register(info) {
            let _ = daemon.shutdown();
            return Err(error(e));
        }
        tracing::info!(name = %full_name, port = api.port(), "zeroconf: cloudlet announced");
        Ok(Announcement {
            daemon: Some(daemon),
            full_name,
        })
    }

    /// The announced instance's full name.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// Withdraws the record: goodbye packets, then the responder stops.
    pub fn withdraw(mut self) {
        self.withdraw_now();
    }

    fn withdraw_now(&mut self) {
        let Some(daemon) = self.daemon.take() else {
            return;
        };
        match daemon.unregister(&self.full_name) {
            Ok(status) => {
                // The goodbye is sent before the answer; the wait is bounded
                // so that a stuck responder cannot hold the stop up.
                let _ = status.recv_timeout(WITHDRAW_WAIT);
            }
            Err(error) => tracing::warn!(%error, "zeroconf: cannot withdraw the announcement"),
        }
        if let Ok(status) = daemon.shutdown() {
            let _ = status.recv_timeout(WITHDRAW_WAIT);
        }
        tracing::info!(name = %self.full_name, "zeroconf: announcement withdrawn");
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.withdraw_now();
    }
}

/// Sinfonia's tier-2 record for an API at `api`.
fn record(api: SocketAddr) -> Result<ServiceInfo, mdns_sd::Error> {
    let host = format!("{INSTANCE_NAME}.{SERVICE_TYPE}");
    let properties = [(PATH_PROPERTY, API_PATH)];
    let ip = api.ip();
    if ip.is_unspecified() {
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            INSTANCE_NAME,
            &host,
            (),
            api.port(),
            &properties[..],
        )?
        .enable_addr_auto();
        // A socket bound to 0.0.0.0 takes no IPv6 connections.
        if ip.is_ipv4() {
            info.set_interfaces(vec![IfKind::IPv4]);
        }
        Ok(info)
    } else {
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            INSTANCE_NAME,
            &host,
            ip,
            api.port(),
            &properties[..],
        )?;
        info.set_interfaces(vec![interface_of(ip)]);
        Ok(info)
    }
}

/// The interface that has `ip`: the one the record is announced on.
fn interface_of(ip: IpAddr) -> IfKind {
    if ip.is_loopback() {
        match ip {
            IpAddr::V4(_) => IfKind::LoopbackV4,
            IpAddr::V6(_) => IfKind::LoopbackV6,
        }
    } else {
        IfKind::Addr(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_sinfonias() {
        let api: SocketAddr = "10.1.2.3:8080".parse().expect("an address");
        let info = record(api).expect("a record");
        assert_eq!(info.get_fullname(), "cloudlet._sinfonia._tcp.local.");
        assert_eq!(info.get_type(), "_sinfonia._tcp.local.");
        assert_eq!(info.get_port(), 8080);
        assert_eq!(info.get_property_val_str("path"), Some("/"));
        assert!(!info.is_addr_auto());
    }

    #[test]
    fn every_address_when_bound_to_all() {
        let api: SocketAddr = "0.0.0.0:9000".parse().expect("an address");
        let info = record(api).expect("a record");
        assert!(info.is_addr_auto());
        assert_eq!(info.get_port(), 9000);
    }
}
