//! What a deploy request asks for, checked before anything starts.
//!
//! - [`parse_backend_uuid`] and [`parse_application_key`]: the two path
//!   parameters (the UUID may be the alias `helloworld`; the key is
//!   URL-safe or standard base64, with or without padding, of 32 bytes);
//! - [`VmSettings`]: the recipe's `values` read as the `vmi` chart's
//!   [`VmiValues`], with memory and vCPUs parsed and checked against
//!   [`vmnetx::limits`] (the VM runner's bounds), so a recipe the runner
//!   would refuse is refused before its image is pulled;
//! - [`DeploymentSpec`]: everything a [`crate::Backend`] needs to start one
//!   deployment.

use std::net::Ipv4Addr;

use sinfonia::Recipe;
use sinfonia::keys::{KeyFormatError, decode_key};
use sinfonia::vmi::VmiValues;
use uuid::Uuid;
use vmnetx::limits::{
    MAX_MEMORY_BYTES, MAX_VCPUS, MIN_MEMORY_BYTES, MIN_VCPUS, VmSize, check_vcpus,
};

/// The UUID alias Sinfonia accepts for the nil UUID.
pub const HELLOWORLD: &str = "helloworld";

/// The backend UUID of a request path: a UUID in any form the `uuid` crate
/// parses (hyphenated, simple, braced, URN), or `helloworld`.
pub fn parse_backend_uuid(text: &str) -> Result<Uuid, uuid::Error> {
    if text == HELLOWORLD {
        return Ok(Uuid::nil());
    }
    Uuid::parse_str(text)
}

/// The client's WireGuard public key of a request path: URL-safe or
/// standard base64, with or without padding (or 64 hex digits), 32 bytes.
pub fn parse_application_key(text: &str) -> Result<[u8; 32], KeyFormatError> {
    decode_key(text)
}

/// Recipe values the embedded cloudlet cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// `values` is not of the `vmi` chart.
    #[error("its values are not those of the vmi chart: {0}")]
    NotVmi(String),
    /// The memory request does not parse.
    #[error("values.resources.requests.memory `{value}`: {reason}")]
    Memory {
        /// The request as written (shortened).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Too few or too many vCPUs for [`vmnetx::limits`].
    #[error("values.resources.requests.cpu {0} is out of range ({MIN_VCPUS}–{MAX_VCPUS})")]
    Cpus(u32),
    /// An empty image reference.
    #[error("values.containerDisk.{0} is empty")]
    Image(&'static str),
}

/// A recipe's `values`, checked for the embedded cloudlet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSettings {
    /// The chart values, as written.
    pub values: VmiValues,
    /// `resources.requests.memory` in bytes.
    pub memory_bytes: u64,
    /// `resources.requests.cpu`.
    pub cpus: u32,
}

impl VmSettings {
    /// Reads and checks the values of a recipe.
    pub fn from_recipe(recipe: &Recipe) -> Result<VmSettings, ValuesError> {
        let values = VmiValues::from_values(&recipe.values)
            .map_err(|e| ValuesError::NotVmi(e.to_string()))?;
        let requests = &values.resources.requests;
        let memory_bytes =
            parse_memory(&requests.memory).map_err(|reason| ValuesError::Memory {
                value: requests.memory.chars().take(40).collect(),
                reason,
            })?;
        let cpus = check_vcpus(requests.cpu).map_err(|_| ValuesError::Cpus(requests.cpu))?;
        // The bus is a `KubevirtBus`: an unknown one failed to read above.
        let disk = &values.container_disk;
        if disk.repository.trim().is_empty() {
            return Err(ValuesError::Image("repository"));
        }
        if disk.name.trim().is_empty() {
            return Err(ValuesError::Image("name"));
        }
        Ok(VmSettings {
            values,
            memory_bytes,
            cpus,
        })
    }

    /// Memory in MiB, rounded up.
    pub fn memory_mib(&self) -> u64 {
        self.memory_bytes.div_ceil(1 << 20)
    }

