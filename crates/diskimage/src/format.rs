//! The qcow2 on-disk format: constants and the header, shared by the reader
//! and the writer. Reference: `docs/interop/qcow2.txt` in QEMU.

use crate::{Error, Result};

/// `QFI\xfb`.
pub(crate) const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Header fields up to and including `header_length` (version 3).
pub(crate) const V3_HEADER_BASE: usize = 104;
/// Header length we write: the base plus the compression type byte, padded.
pub(crate) const V3_HEADER_LENGTH: u32 = 112;
/// Version 2 headers end here.
pub(crate) const V2_HEADER_LENGTH: usize = 72;

/// L1/L2 entry: the cluster is used by exactly one reference.
pub(crate) const OFLAG_COPIED: u64 = 1 << 63;
/// L2 entry: the cluster is compressed.
pub(crate) const OFLAG_COMPRESSED: u64 = 1 << 62;
/// L2 entry (v3): the cluster reads as zeros.
pub(crate) const OFLAG_ZERO: u64 = 1;
/// Bits 9–55 of a standard L1/L2 entry hold a host offset.
pub(crate) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

/// Incompatible feature: the image was not closed cleanly (refcounts may be
/// stale; reading is still fine).
pub(crate) const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature: QEMU found the image corrupt.
pub(crate) const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature: guest data lives in another file.
pub(crate) const INCOMPAT_EXTERNAL_DATA: u64 = 1 << 2;
/// Incompatible feature: `compression_type` is meaningful.
pub(crate) const INCOMPAT_COMPRESSION_TYPE: u64 = 1 << 3;
/// Incompatible feature: L2 entries carry subcluster bitmaps.
pub(crate) const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;

/// Header extension naming an external data file.
pub(crate) const EXT_EXTERNAL_DATA_FILE: u32 = 0x4441_5441;
/// Header extension carrying full-disk-encryption parameters.
pub(crate) const EXT_CRYPTO: u32 = 0x0537_be77;

/// Compressed clusters: deflate (type 0) or zstd (type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompressionType {
    Deflate,
    Zstd,
}

/// The fields of a qcow2 header that this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub incompatible_features: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    pub compression_type: CompressionType,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

impl Header {
    /// Parses the header from the first bytes of an image (at least 112
    /// bytes, zero padded when the image is shorter).
    pub fn parse(bytes: &[u8; 112]) -> Result<Header> {
        if bytes[..4] != MAGIC {
            return Err(Error::Invalid("not a qcow2 image (bad magic)".into()));
        }
        let version = be_u32(bytes, 4);
        if version != 2 && version != 3 {
            return Err(Error::Unsupported(format!("qcow2 version {version}")));
        }
        let (incompatible_features, refcount_order, header_length) = if version == 3 {
            (be_u64(bytes, 72), be_u32(bytes, 96), be_u32(bytes, 100))
        } else {
            (0, 4, V2_HEADER_LENGTH as u32)
        };
        let compression_type = if header_length as usize > V3_HEADER_BASE {
            match bytes[104] {
                0 => CompressionType::Deflate,
                1 => CompressionType::Zstd,
                other => {
                    return Err(Error::Unsupported(format!("compression type {other}")));
                }
            }
        } else {
            CompressionType::Deflate
        };
        Ok(Header {
            version,
            backing_file_offset: be_u64(bytes, 8),
            cluster_bits: be_u32(bytes, 20),
            size: be_u64(bytes, 24),
            crypt_method: be_u32(bytes, 32),
            l1_size: be_u32(bytes, 36),
            l1_table_offset: be_u64(bytes, 40),
            refcount_table_offset: be_u64(bytes, 48),
            refcount_table_clusters: be_u32(bytes, 56),
            incompatible_features,
            refcount_order,
            header_length,
            compression_type,
        })
    }

    /// Serialises a version 3 header (112 bytes, no extensions).
    pub fn to_bytes(&self) -> [u8; 112] {
        let mut out = [0u8; 112];
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.version.to_be_bytes());
        out[8..16].copy_from_slice(&self.backing_file_offset.to_be_bytes());
        out[20..24].copy_from_slice(&self.cluster_bits.to_be_bytes());
        out[24..32].copy_from_slice(&self.size.to_be_bytes());
        out[32..36].copy_from_slice(&self.crypt_method.to_be_bytes());
        out[36..40].copy_from_slice(&self.l1_size.to_be_bytes());
        out[40..48].copy_from_slice(&self.l1_table_offset.to_be_bytes());
        out[48..56].copy_from_slice(&self.refcount_table_offset.to_be_bytes());
        out[56..60].copy_from_slice(&self.refcount_table_clusters.to_be_bytes());
        out[72..80].copy_from_slice(&self.incompatible_features.to_be_bytes());
        out[96..100].copy_from_slice(&self.refcount_order.to_be_bytes());
        out[100..104].copy_from_slice(&self.header_length.to_be_bytes());
        out[104] = match self.compression_type {
            CompressionType::Deflate => 0,
            CompressionType::Zstd => 1,
        };
        out
    }
}

/// Entries of 8 bytes in one L2 table of `cluster_bits`.
pub(crate) fn l2_entries(cluster_bits: u32) -> u64 {
    1 << (cluster_bits - 3)
}

/// Where the sector count of a compressed L2 entry starts.
pub(crate) fn csize_shift(cluster_bits: u32) -> u32 {
    62 - (cluster_bits - 8)
}

/// Mask of the sector count of a compressed L2 entry (after shifting).
pub(crate) fn csize_mask(cluster_bits: u32) -> u64 {
    (1 << (cluster_bits - 8)) - 1
}

/// Decodes a big-endian table of 64-bit entries.
pub(crate) fn decode_table(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|entry| be_u64(entry, 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let header = Header {
            version: 3,
            backing_file_offset: 0,
            cluster_bits: 16,
            size: 3 << 30,
            crypt_method: 0,
            l1_size: 6,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x40000,
            refcount_table_clusters: 1,
            incompatible_features: INCOMPAT_COMPRESSION_TYPE,
            refcount_order: 4,
            header_length: V3_HEADER_LENGTH,
            compression_type: CompressionType::Zstd,
        };
        assert_eq!(Header::parse(&header.to_bytes()).ok(), Some(header));
    }

    #[test]
    fn compressed_entry_layout_matches_the_spec() {
        // 64 KiB clusters: offset in bits 0–53, sector count in bits 54–61.
        assert_eq!(csize_shift(16), 54);
        assert_eq!(csize_mask(16), 0xff);
        assert_eq!(l2_entries(16), 8192);
    }
}
