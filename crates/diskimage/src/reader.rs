//! Raw and qcow2 input images, read front to back in chunks.
//!
//! Opening a qcow2 image validates everything that could make a later read
//! wander: backing files, external data files and encryption are refused
//! (a backing file name would make us read an arbitrary host file), unknown
//! incompatible features are refused, and every table must lie inside the
//! image. Guest data is only ever read from the input given; no path is
//! opened here.
//!
//! Reading produces chunks in guest order. Compressed input clusters are
//! handed over still compressed so that the worker threads, not the reader,
//! pay for inflating them.

use std::io::Read;

use crate::format::{self, CompressionType, Header};
use crate::source::{ReadAt, Source};
use crate::{Error, Result};

/// The format of an input image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A plain byte-for-byte disk.
    Raw,
    /// A QEMU qcow2 image (version 2 or 3).
    Qcow2,
}

impl std::fmt::Display for InputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputFormat::Raw => "raw",
            InputFormat::Qcow2 => "qcow2",
        })
    }
}

/// Smallest amount of guest data handed to a worker at once.
const MIN_CHUNK: usize = 1 << 20;
/// Largest L1 table QEMU accepts (32 MiB of entries).
const MAX_L1_ENTRIES: u64 = (32 << 20) / 8;
/// Largest virtual size accepted: far beyond any archived disk, far below
/// anything that overflows offset arithmetic.
pub const MAX_VIRTUAL_SIZE: u64 = 1 << 50;

/// The virtual size accepted unless the caller raises it: 2 TiB, more than
/// any archived disk, so that a few megabytes of package cannot keep a
/// converter busy for hours writing zeros.
pub const DEFAULT_MAX_VIRTUAL_SIZE: u64 = 2 << 40;

/// Refuses a disk of `virtual_size` bytes beyond `limit`, with a message
/// that says how to raise the limit.
pub fn check_virtual_size(virtual_size: u64, limit: u64) -> Result<()> {
    if virtual_size <= limit {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "the disk's virtual size, {:.1} GiB, is beyond the limit of {:.1} GiB \
         (raise it with --max-virtual-size if the disk is genuine)",
        gib(virtual_size),
        gib(limit)
    )))
}

/// The virtual size a qcow2 image declares in its first 32 bytes, or
/// `None` when `head` is not the start of a qcow2 image: lets a caller
/// bound work (spooling a compressed package member) before reading on.
pub fn qcow2_virtual_size(head: &[u8]) -> Option<u64> {
    if !head.starts_with(&format::MAGIC) {
        return None;
    }
    let size = head.get(24..32)?;
    Some(u64::from_be_bytes(size.try_into().ok()?))
}

/// A run of guest data, `len` bytes at `guest_offset`.
pub(crate) struct Chunk {
    pub guest_offset: u64,
    pub len: usize,
    pub data: ChunkData,
}

/// What a chunk holds.
pub(crate) enum ChunkData {
    /// Every byte is zero (unallocated or zero clusters).
    Zero,
    /// `buf` holds the guest bytes, except the compressed pieces that the
    /// worker still has to inflate into it.
    Bytes {
        buf: Vec<u8>,
        compressed: Vec<CompressedPiece>,
    },
}

/// A compressed input cluster to inflate into a chunk.
pub(crate) struct CompressedPiece {
    /// Where its data starts in the chunk.
    pub at: usize,
    /// How many of its bytes fall inside the chunk (the last cluster of an
    /// image can extend past the virtual size).
    pub take: usize,
    /// Its inflated size: one input cluster.
    pub cluster_size: usize,
    pub kind: CompressionType,
    pub data: Vec<u8>,
}

/// An open input image, read once from start to end.
pub struct DiskReader {
    format: InputFormat,
    virtual_size: u64,
    chunk_size: usize,
    next_offset: u64,
    inner: Inner,
}

enum Inner {
    Raw(Box<dyn ReadAt>),
    RawStream(Box<dyn Read + Send>),
    Qcow2(Box<Qcow2Input>),
}

impl std::fmt::Debug for DiskReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskReader")
            .field("format", &self.format)
            .field("virtual_size", &self.virtual_size)
            .finish_non_exhaustive()
    }
}

impl DiskReader {
    /// Opens an input. `format` is what the package declares; `None` means
    /// detect it from the qcow2 magic. A declared raw disk is read as raw
    /// even if its first bytes look like qcow2: they are then guest data.
    ///
    /// Disks larger than [`DEFAULT_MAX_VIRTUAL_SIZE`] are refused; see
    /// [`DiskReader::open_with_limit`].
    pub fn open(source: Source, format: Option<InputFormat>) -> Result<DiskReader> {
        DiskReader::open_with_limit(source, format, DEFAULT_MAX_VIRTUAL_SIZE)
    }

