//! Helpers shared by this crate's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use diskimage::{
    Compression, ConvertOptions, ConvertStats, DiskReader, FileRange, InputFormat, Source,
};

/// Converts `input` with this crate into `output`.
pub fn convert(
    input: &Path,
    format: Option<InputFormat>,
    output: &Path,
    compression: Compression,
    threads: usize,
) -> diskimage::Result<ConvertStats> {
    let source = Source::RandomAccess(Box::new(FileRange::open(input).unwrap()));
    let reader = DiskReader::open(source, format)?;
    let out = std::fs::File::create(output).unwrap();
    let options = ConvertOptions {
        compression,
        threads,
        ..ConvertOptions::default()
    };
    let (_, stats) = diskimage::convert(reader, out, &options, &mut |_| {})?;
    Ok(stats)
}
