//! Step one of a launch: the VM deployed through Sinfonia tier 1 with this
//! machine's cached key for it, and the tunnel settings read from the
//! answer.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use sinfonia::deploy::{CONNECT_TIMEOUT, Deployment, Tier1};
use sinfonia::keys::{CachedKey, KeyCache, KeyOrigin};
use sinfonia::wireguard::PERSISTENT_KEEPALIVE;
use tunnel::TunnelConfig;
use uuid::Uuid;

use crate::deadline::Deadline;
use crate::error::LaunchError;
use crate::observer::Observer;

/// A deployment made, with the key it was made with.
pub struct Deployed {
    /// Our key for this VM, from the key cache.
    pub key: CachedKey,
    /// Tier 1's answer.
    pub deployment: Deployment,
    /// When the launch began (before the key cache was read), for the
    /// "display ready after" line.
    pub started: Instant,
}

/// Deploys `uuid` through `tier1` with the cached key for it (created when
/// there is none or it is unusable), in the user's default key cache; the
/// request and the reading of its answer end by `deadline`.
pub fn deploy(
    uuid: Uuid,
    tier1: &Tier1,
    deadline: Deadline,
    observer: &mut dyn Observer,
) -> Result<Deployed, LaunchError> {
    let cache = KeyCache::default_location().map_err(LaunchError::KeyCache)?;
    let key = cache.load_or_create(uuid).map_err(LaunchError::KeyCache)?;
    note_key_origin(&key, observer);
    let started = Instant::now();
    observer.status(&format!("Deploying {uuid} through {}…", tier1.origin()));
    let tier1 = tier1
        .clone()
        .with_timeouts(deadline.cap(CONNECT_TIMEOUT), deadline.remaining());
    tracing::debug!(%uuid, tier1 = %tier1.origin(), "deploy requested");
    let deployment = tier1.deploy(uuid, &key.keys).map_err(LaunchError::Deploy)?;
    let name = deployment.name.as_deref().unwrap_or("the deployment");
    tracing::info!(
        %uuid,
        deployment = name,
        seconds = started.elapsed().as_secs_f64(),
        "deployed"
    );
    observer.status(&format!(
        "Deployed {name} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(Deployed {
        key,
        deployment,
        started,
    })
}

fn note_key_origin(key: &CachedKey, observer: &mut dyn Observer) {
    match &key.origin {
        KeyOrigin::Cached => observer.detail("Using the cached key for this VM"),
        KeyOrigin::Created => observer.detail("Created a key for this VM"),
        KeyOrigin::Replaced { reason } => observer.status(&format!(
            "The cached key was unusable ({reason}); using a new one"
        )),
    }
}

impl Deployed {
    /// The tunnel settings from the deployment: our first IPv4 address, its
    /// IPv4 name servers and its search domains.
    pub fn tunnel_config(&self) -> Result<TunnelConfig, LaunchError> {
        let settings = &self.deployment.tunnel;
        let address = settings
            .addresses
            .iter()
            .find_map(|net| match net.addr {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            })
            .ok_or(LaunchError::NoTunnelAddress)?;
        let dns_servers: Vec<Ipv4Addr> = settings
            .dns_servers
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(ip) => Some(*ip),
                IpAddr::V6(_) => None,
            })
            .collect();
        let endpoint = settings.endpoint.resolve().map_err(LaunchError::Endpoint)?;
        Ok(TunnelConfig {
            private_key: self.key.keys.secret().to_bytes(),
            peer_public_key: settings.peer_public_key,
            endpoint,
            address,
            dns_servers,
            search_domains: settings.search_domains.clone(),
            keepalive: Some(PERSISTENT_KEEPALIVE),
            mtu: tunnel::DEFAULT_MTU,
        })
    }
}