    /// [`DiskReader::open`], refusing disks whose virtual size is beyond
    /// `max_virtual_size` bytes (itself capped at [`MAX_VIRTUAL_SIZE`]).
    pub fn open_with_limit(
        source: Source,
        format: Option<InputFormat>,
        max_virtual_size: u64,
    ) -> Result<DiskReader> {
        let reader = DiskReader::open_unlimited(source, format)?;
        check_virtual_size(reader.virtual_size, max_virtual_size)?;
        Ok(reader)
    }

    fn open_unlimited(source: Source, format: Option<InputFormat>) -> Result<DiskReader> {
        match source {
            Source::RandomAccess(input) => {
                let format = match format {
                    Some(format) => format,
                    None => sniff(input.as_ref())?,
                };
                match format {
                    InputFormat::Raw => Ok(DiskReader {
                        format,
                        virtual_size: checked_size(input.size())?,
                        chunk_size: MIN_CHUNK,
                        next_offset: 0,
                        inner: Inner::Raw(input),
                    }),
                    InputFormat::Qcow2 => {
                        let qcow2 = Qcow2Input::open(input)?;
                        Ok(DiskReader {
                            format,
                            virtual_size: qcow2.header.size,
                            chunk_size: MIN_CHUNK.max(qcow2.cluster_size),
                            next_offset: 0,
                            inner: Inner::Qcow2(Box::new(qcow2)),
                        })
                    }
                }
            }
            Source::Stream { mut reader, len } => match format {
                Some(InputFormat::Raw) => {
                    if len == 0 {
                        // No chunk will be read: check the end now.
                        expect_end(reader.as_mut(), len)?;
                    }
                    Ok(DiskReader {
                        format: InputFormat::Raw,
                        virtual_size: checked_size(len)?,
                        chunk_size: MIN_CHUNK,
                        next_offset: 0,
                        inner: Inner::RawStream(reader),
                    })
                }
                _ => Err(Error::Unsupported(
                    "a qcow2 (or undeclared) disk needs random access; \
                     it cannot be read from a stream"
                        .into(),
                )),
            },
        }
    }

    /// The format being read.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The size of the disk as the guest sees it, in bytes.
    pub fn virtual_size(&self) -> u64 {
        self.virtual_size
    }

    /// The next chunk of guest data, or `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let guest_offset = self.next_offset;
        if guest_offset >= self.virtual_size {
            return Ok(None);
        }
        let remaining = self.virtual_size - guest_offset;
        let len = usize::try_from(remaining).map_or(self.chunk_size, |r| r.min(self.chunk_size));
        let last = guest_offset + len as u64 == self.virtual_size;
        let data = match &mut self.inner {
            Inner::Raw(input) => read_raw(input.as_ref(), guest_offset, len)?,
            Inner::RawStream(reader) => {
                let data = read_stream(reader.as_mut(), guest_offset, len)?;
                if last {
                    expect_end(reader.as_mut(), self.virtual_size)?;
                }
                data
            }
            Inner::Qcow2(qcow2) => qcow2.read_chunk(guest_offset, len)?,
        };
        self.next_offset += len as u64;
        Ok(Some(Chunk {
            guest_offset,
            len,
            data,
        }))
    }
}

fn checked_size(size: u64) -> Result<u64> {
    if size > MAX_VIRTUAL_SIZE {
        return Err(Error::Invalid(format!(
            "virtual size {size} bytes is beyond the supported {MAX_VIRTUAL_SIZE}"
        )));
    }
    Ok(size)
}

fn sniff(input: &dyn ReadAt) -> Result<InputFormat> {
    let mut magic = [0u8; 4];
    input
        .read_at_zero_filled(&mut magic, 0)
        .map_err(Error::io("reading the disk image"))?;
    Ok(if magic == format::MAGIC {
        InputFormat::Qcow2
    } else {
        InputFormat::Raw
    })
}

fn read_raw(input: &dyn ReadAt, offset: u64, len: usize) -> Result<ChunkData> {
    let mut buf = vec![0; len];
    input
        .read_at_zero_filled(&mut buf, offset)
        .map_err(Error::io(format!("reading the disk at offset {offset}")))?;
    Ok(ChunkData::Bytes {
        buf,
        compressed: Vec::new(),
    })
}

