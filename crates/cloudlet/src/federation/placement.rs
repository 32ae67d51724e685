//! Which cloudlets a client should get, best first.
//!
//! Sinfonia's tier-1 matchers in order, then load:
//!
//! 1. **network**: a cloudlet whose `rejected_clients` holds the client's
//!    address is out; one with `accepted_clients` that do not hold it is
//!    out (an empty list accepts everyone); one whose `local_networks`
//!    hold it comes first;
//! 2. **location**: with `X-Location`, the cloudlets that gave locations,
//!    nearest first (great-circle distance to the closest of them);
//! 3. **load**: the rest, most free VM slots first (`vm_slots_free`, else
//!    `max_vms - vms`), else lowest `cpu_ratio` (else `load`). Sinfonia
//!    shuffles these; the least loaded spreads deployments as well and
//!    keeps tests deterministic. Ties keep the given order (our own
//!    cloudlet, listed first, wins a tie: it is served without HTTP).
//!
//! Within the network group, cloudlets are ordered by load too.

use std::cmp::Ordering;
use std::net::IpAddr;

use sinfonia::deploy::IpNet;

use crate::api::CloudletInfo;
use crate::federation::client::ClientInfo;
use crate::federation::report::networks;

/// Mean Earth radius, for distances.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// What placement knows of a cloudlet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Clients it considers close.
    pub local_networks: Vec<IpNet>,
    /// Clients it accepts (all when empty).
    pub accepted_clients: Vec<IpNet>,
    /// Clients it refuses.
    pub rejected_clients: Vec<IpNet>,
    /// Where it is, `[latitude, longitude]`.
    pub locations: Vec<[f64; 2]>,
    /// Free VM slots, when reported.
    pub free_slots: Option<f64>,
    /// Busy fraction of its CPUs, when reported.
    pub cpu_ratio: Option<f64>,
}

impl Profile {
    /// The profile of a report (or of our own cloudlet's entry).
    pub fn of(info: &CloudletInfo) -> Profile {
        let resource = |name: &str| info.resources.get(name).copied().filter(|v| v.is_finite());
        let free_slots = resource("vm_slots_free").or_else(|| {
            let (max, used) = (resource("max_vms")?, resource("vms")?);
            Some(max - used)
        });
        Profile {
            local_networks: networks(&info.local_networks),
            accepted_clients: networks(&info.accepted_clients),
            rejected_clients: networks(&info.rejected_clients),
            locations: info.locations.clone(),
            free_slots,
            cpu_ratio: resource("cpu_ratio").or_else(|| resource("load")),
        }
    }
}

/// Why a cloudlet was ranked where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Matcher {
    /// The client is on one of its local networks.
    Network,
    /// It is near the client's `X-Location`.
    Location,
    /// It has the most room.
    Load,
}

impl Matcher {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Matcher::Network => "network",
            Matcher::Location => "location",
            Matcher::Load => "load",
        }
    }
}

/// The indexes of `profiles` the client may use, best first, each with
/// the matcher that placed it.
pub fn rank(client: &ClientInfo, profiles: &[&Profile]) -> Vec<(usize, Matcher)> {
    let mut ranked: Vec<(usize, Matcher, f64)> = profiles
        .iter()
        .enumerate()
        .filter(|(_, profile)| admits(profile, client.address))
        .map(|(index, profile)| {
            let local = client
                .address
                .is_some_and(|address| profile.local_networks.iter().any(|n| n.contains(address)));
            let distance = client
                .location
                .and_then(|at| nearest_km(&profile.locations, at));
            match (local, distance) {
                (true, _) => (index, Matcher::Network, 0.0),
                (false, Some(km)) => (index, Matcher::Location, km),
                (false, None) => (index, Matcher::Load, 0.0),
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        a.1.cmp(&b.1)
            .then_with(|| a.2.total_cmp(&b.2))
            .then_with(|| by_load(profiles[a.0], profiles[b.0]))
    });
    ranked
        .into_iter()
        .map(|(i, matcher, _)| (i, matcher))
        .collect()
}

/// Whether a cloudlet takes this client: not rejected, and accepted when
/// it names whom it accepts.
fn admits(profile: &Profile, address: Option<IpAddr>) -> bool {
    let Some(address) = address else { return true };
    let rejected = profile.rejected_clients.iter().any(|n| n.contains(address));
    let accepted = profile.accepted_clients.is_empty()
        || profile.accepted_clients.iter().any(|n| n.contains(address));
    !rejected && accepted
}

/// More free slots first; then lower CPU ratio; unknown figures last.
fn by_load(a: &Profile, b: &Profile) -> Ordering {
    // Known figures before unknown ones, whichever the direction.
    let known_first = |x: Option<f64>, y: Option<f64>, order: fn(f64, f64) -> Ordering| match (x, y)
    {
        (Some(x), Some(y)) => order(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    known_first(a.free_slots, b.free_slots, |x, y| y.total_cmp(&x))
        .then_with(|| known_first(a.cpu_ratio, b.cpu_ratio, |x, y| x.total_cmp(&y)))
}

/// The great-circle distance in km from `at` to the nearest of `locations`.
fn nearest_km(locations: &[[f64; 2]], at: [f64; 2]) -> Option<f64> {
    locations
        .iter()
        .map(|&place| great_circle_km(place, at))
        .min_by(f64::total_cmp)
}

/// Haversine distance between two `[latitude, longitude]` in degrees.
pub fn great_circle_km([lat1, lon1]: [f64; 2], [lat2, lon2]: [f64; 2]) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let h = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use testkit::geoip::{LISBON, PITTSBURGH};

    fn profile(local: &[&str], locations: &[[f64; 2]], free: f64) -> Profile {
        Profile {
            local_networks: local.iter().map(|n| n.parse().unwrap()).collect(),
            locations: locations.to_vec(),
            free_slots: Some(free),
            ..Profile::default()
        }
    }

    fn client(address: &str, location: Option<[f64; 2]>) -> ClientInfo {
        ClientInfo {
            address: Some(address.parse().unwrap()),
            location,
        }
    }

    #[test]
    fn network_then_location_then_load() {
        let a = profile(&["10.1.0.0/16"], &[PITTSBURGH], 1.0);
        let b = profile(&["10.2.0.0/16"], &[LISBON], 2.0);
        let c = profile(&[], &[], 3.0);
        let all = [&a, &b, &c];
        let on_b = rank(&client("10.2.3.4", None), &all);
        assert_eq!(
            on_b,
            [
                (1, Matcher::Network),
                (2, Matcher::Load),
                (0, Matcher::Load)
            ]
        );
        let near_a = rank(&client("192.0.2.1", Some([40.0, -80.0])), &all);
        assert_eq!(near_a[0], (0, Matcher::Location));
        assert_eq!(near_a[1], (1, Matcher::Location));
        assert_eq!(near_a[2], (2, Matcher::Load));
    }

    #[test]
    fn rejected_and_not_accepted_clients_are_left_out() {
        let mut a = profile(&["10.1.0.0/16"], &[], 1.0);
        a.rejected_clients = vec!["10.1.2.0/24".parse().unwrap()];
        let mut b = profile(&[], &[], 1.0);
        b.accepted_clients = vec!["192.168.0.0/16".parse().unwrap()];
        assert!(rank(&client("10.1.2.3", None), &[&a, &b]).is_empty());
        assert_eq!(rank(&client("192.168.1.1", None), &[&a, &b]).len(), 2);
    }

    #[test]
    fn distances() {
        let km = great_circle_km(PITTSBURGH, LISBON);
        assert!((5850.0..5950.0).contains(&km), "{km}");
    }
}
