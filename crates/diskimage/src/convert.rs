//! The parallel conversion pipeline: one reader, N compressors, one writer.
//!
//! ```text
//! reader ──jobs──▶ worker × N ──results──▶ writer (calling thread)
//!    ▲                                         │
//!    └──────────────── credits ◀───────────────┘
//! ```
//!
//! The reader needs a credit for every chunk it reads and the writer gives
//! one back for every chunk it has written, so at most `inflight()` chunks
//! exist at once, however slow one worker is: memory is bounded by
//! `inflight × chunk size`, independent of the disk size. The writer puts
//! chunks back in guest order, so the output is the same bytes whatever the
//! thread count or timing.

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::codec::{self, Compression, Encoder};
use crate::reader::{Chunk, ChunkData, DiskReader};
use crate::writer::{Cluster, Qcow2Writer};
use crate::{Error, Result};

/// Output clusters of 64 KiB, QEMU's default.
pub const DEFAULT_CLUSTER_BITS: u32 = 16;

/// A shared flag that stops a conversion (set it from a Ctrl-C handler).
pub type Cancelled = Arc<AtomicBool>;

/// How to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Compression of the output clusters.
    pub compression: Compression,
    /// Compressing threads (at least 1).
    pub threads: usize,
    /// Set to stop early with [`Error::Cancelled`].
    pub cancel: Option<Cancelled>,
    /// Output cluster size as a power of two (12–20); 16 unless testing.
    pub cluster_bits: u32,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            compression: Compression::DEFLATE,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cancel: None,
            cluster_bits: DEFAULT_CLUSTER_BITS,
        }
    }
}

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// Size of the disk as the guest sees it.
    pub virtual_size: u64,
    /// Size of the qcow2 image written.
    pub output_size: u64,
    /// Clusters stored compressed.
    pub compressed_clusters: u64,
    /// Clusters stored as they are (compression would not shrink them).
    pub uncompressed_clusters: u64,
    /// All-zero clusters, left unallocated.
    pub zero_clusters: u64,
}

/// Chunks in flight per compressing thread, beyond which the reader waits.
fn inflight(threads: usize) -> usize {
    threads * 3 + 2
}

/// Converts `reader` into a compressed qcow2 image written to `out` (which
/// must be empty). `progress` is called from the calling thread with the
/// number of guest bytes done so far.
pub fn convert<W: Write + Seek>(
    reader: DiskReader,
    out: W,
    options: &ConvertOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, ConvertStats)> {
    let started = std::time::Instant::now();
    let threads = options.threads.max(1);
    if !(12..=20).contains(&options.cluster_bits) {
        return Err(Error::Invalid(format!(
            "cluster bits {} out of range",
            options.cluster_bits
        )));
    }
    let cluster_size = 1usize << options.cluster_bits;
    let virtual_size = reader.virtual_size();
    let mut writer =
        Qcow2Writer::new(out, virtual_size, options.cluster_bits, options.compression)?;
    let (job_tx, job_rx) = sync_channel::<(u64, Chunk)>(threads);
    let (result_tx, result_rx) = sync_channel::<(u64, Result<Encoded>)>(inflight(threads));
    let (credit_tx, credit_rx) = sync_channel::<()>(inflight(threads));
    for _ in 0..inflight(threads) {
        credit_tx
            .send(())
            .map_err(|_| Error::Invalid("pipeline setup failed".into()))?;
    }
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut stats = ConvertStats {
        virtual_size,
        ..ConvertStats::default()
    };
    std::thread::scope(|scope| {
        let reader_results = result_tx.clone();
        let cancel = options.cancel.clone();
        let mut workers = vec![scope.spawn(move || {
            read_chunks(reader, job_tx, reader_results, credit_rx, cancel);
        })];
        for _ in 0..threads {
            let (jobs, results) = (Arc::clone(&job_rx), result_tx.clone());
            let compression = options.compression;
            workers.push(scope.spawn(move || {
                compress_chunks(compression, cluster_size, &jobs, &results);
            }));
        }
        // Only the threads may keep the channels alive: when the writer
        // stops early, dropping its ends unblocks every other thread.
        drop((result_tx, job_rx));
        let outcome = write_in_order(&mut writer, &result_rx, &credit_tx, &mut stats, progress);
        drop((result_rx, credit_tx));
        // Joined here rather than by the scope: the scope returns once the
        // closures are done, when the threads may still be destroying their
        // thread-locals; a join waits until they have exited, so nothing of
        // a conversion outlives it (LeakSanitizer saw those thread-locals
        // as leaks when fuzzing). A worker's panic goes on as before.
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        outcome
    })?;
    let (out, size) = writer.finish()?;
    stats.output_size = size;
    tracing::debug!(
        virtual_size,
        output_size = size,
        threads,
        seconds = started.elapsed().as_secs_f64(),
        "disk image compressed"
    );
    Ok((out, stats))
}

