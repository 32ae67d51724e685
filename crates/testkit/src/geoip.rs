//! A tiny GeoLite2-City-shaped MaxMind DB, written by MaxMind's own Perl
//! writer (`MaxMind::DB::Writer`, Debian's `libmaxmind-db-writer-perl`):
//! each network maps to `city.names.en` and `location.latitude` /
//! `location.longitude`, the fields GeoLite2 City has and tier 1 reads.

use std::path::Path;

/// The writer. Reserved networks are kept (the tests use private ones, which
/// the writer drops by default); the database is an IPv6 tree with IPv4
/// mapped in, as GeoLite2's are.
const WRITER: &str = r#"
use strict; use warnings;
use MaxMind::DB::Writer::Tree;
my $out = shift @ARGV;
my %types = (city => 'map', names => 'map', en => 'utf8_string',
  location => 'map', latitude => 'double', longitude => 'double');
my $tree = MaxMind::DB::Writer::Tree->new(
  ip_version => 6, record_size => 24, database_type => 'GeoLite2-City',
  languages => ['en'], description => { en => 'olive2022 test cities' },
  map_key_type_callback => sub { $types{ $_[0] } },
  remove_reserved_networks => 0);
while (my ($network, $city, $lat, $lon) = splice(@ARGV, 0, 4)) {
  $tree->insert_network($network, { city => { names => { en => $city } },
    location => { latitude => $lat + 0, longitude => $lon + 0 } });
}
open my $fh, '>:raw', $out or die "$out: $!";
$tree->write_tree($fh);
close $fh or die "$out: $!";
"#;

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
/// (naming the Debian package) when the writer is missing or fails.
pub fn write_city_database(path: &Path, cities: &[City<'_>]) {
    let path = path.to_str().unwrap();
    let mut args = vec!["-e".to_owned(), WRITER.to_owned(), path.to_owned()];
    for city in cities {
        args.push(city.network.to_owned());
        args.push(city.name.to_owned());
        args.extend(city.location.map(|degrees| degrees.to_string()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = std::process::Command::new("perl")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the MaxMind DB writer failed (install libmaxmind-db-writer-perl, see \
         scripts/setup.sh): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