/// Reads past the last byte of a stream: the end is where the stream's own
/// checks run (a package member's size and CRC-32), and bytes beyond the
/// declared size are an error, never silently dropped.
fn expect_end(reader: &mut dyn Read, size: u64) -> Result<()> {
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(Error::Invalid(format!(
                    "the disk stream is longer than its declared {size} bytes"
                )));
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                return Err(Error::io("checking the end of the disk stream")(error));
            }
        }
    }
}

fn read_stream(reader: &mut dyn Read, offset: u64, len: usize) -> Result<ChunkData> {
    let mut buf = vec![0; len];
    reader.read_exact(&mut buf).map_err(Error::io(format!(
        "reading the disk stream at offset {offset}"
    )))?;
    Ok(ChunkData::Bytes {
        buf,
        compressed: Vec::new(),
    })
}

/// A validated qcow2 input.
struct Qcow2Input {
    input: Box<dyn ReadAt>,
    header: Header,
    cluster_size: usize,
    l1: Vec<u64>,
    /// The L2 table last loaded, by L1 index.
    l2_cache: Option<(usize, Vec<u64>)>,
    /// One bit per host cluster of the file: already read as guest data.
    /// A second reference is refused, as `qemu-img check` would: it is how
    /// a small hostile image expands into a huge disk.
    data_clusters: Vec<u64>,
    /// The host offsets of compressed clusters already read, likewise.
    compressed: std::collections::HashSet<u64>,
}

impl Qcow2Input {
    fn open(input: Box<dyn ReadAt>) -> Result<Qcow2Input> {
        let file_len = input.size();
        if file_len < format::V2_HEADER_LENGTH as u64 {
            return Err(Error::Invalid(format!(
                "qcow2 image truncated ({file_len} bytes)"
            )));
        }
        let mut raw_header = [0u8; 112];
        input
            .read_at_zero_filled(&mut raw_header, 0)
            .map_err(Error::io("reading the qcow2 header"))?;
        let header = Header::parse(&raw_header)?;
        validate_header(&header, file_len)?;
        let cluster_size = 1usize << header.cluster_bits;
        check_extensions(input.as_ref(), &header, cluster_size)?;
        let l1 = read_table(
            input.as_ref(),
            header.l1_table_offset,
            u64::from(header.l1_size) * 8,
            "L1 table",
        )?;
        let qcow2 = Qcow2Input {
            input,
            header,
            cluster_size,
            l1,
            l2_cache: None,
            data_clusters: vec![0; (file_len / cluster_size as u64 / 64 + 1) as usize],
            compressed: std::collections::HashSet::new(),
        };
        qcow2.validate_l1()?;
        Ok(qcow2)
    }

    fn validate_l1(&self) -> Result<()> {
        let file_len = self.input.size();
        let mut tables = std::collections::HashSet::new();
        for (index, &entry) in self.l1.iter().enumerate() {
            let offset = entry & format::OFFSET_MASK;
            if offset == 0 {
                continue;
            }
            if !tables.insert(offset) {
                return Err(Error::Invalid(format!(
                    "L1 entry {index} points at an L2 table ({offset:#x}) that another entry \
                     uses too"
                )));
            }
            if !offset.is_multiple_of(self.cluster_size as u64) {
                return Err(Error::Invalid(format!(
                    "L1 entry {index} points at an unaligned L2 table ({offset:#x})"
                )));
            }
            if offset.saturating_add(self.cluster_size as u64) > file_len {
                return Err(Error::Invalid(format!(
                    "L1 entry {index} points past the end of the image ({offset:#x})"
                )));
            }
        }
        Ok(())
    }

    fn read_chunk(&mut self, guest_offset: u64, len: usize) -> Result<ChunkData> {
        let mut buf: Option<Vec<u8>> = None;
        let mut compressed = Vec::new();
        let cluster_size = self.cluster_size;
        let mut at = 0;
        while at < len {
            let guest = guest_offset + at as u64;
            let take = cluster_size.min(len - at);
            let entry = self.l2_entry(guest)?;
            let cluster = self.classify(entry, guest)?;
            self.claim(&cluster, guest)?;
            match cluster {
                Cluster::Zero => {}
                Cluster::Data(host) => {
                    let buf = buf.get_or_insert_with(|| vec![0; len]);
                    self.input
                        .read_at_zero_filled(&mut buf[at..at + take], host)
                        .map_err(Error::io(format!("reading the qcow2 cluster at {host:#x}")))?;
                }
                Cluster::Compressed { host, size } => {
                    buf.get_or_insert_with(|| vec![0; len]);
                    let mut data = vec![0; size];
                    self.input
                        .read_at_zero_filled(&mut data, host)
                        .map_err(Error::io(format!("reading compressed data at {host:#x}")))?;
                    compressed.push(CompressedPiece {
                        at,
                        take,
                        cluster_size,
                        kind: self.header.compression_type,
                        data,
                    });
                }
            }
            at += take;
        }
        Ok(match buf {
            None => ChunkData::Zero,
            Some(buf) => ChunkData::Bytes { buf, compressed },
        })
    }

