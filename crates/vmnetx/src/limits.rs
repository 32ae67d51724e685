//! How many vCPUs and how much memory one VM may have, everywhere.
//!
//! A VM's size is read from a package's `domain.xml` (here), written into
//! its recipe by `convert`, read back by a cloudlet and finally handed to
//! the VM runner. Each step used to have its own bounds, so a package could
//! convert, and a recipe pass the cloudlet's checks and have its image
//! pulled, only for the VM runner to refuse it. There is now one set: what
//! the VM runner can actually run.
//!
//! - 1 to 64 vCPUs and at least 16 MiB: what the VM runner has always
//!   accepted (QEMU with SeaBIOS and a guest need a few MiB; no Olive VM
//!   has more than a handful of vCPUs);
//! - at most 1 TiB: the cloudlet's bound for recipes, far above any Olive
//!   VM, which keeps a hostile recipe or package from asking QEMU for an
//!   absurd reservation. The VM runner also refuses more than the host has.

use std::fmt;

/// The fewest vCPUs a VM may have.
pub const MIN_VCPUS: u32 = 1;
/// The most vCPUs a VM may have.
pub const MAX_VCPUS: u32 = 64;
/// The least memory a VM may have: 16 MiB.
pub const MIN_MEMORY_BYTES: u64 = 16 << 20;
/// The most memory a VM may have: 1 TiB.
pub const MAX_MEMORY_BYTES: u64 = 1 << 40;

/// A VM size outside the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Too few or too many vCPUs.
    #[error("{0} vCPUs is out of range ({MIN_VCPUS} to {MAX_VCPUS})")]
    Vcpus(u32),
    /// Too little or too much memory, in bytes (saturated when it did not
    /// even fit in 64 bits).
    #[error("{} of memory is out of range ({})", Bytes(*.0), MemoryRange)]
    Memory(u64),
}

/// What a VM asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSize {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

impl VmSize {
    /// Checks both against the limits, vCPUs first.
    pub fn check(&self) -> Result<(), LimitError> {
        check_vcpus(self.vcpus)?;
        check_memory_bytes(self.memory_bytes)?;
        Ok(())
    }
}

/// `vcpus` if it is within [`MIN_VCPUS`]..=[`MAX_VCPUS`].
pub fn check_vcpus(vcpus: u32) -> Result<u32, LimitError> {
    if (MIN_VCPUS..=MAX_VCPUS).contains(&vcpus) {
        Ok(vcpus)
    } else {
        Err(LimitError::Vcpus(vcpus))
    }
}

/// `bytes` if it is within [`MIN_MEMORY_BYTES`]..=[`MAX_MEMORY_BYTES`].
pub fn check_memory_bytes(bytes: u64) -> Result<u64, LimitError> {
    if (MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(LimitError::Memory(bytes))
    }
}

/// `mib` if that many MiB are within the memory limits.
pub fn check_memory_mib(mib: u64) -> Result<u64, LimitError> {
    let bytes = mib.saturating_mul(1 << 20);
    check_memory_bytes(bytes).map(|_| mib)
}

/// The memory limits for a message: `16 MiB to 1 TiB`.
#[derive(Debug, Clone, Copy)]
pub struct MemoryRange;

impl fmt::Display for MemoryRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to {}",
            Bytes(MIN_MEMORY_BYTES),
            Bytes(MAX_MEMORY_BYTES)
        )
    }
}

/// A byte count in the largest binary unit that divides it (`16 MiB`,
/// `1 TiB`, `1536 KiB`, `7 bytes`).
#[derive(Debug, Clone, Copy)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 5] = [
            ("EiB", 60),
            ("PiB", 50),
            ("TiB", 40),
            ("GiB", 30),
            ("MiB", 20),
        ];
        let bytes = self.0;
        for (unit, shift) in UNITS.into_iter().chain([("KiB", 10)]) {
            if bytes != 0 && bytes.trailing_zeros() >= shift {
                return write!(f, "{} {unit}", bytes >> shift);
            }
        }
        write!(f, "{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(check_vcpus(1), Ok(1));
        assert_eq!(check_vcpus(64), Ok(64));
        assert_eq!(check_vcpus(0), Err(LimitError::Vcpus(0)));
        assert_eq!(check_vcpus(65), Err(LimitError::Vcpus(65)));
        assert!(check_memory_bytes(16 << 20).is_ok());
        assert!(check_memory_bytes(1 << 40).is_ok());
        assert!(check_memory_bytes((16 << 20) - 1).is_err());
        assert!(check_memory_bytes((1 << 40) + 1).is_err());
        assert_eq!(check_memory_mib(16), Ok(16));
        assert_eq!(
            check_memory_mib(u64::MAX),
            Err(LimitError::Memory(u64::MAX))
        );
        let size = VmSize {
            vcpus: 65,
            memory_bytes: 0,
        };
        assert_eq!(size.check(), Err(LimitError::Vcpus(65)));
    }

    #[test]
    fn messages() {
        assert_eq!(
            LimitError::Vcpus(65).to_string(),
            "65 vCPUs is out of range (1 to 64)"
        );
        assert_eq!(
            LimitError::Memory(2 << 40).to_string(),
            "2 TiB of memory is out of range (16 MiB to 1 TiB)"
        );
        assert_eq!(Bytes(1536 << 10).to_string(), "1536 KiB");
        assert_eq!(Bytes(7).to_string(), "7 bytes");
        assert_eq!(Bytes(0).to_string(), "0 bytes");
    }
}