fn read_chunks(
    mut reader: DiskReader,
    jobs: SyncSender<(u64, Chunk)>,
    results: SyncSender<(u64, Result<Encoded>)>,
    credits: Receiver<()>,
    cancel: Option<Cancelled>,
) {
    for seq in 0.. {
        if credits.recv().is_err() {
            return; // the writer stopped
        }
        if cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            let _ = results.send((seq, Err(Error::Cancelled)));
            return;
        }
        match reader.next_chunk() {
            Ok(Some(chunk)) => {
                if jobs.send((seq, chunk)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                let _ = results.send((seq, Err(error)));
                return;
            }
        }
    }
}

fn compress_chunks(
    compression: Compression,
    cluster_size: usize,
    jobs: &Mutex<Receiver<(u64, Chunk)>>,
    results: &SyncSender<(u64, Result<Encoded>)>,
) {
    let mut encoder = match Encoder::new(compression) {
        Ok(encoder) => encoder,
        Err(error) => {
            let _ = results.send((0, Err(Error::io("starting the compressor")(error))));
            return;
        }
    };
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok((seq, chunk)) = job else { return };
        if results
            .send((seq, encode(chunk, cluster_size, &mut encoder)))
            .is_err()
        {
            return;
        }
    }
}

/// A chunk ready to be written: one entry per output cluster, whose data
/// (compressed or whole) lies in `bytes`.
struct Encoded {
    guest_len: usize,
    clusters: Vec<EncodedCluster>,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy)]
enum EncodedCluster {
    Zero,
    Compressed(usize, usize),
    Uncompressed(usize, usize),
}

fn encode(chunk: Chunk, cluster_size: usize, encoder: &mut Encoder) -> Result<Encoded> {
    let clusters = chunk.len.div_ceil(cluster_size);
    let (mut buf, compressed) = match chunk.data {
        ChunkData::Zero => {
            return Ok(Encoded {
                guest_len: chunk.len,
                clusters: vec![EncodedCluster::Zero; clusters],
                bytes: Vec::new(),
            });
        }
        ChunkData::Bytes { buf, compressed } => (buf, compressed),
    };
    for piece in compressed {
        let mut cluster = vec![0; piece.cluster_size];
        codec::decompress(piece.kind, &piece.data, &mut cluster).map_err(|reason| {
            Error::Invalid(format!(
                "compressed cluster at guest offset {}: {reason}",
                chunk.guest_offset + piece.at as u64
            ))
        })?;
        buf[piece.at..piece.at + piece.take].copy_from_slice(&cluster[..piece.take]);
    }
    // The last cluster of a disk may be short: QEMU expects it whole.
    buf.resize(clusters * cluster_size, 0);
    let mut encoded = Encoded {
        guest_len: chunk.len,
        clusters: Vec::with_capacity(clusters),
        bytes: Vec::new(),
    };
    let mut packed = Vec::with_capacity(cluster_size);
    for cluster in buf.chunks_exact(cluster_size) {
        let start = encoded.bytes.len();
        let entry = if codec::is_zero(cluster) {
            EncodedCluster::Zero
        } else if encoder.compress(cluster, &mut packed) {
            encoded.bytes.extend_from_slice(&packed);
            EncodedCluster::Compressed(start, packed.len())
        } else {
            encoded.bytes.extend_from_slice(cluster);
            EncodedCluster::Uncompressed(start, cluster.len())
        };
        encoded.clusters.push(entry);
    }
    Ok(encoded)
}

fn write_in_order<W: Write + Seek>(
    writer: &mut Qcow2Writer<W>,
    results: &Receiver<(u64, Result<Encoded>)>,
    credits: &SyncSender<()>,
    stats: &mut ConvertStats,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut pending = BTreeMap::new();
    let (mut next, mut done) = (0u64, 0u64);
    while done < stats.virtual_size {
        let Ok((seq, result)) = results.recv() else {
            return Err(Error::Invalid(
                "the conversion pipeline stopped early".into(),
            ));
        };
        pending.insert(seq, result);
        while let Some(result) = pending.remove(&next) {
            let encoded = result?;
            write_chunk(writer, &encoded, stats)?;
            done += encoded.guest_len as u64;
            next += 1;
            progress(done);
            // The reader may have finished: a closed channel is fine.
            let _ = credits.try_send(());
        }
    }
    Ok(())
}

fn write_chunk<W: Write + Seek>(
    writer: &mut Qcow2Writer<W>,
    encoded: &Encoded,
    stats: &mut ConvertStats,
) -> Result<()> {
    for &cluster in &encoded.clusters {
        let cluster = match cluster {
            EncodedCluster::Zero => {
                stats.zero_clusters += 1;
                Cluster::Zero
            }
            EncodedCluster::Compressed(at, len) => {
                stats.compressed_clusters += 1;
                Cluster::Compressed(&encoded.bytes[at..at + len])
            }
            EncodedCluster::Uncompressed(at, len) => {
                stats.uncompressed_clusters += 1;
                Cluster::Uncompressed(&encoded.bytes[at..at + len])
            }
        };
        writer.push(cluster)?;
    }
    Ok(())
}