    /// Records that `cluster` is read for `guest`; a host cluster (or a
    /// compressed cluster's data) that another guest cluster already used
    /// is an error.
    fn claim(&mut self, cluster: &Cluster, guest: u64) -> Result<()> {
        let fresh = match *cluster {
            Cluster::Zero => true,
            Cluster::Data(host) => {
                let index = host >> self.header.cluster_bits;
                let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
                match self.data_clusters.get_mut(word) {
                    Some(bits) if *bits & bit == 0 => {
                        *bits |= bit;
                        true
                    }
                    _ => false,
                }
            }
            Cluster::Compressed { host, .. } => self.compressed.insert(host),
        };
        if fresh {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "the cluster of guest offset {guest} uses host data that another guest cluster \
             uses too: the image is corrupt (see qemu-img check)"
        )))
    }

    /// The L2 entry of the cluster holding `guest`, loading its table.
    fn l2_entry(&mut self, guest: u64) -> Result<u64> {
        let cluster_bits = self.header.cluster_bits;
        let cluster_index = guest >> cluster_bits;
        let entries = format::l2_entries(cluster_bits);
        let l1_index = usize::try_from(cluster_index / entries).unwrap_or(usize::MAX);
        let l2_index = (cluster_index % entries) as usize;
        let l2_offset = match self.l1.get(l1_index) {
            Some(entry) => entry & format::OFFSET_MASK,
            None => {
                return Err(Error::Invalid(format!(
                    "no L1 entry maps guest offset {guest}"
                )));
            }
        };
        if l2_offset == 0 {
            return Ok(0);
        }
        if self
            .l2_cache
            .as_ref()
            .is_none_or(|(index, _)| *index != l1_index)
        {
            let table = read_table(
                self.input.as_ref(),
                l2_offset,
                self.cluster_size as u64,
                "L2 table",
            )?;
            self.l2_cache = Some((l1_index, table));
        }
        Ok(self
            .l2_cache
            .as_ref()
            .and_then(|(_, table)| table.get(l2_index).copied())
            .unwrap_or(0))
    }

    fn classify(&self, entry: u64, guest: u64) -> Result<Cluster> {
        let file_len = self.input.size();
        if entry & format::OFLAG_COMPRESSED != 0 {
            let bits = self.header.cluster_bits;
            let shift = format::csize_shift(bits);
            let host = entry & ((1 << shift) - 1);
            let sectors = ((entry >> shift) & format::csize_mask(bits)) + 1;
            let size = sectors * 512 - (host & 511);
            if host >= file_len {
                return Err(Error::Invalid(format!(
                    "compressed cluster of guest offset {guest} points past the end of the image"
                )));
            }
            let size = size.min(file_len - host) as usize;
            return Ok(Cluster::Compressed { host, size });
        }
        let host = entry & format::OFFSET_MASK;
        if entry & format::OFLAG_ZERO != 0 || host == 0 {
            return Ok(Cluster::Zero);
        }
        if !host.is_multiple_of(self.cluster_size as u64) {
            return Err(Error::Invalid(format!(
                "cluster of guest offset {guest} is at an unaligned host offset {host:#x}"
            )));
        }
        if host >= file_len {
            return Err(Error::Invalid(format!(
                "cluster of guest offset {guest} points past the end of the image"
            )));
        }
        Ok(Cluster::Data(host))
    }
}

enum Cluster {
    Zero,
    Data(u64),
    Compressed { host: u64, size: usize },
}

