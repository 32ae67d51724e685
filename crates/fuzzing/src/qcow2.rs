//! qcow2 images: the header, the tables and every cluster they map.

use std::io::{self, Cursor};

use diskimage::{Compression, ConvertOptions, DiskReader, InputFormat, ReadAt, Source, convert};

/// The largest virtual size read: the reader's own limit is terabytes,
/// which a fuzzer would spend on zeros. 8 MiB still spans several L2
/// tables at the smallest cluster size.
const MAX_VIRTUAL_SIZE: u64 = 8 << 20;

/// The image, in memory.
struct Memory(Vec<u8>);

impl ReadAt for Memory {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let rest = self.0.get(start..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Opens `data` as a qcow2 image (declared so, as a package's `domain.xml`
/// may) of at most [`MAX_VIRTUAL_SIZE`] bytes, and converts it to a
/// compressed qcow2 image in memory with one worker: every table entry is
/// followed and every compressed cluster inflated.
pub fn qcow2(data: &[u8]) {
    let source = Source::RandomAccess(Box::new(Memory(data.to_vec())));
    let Ok(reader) =
        DiskReader::open_with_limit(source, Some(InputFormat::Qcow2), MAX_VIRTUAL_SIZE)
    else {
        return;
    };
    let options = ConvertOptions {
        compression: Compression::Deflate { level: 1 },
        threads: 1,
        cancel: None,
        cluster_bits: 16,
    };
    let _ = convert(reader, Cursor::new(Vec::new()), &options, &mut |_| {});
}