    /// The VM's size, for [`vmnetx::limits`].
    pub fn size(&self) -> VmSize {
        VmSize {
            vcpus: self.cpus,
            memory_bytes: self.memory_bytes,
        }
    }
}

/// A Kubernetes memory quantity in bytes: a decimal number (`256`, `1.5`,
/// `1e9`) and an optional suffix (`Ki Mi Gi Ti Pi Ei`, `k M G T P E`),
/// rounded up to a byte, within [`vmnetx::limits`].
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(number_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err("not a quantity (expected e.g. 256Mi)".into());
    }
    if frac_part.contains('.') || int_part.len() + frac_part.len() > 30 {
        return Err("not a quantity (expected e.g. 256Mi)".into());
    }
    // The number as mantissa / 10^scale.
    let digits = format!("{int_part}{frac_part}");
    let mantissa: u128 = digits
        .parse()
        .map_err(|_| "not a quantity (expected e.g. 256Mi)".to_owned())?;
    let mut scale = frac_part.len() as u32;
    let exponent = rest
        .strip_prefix(['e', 'E'])
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    let multiplier: u128 = if let Some(exponent) = exponent {
        let exponent: u32 = exponent
            .parse()
            .ok()
            .filter(|e| *e <= 30)
            .ok_or_else(|| "the exponent is too large".to_owned())?;
        10u128.pow(exponent)
    } else {
        match rest {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "Ei" => 1 << 60,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000,
            "m" => {
                scale += 3;
                1
            }
            other => {
                let other: String = other.chars().take(8).collect();
                return Err(format!(
                    "unknown unit `{other}` (use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P or E)"
                ));
            }
        }
    };
    let too_large = || format!("more than the {} GiB allowed", MAX_MEMORY_BYTES >> 30);
    let scaled = mantissa.checked_mul(multiplier).ok_or_else(too_large)?;
    let divisor = 10u128.pow(scale);
    let bytes = scaled.div_ceil(divisor);
    if bytes > u128::from(MAX_MEMORY_BYTES) {
        return Err(too_large());
    }
    let bytes = bytes as u64;
    if bytes < MIN_MEMORY_BYTES {
        return Err(format!(
            "less than the {} MiB needed",
            MIN_MEMORY_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Everything a backend needs to start one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    /// The backend UUID.
    pub uuid: Uuid,
    /// The deployment's name (two random words), unique on the cloudlet.
    pub name: String,
    /// The recipe's checked values.
    pub settings: VmSettings,
    /// The client's WireGuard public key.
    pub client_key: [u8; 32],
    /// The client's tunnel address (a /32 in 10.5.0.0/16).
    pub client_address: Ipv4Addr,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn memory_quantities() {
        for (text, bytes) in [
            ("256Mi", 256 << 20),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("512M", 512_000_000),
            ("1e9", 1_000_000_000),
            ("67108864", 64 << 20),
            ("1Ti", 1 << 40),
            (" 64Mi ", 64 << 20),
            ("16777216000m", 16 << 20),
        ] {
            assert_eq!(parse_memory(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "Mi",
            "256Zi",
            "-1Gi",
            "1.2.3Mi",
            "2Ti",
            "1Pi",
            "1Ei",
            "99999999999999999999Ei",
            "1e40",
            "1Ki",
            "0",
            "256 Mi",
            "1e",
            "0x10Mi",
            ".",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad:?} accepted");
        }
        assert!(
            parse_memory("256Zi")
                .unwrap_err()
                .contains("unknown unit `Zi`")
        );
        assert!(parse_memory("2Ti").unwrap_err().contains("1024 GiB"));
    }

    #[test]
    fn uuids_and_keys() {
        assert_eq!(parse_backend_uuid("helloworld").unwrap(), Uuid::nil());
        assert!(parse_backend_uuid("HelloWorld").is_err());
        assert!(parse_backend_uuid("../etc/passwd").is_err());
        assert_eq!(parse_application_key(&"A".repeat(43)).unwrap(), [0u8; 32]);
        assert!(parse_application_key("AAAA").is_err());
    }
}