fn validate_header(header: &Header, file_len: u64) -> Result<()> {
    if !(9..=21).contains(&header.cluster_bits) {
        return Err(Error::Invalid(format!(
            "cluster bits {} out of range",
            header.cluster_bits
        )));
    }
    if header.backing_file_offset != 0 {
        return Err(Error::Unsupported(
            "the image has a backing file; refusing to read another file".into(),
        ));
    }
    if header.crypt_method != 0 {
        return Err(Error::Unsupported("the image is encrypted".into()));
    }
    check_features(header)?;
    if header.version == 3
        && (header.header_length < format::V3_HEADER_BASE as u32
            || !header.header_length.is_multiple_of(8)
            || header.header_length >= 1 << header.cluster_bits)
    {
        return Err(Error::Invalid(format!(
            "header length {} is invalid",
            header.header_length
        )));
    }
    checked_size(header.size)?;
    let cluster_bits = header.cluster_bits;
    let bytes_per_l2 = (1u64 << cluster_bits) * format::l2_entries(cluster_bits);
    let needed_l1 = header.size.div_ceil(bytes_per_l2);
    if needed_l1 > u64::from(header.l1_size) || u64::from(header.l1_size) > MAX_L1_ENTRIES {
        return Err(Error::Invalid(format!(
            "virtual size {} cannot be mapped by an L1 table of {} entries",
            header.size, header.l1_size
        )));
    }
    if !header.l1_table_offset.is_multiple_of(1 << cluster_bits) {
        return Err(Error::Invalid("the L1 table is not cluster aligned".into()));
    }
    let l1_end = header
        .l1_table_offset
        .saturating_add(u64::from(header.l1_size) * 8);
    if header.l1_size > 0 && l1_end > file_len {
        return Err(Error::Invalid(format!(
            "the L1 table ({:#x}..{l1_end:#x}) lies past the end of the image ({file_len} bytes)",
            header.l1_table_offset
        )));
    }
    Ok(())
}

fn check_features(header: &Header) -> Result<()> {
    let features = header.incompatible_features;
    if features & format::INCOMPAT_EXTERNAL_DATA != 0 {
        return Err(Error::Unsupported(
            "the image keeps its data in an external file; refusing to read another file".into(),
        ));
    }
    if features & format::INCOMPAT_CORRUPT != 0 {
        return Err(Error::Invalid("QEMU marked the image corrupt".into()));
    }
    if features & format::INCOMPAT_EXTENDED_L2 != 0 {
        return Err(Error::Unsupported(
            "extended L2 entries (subclusters)".into(),
        ));
    }
    let known = format::INCOMPAT_DIRTY
        | format::INCOMPAT_CORRUPT
        | format::INCOMPAT_EXTERNAL_DATA
        | format::INCOMPAT_COMPRESSION_TYPE
        | format::INCOMPAT_EXTENDED_L2;
    if features & !known != 0 {
        return Err(Error::Unsupported(format!(
            "unknown incompatible features {:#x}",
            features & !known
        )));
    }
    let declares_type = features & format::INCOMPAT_COMPRESSION_TYPE != 0;
    if declares_type != (header.compression_type != CompressionType::Deflate) {
        return Err(Error::Invalid(
            "compression type and its feature bit disagree".into(),
        ));
    }
    Ok(())
}

/// Refuses header extensions that point outside the image.
fn check_extensions(input: &dyn ReadAt, header: &Header, cluster_size: usize) -> Result<()> {
    if header.version < 3 {
        return Ok(());
    }
    let mut area = vec![0; cluster_size];
    input
        .read_at_zero_filled(&mut area, 0)
        .map_err(Error::io("reading the qcow2 header extensions"))?;
    let mut at = header.header_length as usize;
    while at + 8 <= area.len() {
        let kind = u32::from_be_bytes([area[at], area[at + 1], area[at + 2], area[at + 3]]);
        let len = u32::from_be_bytes([area[at + 4], area[at + 5], area[at + 6], area[at + 7]]);
        match kind {
            0 => return Ok(()),
            format::EXT_EXTERNAL_DATA_FILE => {
                return Err(Error::Unsupported(
                    "the image names an external data file; refusing to read another file".into(),
                ));
            }
            format::EXT_CRYPTO => return Err(Error::Unsupported("the image is encrypted".into())),
            _ => {}
        }
        at = at
            .saturating_add(8)
            .saturating_add((len as usize).next_multiple_of(8));
    }
    Err(Error::Invalid(
        "header extensions run past the first cluster".into(),
    ))
}

fn read_table(input: &dyn ReadAt, offset: u64, len: u64, what: &str) -> Result<Vec<u64>> {
    let end = offset.saturating_add(len);
    if end > input.size() {
        return Err(Error::Invalid(format!(
            "the {what} at {offset:#x} lies past the end of the image"
        )));
    }
    let mut bytes = vec![0; len as usize];
    input
        .read_at_zero_filled(&mut bytes, offset)
        .map_err(Error::io(format!("reading the {what} at {offset:#x}")))?;
    Ok(format::decode_table(&bytes))
}

/// Bytes in GiB, for messages.
fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}
