//! Where a client is, from its address: a MaxMind DB of cities
//! (`--geoip-db`, GeoLite2 City or any database of that shape), as
//! Sinfonia's tier 1 locates a client that sent no `X-Location`.
//!
//! The file is read once, at start, into memory (GeoLite2 City is some
//! 60 MB; no memory map, as the workspace forbids `unsafe`). A lookup
//! reads `location.latitude` / `location.longitude` of the client's
//! network; an address the database does not know (a private one, for a
//! real GeoLite2) has no location, and placement goes on without one.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Reader, geoip2};

use crate::api::valid_location;
use crate::federation::client::ClientInfo;

/// The largest database read: GeoIP2 City, the largest MaxMind sells, is
/// well under this.
pub const MAX_GEOIP_DB: u64 = 1024 * 1024 * 1024;

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    /// The file cannot be opened or read.
    #[error("cannot read the GeoIP database {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path names a directory, a device or a pipe, or a file beyond
    /// [`MAX_GEOIP_DB`].
    #[error("the GeoIP database {} is not a regular file of at most {MAX_GEOIP_DB} bytes", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is not a MaxMind DB.
    #[error("the GeoIP database {} is not a MaxMind DB (.mmdb) file: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        source: maxminddb::MaxMindDbError,
    },
}

/// An open city database.
pub struct GeoIpDb {
    path: PathBuf,
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIpDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIpDb")
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoIpDb {
    /// Reads and checks the database at `path`.
    pub fn open(path: &Path) -> Result<GeoIpDb, GeoIpError> {
        let bytes = read_bounded(path)?;
        let reader = Reader::from_source(bytes).map_err(|source| GeoIpError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        tracing::debug!(path = %path.display(),
            database_type = %reader.metadata().database_type, "GeoIP database open");
        Ok(GeoIpDb {
            path: path.to_owned(),
            reader,
        })
    }

    /// `[latitude, longitude]` of `address`'s city, when the database
    /// knows it (and it is on Earth).
    pub fn locate(&self, address: IpAddr) -> Option<[f64; 2]> {
        // A dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d, which
        // the database files under IPv4.
        let address = address.to_canonical();
        let city = match self
            .reader
            .lookup(address)
            .and_then(|found| found.decode::<geoip2::City<'_>>())
        {
            Ok(city) => city,
            Err(error) => {
                tracing::debug!(%address, %error, "GeoIP lookup failed");
                return None;
            }
        };
        let name = city.as_ref().and_then(|city| city.city.names.english);
        let location = city.as_ref().and_then(|city| {
            let (lat, lon) = (city.location.latitude?, city.location.longitude?);
            valid_location(lat, lon).then_some([lat, lon])
        });
        tracing::debug!(%address, city = name, ?location, "GeoIP lookup");
        location
    }

    /// `client`, located by its address when it gave no `X-Location` (a
    /// given one always wins).
    pub fn locate_client(&self, client: &ClientInfo) -> ClientInfo {
        let mut located = *client;
        if located.location.is_none() {
            located.location = client.address.and_then(|address| self.locate(address));
        }
        located
    }
}

/// The file's bytes, refused when it is not a regular file (a FIFO would
/// block the start forever) or beyond [`MAX_GEOIP_DB`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, GeoIpError> {
    let read_error = |source| GeoIpError::Read {
        path: path.to_owned(),
        source,
    };
    let not_a_file = || GeoIpError::NotAFile {
        path: path.to_owned(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() || metadata.len() > MAX_GEOIP_DB {
        return Err(not_a_file());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_GEOIP_DB + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_GEOIP_DB {
        return Err(not_a_file());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use testkit::geoip::{LISBON, PITTSBURGH, write_two_cities};

    fn client(address: &str, location: Option<[f64; 2]>) -> ClientInfo {
        ClientInfo {
            address: Some(address.parse().unwrap()),
            location,
        }
    }

    #[test]
    fn cities_are_found_by_address_and_x_location_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GeoLite2-City.mmdb");
        write_two_cities(&path);
        let db = GeoIpDb::open(&path).unwrap();
        assert_eq!(db.locate("10.231.1.77".parse().unwrap()), Some(PITTSBURGH));
        assert_eq!(db.locate("10.231.2.5".parse().unwrap()), Some(LISBON));
        assert_eq!(
            db.locate("::ffff:10.231.2.5".parse().unwrap()),
            Some(LISBON)
        );
        assert_eq!(db.locate("10.231.3.1".parse().unwrap()), None);
        assert_eq!(db.locate("2001:db8::1".parse().unwrap()), None);
        let found = db.locate_client(&client("10.231.2.5", None));
        assert_eq!(found.location, Some(LISBON));
        let told = db.locate_client(&client("10.231.2.5", Some([1.0, 2.0])));
        assert_eq!(told.location, Some([1.0, 2.0]));
        let nowhere = ClientInfo {
            address: None,
            location: None,
        };
        assert_eq!(db.locate_client(&nowhere), nowhere);
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.mmdb");
        let error = GeoIpDb::open(&missing).unwrap_err().to_string();
        assert!(error.contains("missing.mmdb"), "{error}");
        let garbage = dir.path().join("garbage.mmdb");
        std::fs::write(&garbage, b"not a MaxMind database").unwrap();
        let error = GeoIpDb::open(&garbage).unwrap_err();
        assert!(matches!(error, GeoIpError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("garbage.mmdb"), "{error}");
        let error = GeoIpDb::open(dir.path()).unwrap_err();
        assert!(matches!(error, GeoIpError::NotAFile { .. }), "{error}");
    }
}
