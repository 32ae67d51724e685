//! A tiny GeoLite2-City-shaped MaxMind DB, written by the `mmdb-writer`
//! package from PyPI (the venv `scripts/setup.sh` makes): each network maps
//! to `city.names.en` and `location.latitude` / `location.longitude`, the
//! fields GeoLite2 City has and tier 1 reads.

use std::path::{Path, PathBuf};

/// The writer: an IPv6 tree with IPv4 networks under `::/96`, as
/// GeoLite2's are; coordinates as doubles, as MaxMind writes them.
const WRITER: &str = r#"
import sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
out, args = sys.argv[1], sys.argv[2:]
writer = MMDBWriter(ip_version=6, ipv4_compatible=True,
    database_type="GeoLite2-City", languages=["en"],
    description={"en": "olive2022 test cities"})
for i in range(0, len(args), 4):
    network, city, lat, lon = args[i:i + 4]
    writer.insert_network(IPSet([network]), {
        "city": {"names": {"en": city}},
        "location": {"latitude": float(lat), "longitude": float(lon)}})
writer.to_db_file(out)
"#;

/// The Python with `mmdb-writer`: `$OLIVE2022_MMDB_WRITER_PYTHON`, else the
/// venv of `scripts/setup.sh`.
fn writer_python() -> PathBuf {
    std::env::var_os("OLIVE2022_MMDB_WRITER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/mmdb-writer/bin/python3"))
}

/// Pittsburgh, `[latitude, longitude]`: one of the tests' two cities.
pub const PITTSBURGH: [f64; 2] = [40.44, -79.94];
/// Lisbon, the other city, about 5,900 km from Pittsburgh.
pub const LISBON: [f64; 2] = [38.72, -9.14];
/// The network [`write_two_cities`] places in Pittsburgh.
pub const PITTSBURGH_NETWORK: &str = "10.231.1.0/24";
/// The network [`write_two_cities`] places in Lisbon.
pub const LISBON_NETWORK: &str = "10.231.2.0/24";

/// Writes the tests' two-city database to `path`: [`PITTSBURGH_NETWORK`]
/// in Pittsburgh, [`LISBON_NETWORK`] in Lisbon, nothing else.
pub fn write_two_cities(path: &Path) {
    write_city_database(
        path,
        &[
            City {
                network: PITTSBURGH_NETWORK,
                name: "Pittsburgh",
                location: PITTSBURGH,
            },
            City {
                network: LISBON_NETWORK,
                name: "Lisbon",
                location: LISBON,
            },
        ],
    );
}

/// One network of the test database.
#[derive(Debug, Clone, Copy)]
pub struct City<'a> {
    /// CIDR, e.g. `10.231.2.0/24`.
    pub network: &'a str,
    /// `city.names.en`.
    pub name: &'a str,
    /// `[latitude, longitude]`.
    pub location: [f64; 2],
}

/// Writes a GeoLite2-City-shaped database of `cities` to `path`; panics
/// (saying how to install the writer) when it is missing or fails.
pub fn write_city_database(path: &Path, cities: &[City<'_>]) {
    let path = path.to_str().unwrap();
    let mut args = vec!["-c".to_owned(), WRITER.to_owned(), path.to_owned()];
    for city in cities {
        args.push(city.network.to_owned());
        args.push(city.name.to_owned());
        args.extend(city.location.map(|degrees| degrees.to_string()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let python = writer_python();
    let output = std::process::Command::new(&python)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): scripts/setup.sh installs mmdb-writer there \
                 (or set OLIVE2022_MMDB_WRITER_PYTHON)",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "the MaxMind DB writer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
