//! The layout of a compressed qcow2 v3 image, written front to back.
//!
//! Guest clusters arrive in order, already compressed. The writer packs
//! compressed clusters byte after byte (they may straddle host clusters, as
//! QEMU's own allocator lets them), stores incompressible clusters whole and
//! cluster-aligned, and leaves all-zero clusters unallocated.
//!
//! Memory stays bounded whatever the disk size: an L2 table is written into
//! the stream as soon as the guest range it maps is complete, and a refcount
//! block as soon as every host cluster it counts lies behind the write
//! position. Only the L1 table and the refcount table (8 bytes per 512 MiB of
//! guest and per 2 GiB of output) stay in memory until the end, when they are
//! written after the data and the header at offset 0 is filled in.

use std::collections::BTreeMap;
use std::io::{BufWriter, Seek, SeekFrom, Write};

use crate::codec::Compression;
use crate::format::{self, CompressionType, Header};
use crate::{Error, Result};

/// One guest cluster, as the writer stores it.
#[derive(Debug, Clone, Copy)]
pub enum Cluster<'a> {
    /// All zeros: left unallocated.
    Zero,
    /// Compressed data that inflates to one cluster.
    Compressed(&'a [u8]),
    /// A whole cluster stored as it is.
    Uncompressed(&'a [u8]),
}

/// Refcounts are 16 bits wide (`refcount_order` 4), QEMU's default.
const REFCOUNT_ORDER: u32 = 4;

/// Writes a compressed qcow2 image; see the module documentation.
pub struct Qcow2Writer<W: Write + Seek> {
    out: BufWriter<W>,
    cluster_bits: u32,
    virtual_size: u64,
    compression: CompressionType,
    /// The next byte to write.
    pos: u64,
    l1: Vec<u64>,
    /// The L2 table being filled and the L1 index it belongs to.
    l2: Vec<u64>,
    l2_index: u64,
    next_guest_cluster: u64,
    /// Refcount blocks not yet written, by block index.
    open_refblocks: BTreeMap<u64, Vec<u16>>,
    /// Host offsets of the refcount blocks written, in block order.
    reftable: Vec<u64>,
}

impl<W: Write + Seek> std::fmt::Debug for Qcow2Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2Writer")
            .field("virtual_size", &self.virtual_size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> Qcow2Writer<W> {
    /// Starts an image of `virtual_size` bytes (rounded up to 512) with
    /// clusters of `2^cluster_bits` bytes. `out` must be empty.
    pub fn new(
        out: W,
        virtual_size: u64,
        cluster_bits: u32,
        compression: Compression,
    ) -> Result<Self> {
        let compression = compression.header_type();
        if !(12..=21).contains(&cluster_bits) {
            return Err(Error::Invalid(format!(
                "cluster bits {cluster_bits} out of range"
            )));
        }
        let virtual_size = virtual_size.next_multiple_of(512);
        let l1_size = virtual_size.div_ceil(Self::guest_bytes_per_l2(cluster_bits));
        let mut writer = Qcow2Writer {
            out: BufWriter::with_capacity(1 << 20, out),
            cluster_bits,
            virtual_size,
            compression,
            pos: 0,
            l1: vec![0; l1_size as usize],
            l2: vec![0; format::l2_entries(cluster_bits) as usize],
            l2_index: 0,
            next_guest_cluster: 0,
            open_refblocks: BTreeMap::new(),
            reftable: Vec::new(),
        };
        // Cluster 0 holds the header, filled in by `finish`.
        writer.write_cluster_aligned(&[])?;
        Ok(writer)
    }

    fn guest_bytes_per_l2(cluster_bits: u32) -> u64 {
        (1u64 << cluster_bits) * format::l2_entries(cluster_bits)
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// How many guest clusters the image has.
    pub fn guest_clusters(&self) -> u64 {
        self.virtual_size.div_ceil(self.cluster_size())
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Adds the next guest cluster.
    pub fn push(&mut self, cluster: Cluster<'_>) -> Result<()> {
        let guest = self.next_guest_cluster;
        if guest >= self.guest_clusters() {
            return Err(Error::Invalid(
                "more clusters than the virtual size holds".into(),
            ));
        }
        self.next_guest_cluster += 1;
        let entries = format::l2_entries(self.cluster_bits);
        if guest / entries != self.l2_index {
            self.flush_l2()?;
            self.l2_index = guest / entries;
        }
        let entry = match cluster {
            Cluster::Zero => 0,
            Cluster::Compressed(data) => self.write_compressed(data)?,
            Cluster::Uncompressed(data) => {
                if data.len() as u64 != self.cluster_size() {
                    return Err(Error::Invalid(
                        "an uncompressed cluster must be whole".into(),
                    ));
                }
                self.write_cluster_aligned(data)? | format::OFLAG_COPIED
            }
        };
        self.l2[(guest % entries) as usize] = entry;
        self.write_complete_refblocks()
    }

    /// Appends compressed data and returns its L2 entry.
    fn write_compressed(&mut self, data: &[u8]) -> Result<u64> {
        if data.is_empty() || data.len() as u64 >= self.cluster_size() {
            return Err(Error::Invalid(
                "compressed data must be smaller than a cluster".into(),
            ));
        }
        let start = self.pos;
        self.write_bytes(data)?;
        let last = self.pos - 1;
        for cluster in start >> self.cluster_bits..=last >> self.cluster_bits {
            self.incref(cluster)?;
        }
        let extra_sectors = (last >> 9) - (start >> 9);
        let shift = format::csize_shift(self.cluster_bits);
        Ok(format::OFLAG_COMPRESSED | (extra_sectors << shift) | start)
    }

    /// Writes the L2 table being filled, if it maps anything.
    fn flush_l2(&mut self) -> Result<()> {
        if self.l2.iter().all(|&entry| entry == 0) {
            return Ok(());
        }
        let bytes = table_bytes(&self.l2);
        let offset = self.write_cluster_aligned(&bytes)?;
        self.l1[self.l2_index as usize] = offset | format::OFLAG_COPIED;
        self.l2.fill(0);
        Ok(())
    }

    /// Pads to a cluster boundary, writes `data` (zero padded to a cluster)
    /// there, counts the cluster and returns its offset.
    fn write_cluster_aligned(&mut self, data: &[u8]) -> Result<u64> {
        self.pad_to_cluster()?;
        let offset = self.pos;
        self.write_bytes(data)?;
        self.pad_to_cluster()?;
        if data.is_empty() {
            self.write_zeros(self.cluster_size())?;
        }
        self.incref(offset >> self.cluster_bits)?;
        Ok(offset)
    }

    fn pad_to_cluster(&mut self) -> Result<()> {
        let padding = self.pos.next_multiple_of(self.cluster_size()) - self.pos;
        self.write_zeros(padding)
    }

    fn write_zeros(&mut self, mut len: u64) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while len > 0 {
            let n = len.min(ZEROS.len() as u64) as usize;
            self.write_bytes(&ZEROS[..n])?;
            len -= n as u64;
        }
        Ok(())
    }

    fn write_bytes(&mut self, data: &[u8]) -> Result<()> {
        self.out
            .write_all(data)
            .map_err(Error::io("writing the qcow2 image"))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn refcounts_per_block(&self) -> u64 {
        (self.cluster_size() * 8) >> REFCOUNT_ORDER
    }

    fn incref(&mut self, cluster: u64) -> Result<()> {
        let per_block = self.refcounts_per_block();
        let block = self
            .open_refblocks
            .entry(cluster / per_block)
            .or_insert_with(|| vec![0; per_block as usize]);
        let count = &mut block[(cluster % per_block) as usize];
        *count = count
            .checked_add(1)
            .ok_or_else(|| Error::Invalid(format!("refcount overflow at cluster {cluster}")))?;
        Ok(())
    }

    /// Writes every refcount block whose clusters all lie behind the write
    /// position: none of them can change any more.
    fn write_complete_refblocks(&mut self) -> Result<()> {
        let per_block = self.refcounts_per_block();
        loop {
            let next = self.reftable.len() as u64;
            let complete = (next + 1) * per_block <= self.pos >> self.cluster_bits;
            if !complete {
                return Ok(());
            }
            let counts = self.open_refblocks.remove(&next).unwrap_or_default();
            let offset = self.write_cluster_aligned(&refblock_bytes(&counts))?;
            self.reftable.push(offset);
        }
    }

    /// Writes the remaining tables and the header; returns the output and the
    /// image size in bytes.
    pub fn finish(mut self) -> Result<(W, u64)> {
        if self.next_guest_cluster != self.guest_clusters() {
            return Err(Error::Invalid(format!(
                "image ended after {} of {} clusters",
                self.next_guest_cluster,
                self.guest_clusters()
            )));
        }
        self.flush_l2()?;
        self.pad_to_cluster()?;
        self.write_complete_refblocks()?;
        self.pad_to_cluster()?;
        let layout = self.tail_layout();
        for cluster in layout.first_cluster..layout.end_cluster {
            self.incref(cluster)?;
        }
        self.write_tail(&layout)?;
        let header = Header {
            version: 3,
            backing_file_offset: 0,
            cluster_bits: self.cluster_bits,
            size: self.virtual_size,
            crypt_method: 0,
            l1_size: self.l1.len() as u32,
            l1_table_offset: layout.l1_offset,
            refcount_table_offset: layout.reftable_offset,
            refcount_table_clusters: layout.reftable_clusters as u32,
            incompatible_features: match self.compression {
                CompressionType::Deflate => 0,
                CompressionType::Zstd => format::INCOMPAT_COMPRESSION_TYPE,
            },
            refcount_order: REFCOUNT_ORDER,
            header_length: format::V3_HEADER_LENGTH,
            compression_type: self.compression,
        };
        let size = self.pos;
        let out = &mut self.out;
        out.seek(SeekFrom::Start(0))
            .map_err(Error::io("writing the qcow2 header"))?;
        out.write_all(&header.to_bytes())
            .map_err(Error::io("writing the qcow2 header"))?;
        out.flush().map_err(Error::io("writing the qcow2 image"))?;
        let out = self.out.into_inner().map_err(|e| Error::Io {
            context: "writing the qcow2 image".into(),
            source: e.into_error(),
        })?;
        Ok((out, size))
    }

    /// Places the L1 table, the last refcount blocks and the refcount table
    /// after the data. The blocks must also count the tables and themselves,
    /// so their number is found by iterating to a fixed point.
    fn tail_layout(&self) -> TailLayout {
        let cluster_size = self.cluster_size();
        let first_cluster = self.pos >> self.cluster_bits;
        let l1_clusters = (self.l1.len() as u64 * 8).div_ceil(cluster_size);
        let first_open_block = self.reftable.len() as u64;
        let per_block = self.refcounts_per_block();
        let (mut blocks, mut reftable_clusters) = (1u64, 1u64);
        loop {
            let end = first_cluster + l1_clusters + blocks + reftable_clusters;
            let total_blocks = end.div_ceil(per_block);
            let new_blocks = total_blocks - first_open_block;
            let new_reftable = (total_blocks * 8).div_ceil(cluster_size);
            if (new_blocks, new_reftable) == (blocks, reftable_clusters) {
                break;
            }
            blocks = new_blocks.max(blocks);
            reftable_clusters = new_reftable.max(reftable_clusters);
        }
        let l1_offset = first_cluster * cluster_size;
        let refblocks_offset = l1_offset + l1_clusters * cluster_size;
        let reftable_offset = refblocks_offset + blocks * cluster_size;
        TailLayout {
            first_cluster,
            end_cluster: first_cluster + l1_clusters + blocks + reftable_clusters,
            l1_offset,
            refblocks: blocks,
            reftable_offset,
            reftable_clusters,
        }
    }

    fn write_tail(&mut self, layout: &TailLayout) -> Result<()> {
        let l1 = table_bytes(&self.l1);
        self.write_bytes(&l1)?;
        self.pad_to_cluster()?;
        let first_block = self.reftable.len() as u64;
        for block in first_block..first_block + layout.refblocks {
            let counts = self.open_refblocks.remove(&block).unwrap_or_default();
            let offset = self.pos;
            self.write_bytes(&refblock_bytes(&counts))?;
            self.pad_to_cluster()?;
            if counts.is_empty() {
                self.write_zeros(self.cluster_size())?;
            }
            self.reftable.push(offset);
        }
        debug_assert_eq!(self.pos, layout.reftable_offset);
        let reftable = table_bytes(&self.reftable);
        self.write_bytes(&reftable)?;
        self.pad_to_cluster()
    }
}

/// Where `finish` puts the tables.
struct TailLayout {
    first_cluster: u64,
    end_cluster: u64,
    l1_offset: u64,
    refblocks: u64,
    reftable_offset: u64,
    reftable_clusters: u64,
}

fn table_bytes(entries: &[u64]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|entry| entry.to_be_bytes())
        .collect()
}

fn refblock_bytes(counts: &[u16]) -> Vec<u8> {
    counts
        .iter()
        .flat_map(|count| count.to_be_bytes())
        .collect()
}
