//! Who asks for a deployment, as tier 1 sees it: the client's address
//! (`X-ClientIP`, else the connection's), its location (`X-Location:
//! lat,lon`, also `[lat, lon]`), and how many deployments it wants
//! (`?results=N`).
//!
//! Sinfonia ignores an `X-ClientIP` it cannot parse; we refuse it (400),
//! as a header that does not say what it should is a client bug worth
//! seeing.
//!
//! Placement believes `X-ClientIP` from anyone, as Sinfonia does: a client
//! that lies about its address only misplaces itself. The per-address
//! deploy limit must not, or a client could name a fresh address for each
//! request; it believes the header only from a trusted proxy
//! ([`limited_address`]).

use std::net::IpAddr;

use axum::http::HeaderMap;
use sinfonia::deploy::IpNet;

use crate::api::valid_location;
use crate::problems::{ApiError, echo};

/// The client's address, set by a proxy or a tier 1 in front.
pub const CLIENT_IP_HEADER: &str = "x-clientip";
/// The client's `lat,lon`.
pub const LOCATION_HEADER: &str = "x-location";
/// Most deployments one request may ask for (`?results=N`, clamped to
/// `1..=MAX_RESULTS` as Sinfonia clamps to its 3).
pub const MAX_RESULTS: usize = 8;

/// The address a deploy request counts against in the per-address limit:
/// its `X-ClientIP` when the connection comes from a trusted proxy (a tier
/// 1 that forwards deploys, a reverse proxy: `--trusted-proxy`), else the
/// connection's. Without this, every deploy a tier 1 forwards would share
/// the tier 1's one bucket.
pub fn limited_address(connection: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !trusted.iter().any(|proxy| proxy.contains(connection)) {
        return connection;
    }
    headers
        .get(CLIENT_IP_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(connection)
}

/// The client of a deploy request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientInfo {
    /// Its address, when known.
    pub address: Option<IpAddr>,
    /// `[latitude, longitude]`, when given.
    pub location: Option<[f64; 2]>,
}

impl ClientInfo {
    /// From the request's headers and its connection's address.
    pub fn from_request(
        headers: &HeaderMap,
        connection: Option<IpAddr>,
    ) -> Result<ClientInfo, ApiError> {
        let address = match header(headers, CLIENT_IP_HEADER)? {
            Some(text) => Some(text.trim().parse::<IpAddr>().map_err(|_| {
                ApiError::BadHeader(format!("X-ClientIP `{}` is not an IP address", echo(text)))
            })?),
            None => connection,
        };
        let location = header(headers, LOCATION_HEADER)?
            .map(|text| {
                parse_location(text).ok_or_else(|| {
                    ApiError::BadHeader(format!(
                        "X-Location `{}` is not `latitude,longitude`",
                        echo(text)
                    ))
                })
            })
            .transpose()?;
        Ok(ClientInfo { address, location })
    }

    /// `X-Location` as passed on to a tier 2.
    pub fn location_header(&self) -> Option<String> {
        self.location.map(|[lat, lon]| format!("{lat},{lon}"))
    }
}

/// A header's value as text; a repeated or non-ASCII one is refused.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadHeader(format!(
            "{name} is given more than once"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::BadHeader(format!("{name} is not ASCII text")))
}

/// `lat,lon` or `[lat, lon]`, on Earth.
pub fn parse_location(text: &str) -> Option<[f64; 2]> {
    if text.len() > 128 {
        return None;
    }
    let inner = text.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(inner);
    let (lat, lon) = inner.split_once(',')?;
    let lat: f64 = lat.trim().parse().ok()?;
    let lon: f64 = lon.trim().parse().ok()?;
    (lat.is_finite() && lon.is_finite() && valid_location(lat, lon)).then_some([lat, lon])
}

/// `?results=N` clamped to `1..=MAX_RESULTS`; 1 when absent.
pub fn results(query: Option<&str>) -> Result<usize, ApiError> {
    let Some(query) = query else { return Ok(1) };
    let mut wanted = 1;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == "results" {
            let n: i64 = value.parse().map_err(|_| {
                ApiError::BadHeader(format!("results `{}` is not a number", echo(&value)))
            })?;
            wanted = n.clamp(1, MAX_RESULTS as i64) as usize;
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn headers_and_results() {
        let mut headers = HeaderMap::new();
        let connection: IpAddr = "127.0.0.1".parse().unwrap();
        let plain = ClientInfo::from_request(&headers, Some(connection)).unwrap();
        assert_eq!(plain.address, Some(connection));
        headers.insert("X-ClientIP", HeaderValue::from_static("10.2.0.7"));
        headers.insert("X-Location", HeaderValue::from_static("40.44,-79.94"));
        let told = ClientInfo::from_request(&headers, Some(connection)).unwrap();
        assert_eq!(told.address, Some("10.2.0.7".parse().unwrap()));
        assert_eq!(told.location, Some([40.44, -79.94]));
        assert_eq!(parse_location("[1.5, 2]"), Some([1.5, 2.0]));
        for bad in ["91,0", "0,181", "NaN,0", "1", "a,b", "inf,0"] {
            assert_eq!(parse_location(bad), None, "{bad}");
        }
        headers.insert("X-ClientIP", HeaderValue::from_static("10.2.0.999"));
        assert!(ClientInfo::from_request(&headers, None).is_err());
        assert_eq!(results(None).unwrap(), 1);
        assert_eq!(results(Some("results=3")).unwrap(), 3);
        assert_eq!(results(Some("results=100")).unwrap(), MAX_RESULTS);
        assert_eq!(results(Some("results=0")).unwrap(), 1);
        assert!(results(Some("results=x")).is_err());
    }

    #[test]
    fn the_limit_believes_x_clientip_only_from_trusted_proxies() {
        let tier1: IpAddr = "10.9.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("X-ClientIP", HeaderValue::from_static("192.0.2.7"));
        let trusted: Vec<IpNet> = vec!["10.9.0.0/24".parse().unwrap()];
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(limited_address(tier1, &headers, &trusted), client);
        assert_eq!(limited_address(tier1, &headers, &[]), tier1);
        let stranger: IpAddr = "10.8.0.1".parse().unwrap();
        assert_eq!(limited_address(stranger, &headers, &trusted), stranger);
        headers.insert("X-ClientIP", HeaderValue::from_static("not an address"));
        assert_eq!(limited_address(tier1, &headers, &trusted), tier1);
        assert_eq!(limited_address(tier1, &HeaderMap::new(), &trusted), tier1);
    }
}
