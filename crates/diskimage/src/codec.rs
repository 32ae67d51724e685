//! Compressing output clusters and inflating input clusters.

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use crate::format::CompressionType;

/// How output clusters are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate with QEMU's 4 KiB window, at a zlib level (1–9). Readable
    /// by every QEMU.
    Deflate {
        /// zlib level; 3 is within about 1 % of `qemu-img`'s size at twice
        /// its speed.
        level: u32,
    },
    /// One zstd frame per cluster (qcow2 `compression_type = 1`, QEMU ≥ 5.1).
    Zstd {
        /// zstd level (1–19).
        level: i32,
    },
}

impl Compression {
    /// The default deflate setting.
    pub const DEFLATE: Compression = Compression::Deflate { level: 3 };
    /// The default zstd setting.
    pub const ZSTD: Compression = Compression::Zstd { level: 3 };

    pub(crate) fn header_type(self) -> CompressionType {
        match self {
            Compression::Deflate { .. } => CompressionType::Deflate,
            Compression::Zstd { .. } => CompressionType::Zstd,
        }
    }
}

/// QEMU inflates with a 4 KiB window; a larger one would be unreadable.
const QEMU_WINDOW_BITS: u8 = 12;

/// A per-thread compressor that keeps its state between clusters.
pub(crate) enum Encoder {
    Deflate(Compress),
    Zstd(zstd::bulk::Compressor<'static>),
}

impl Encoder {
    pub fn new(compression: Compression) -> std::io::Result<Encoder> {
        Ok(match compression {
            Compression::Deflate { level } => Encoder::Deflate(Compress::new_with_window_bits(
                flate2::Compression::new(level.clamp(1, 9)),
                false,
                QEMU_WINDOW_BITS,
            )),
            Compression::Zstd { level } => {
                Encoder::Zstd(zstd::bulk::Compressor::new(level.clamp(1, 19))?)
            }
        })
    }

    /// Compresses `cluster` into `out` (cleared first). Returns `false` when
    /// the result would not be smaller than the cluster, which is then stored
    /// uncompressed, as QEMU does.
    pub fn compress(&mut self, cluster: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        match self {
            Encoder::Deflate(deflate) => {
                // Room for deflate's worst case (stored blocks): zlib-rs 0.6
                // panics when a stored block does not fit the output.
                out.reserve(cluster.len() + cluster.len() / 8 + 64);
                deflate.reset();
                let status = deflate.compress_vec(cluster, out, FlushCompress::Finish);
                matches!(status, Ok(Status::StreamEnd)) && out.len() < cluster.len()
            }
            Encoder::Zstd(zstd) => {
                // A destination one byte short of the cluster makes zstd fail
                // instead of producing an output that saves nothing.
                out.resize(cluster.len() - 1, 0);
                match zstd.compress_to_buffer(cluster, out.as_mut_slice()) {
                    Ok(written) => {
                        out.truncate(written);
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

/// Inflates one compressed input cluster into `out`, which it must fill
/// exactly. Trailing bytes after the compressed data (sector padding) are
/// ignored, as QEMU does.
pub(crate) fn decompress(
    kind: CompressionType,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    match kind {
        CompressionType::Deflate => inflate(input, out),
        CompressionType::Zstd => unzstd(input, out),
    }
}

fn inflate(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    // A 32 KiB window reads every raw deflate stream, including QEMU's 4 KiB.
    let mut inflater = Decompress::new_with_window_bits(false, 15);
    match inflater.decompress(input, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) | Ok(Status::Ok) | Ok(Status::BufError)
            if inflater.total_out() == out.len() as u64 =>
        {
            Ok(())
        }
        Ok(_) => Err(format!(
            "deflate data inflates to {} bytes instead of {}",
            inflater.total_out(),
            out.len()
        )),
        Err(error) => Err(format!("corrupt deflate data: {error}")),
    }
}

fn unzstd(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut decoder = zstd::stream::raw::Decoder::new().map_err(|e| e.to_string())?;
    let mut in_buf = zstd::stream::raw::InBuffer::around(input);
    let mut out_buf = zstd::stream::raw::OutBuffer::around(out);
    use zstd::stream::raw::Operation;
    while out_buf.pos() < out_buf.capacity() {
        let before = (in_buf.pos, out_buf.pos());
        decoder
            .run(&mut in_buf, &mut out_buf)
            .map_err(|e| format!("corrupt zstd data: {e}"))?;
        if (in_buf.pos, out_buf.pos()) == before {
            break;
        }
    }
    if out_buf.pos() == out_buf.capacity() {
        Ok(())
    } else {
        Err(format!(
            "zstd data decompresses to {} bytes instead of {}",
            out_buf.pos(),
            out_buf.capacity()
        ))
    }
}

/// Whether every byte is zero. Written so that it vectorises.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    let (words, tail) = bytes.as_chunks::<16>();
    words.iter().all(|word| u128::from_ne_bytes(*word) == 0) && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample_cluster() -> Vec<u8> {
        (0..65536u32).map(|i| (i / 300 % 7) as u8).collect()
    }

    #[test]
    fn deflate_round_trips_through_a_4k_window() {
        let cluster = sample_cluster();
        let mut encoder = Encoder::new(Compression::DEFLATE).unwrap();
        let mut packed = Vec::new();
        assert!(encoder.compress(&cluster, &mut packed));
        // QEMU's own inflater uses windowBits -12: check with exactly that.
        let mut qemu_like = Decompress::new_with_window_bits(false, 12);
        let mut out = vec![0; cluster.len()];
        qemu_like
            .decompress(&packed, &mut out, FlushDecompress::Finish)
            .unwrap();
        assert_eq!(out, cluster);
    }

    #[test]
    fn zstd_round_trips_with_trailing_padding() {
        let cluster = sample_cluster();
        let mut encoder = Encoder::new(Compression::ZSTD).unwrap();
        let mut packed = Vec::new();
        assert!(encoder.compress(&cluster, &mut packed));
        packed.extend_from_slice(&[0; 300]);
        let mut out = vec![0; cluster.len()];
        decompress(CompressionType::Zstd, &packed, &mut out).unwrap();
        assert_eq!(out, cluster);
    }

    #[test]
    fn incompressible_clusters_are_reported() {
        let noise = testkit::XorShift::new(0x9e37_79b9_7f4a_7c15).bytes(65536);
        for compression in [Compression::DEFLATE, Compression::ZSTD] {
            let mut encoder = Encoder::new(compression).unwrap();
            assert!(!encoder.compress(&noise, &mut Vec::new()));
        }
    }

    #[test]
    fn short_or_corrupt_input_is_an_error() {
        let mut out = vec![0; 65536];
        assert!(decompress(CompressionType::Deflate, b"\xff\xff\xff", &mut out).is_err());
        assert!(decompress(CompressionType::Zstd, b"garbage", &mut out).is_err());
        let mut encoder = Encoder::new(Compression::DEFLATE).unwrap();
        let mut packed = Vec::new();
        assert!(encoder.compress(&[0; 4096], &mut packed));
        assert!(decompress(CompressionType::Deflate, &packed, &mut out).is_err());
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0; 65536]));
        let mut almost = vec![0; 65536];
        almost[65535] = 1;
        assert!(!is_zero(&almost));
        almost[65535] = 0;
        almost[3] = 1;
        assert!(!is_zero(&almost));
    }
}
