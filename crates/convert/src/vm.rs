//! A VM package opened for conversion, shared by `extract` and `convert`:
//! where it comes from, its name and domain, and its disk ready to read.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use diskimage::{
    Compression, ConvertOptions, ConvertStats, DiskReader, FileRange, InputFormat, Source,
};
use vmnetx::domain::{DiskFormat, Domain};
use vmnetx::package::{DiskMember, Package};
use vmnetx::url::VmnetxUrl;

use crate::error::{Context, ConvertError};
use crate::observer::{Observer, Phase};
use crate::source::{self, LocalPackage};

/// Names that mean "the archive did not name this VM".
const PLACEHOLDER_NAMES: [&str; 2] = ["", "Virtual Machine"];

/// A package whose disk is ready to be read.
pub struct OpenedVm {
    /// The VM's name.
    pub name: String,
    /// Facts from `domain.xml`.
    pub domain: Domain,
    /// The VMNetX URL the package was downloaded from, if it was.
    pub url: Option<VmnetxUrl>,
    /// The disk.
    pub disk: DiskReader,
    /// Size of the disk member in the package.
    pub input_size: u64,
    /// Keeps a downloaded package until the disk has been read.
    _local: LocalPackage,
}

/// Opens SOURCE (package, reference or URL), downloading into `tmp_dir`
/// when needed; `name` is the caller's name for a VM the package does not
/// name.
pub fn open(
    source: &str,
    name: Option<&str>,
    limits: &DiskLimits,
    observer: &mut dyn Observer,
) -> Result<OpenedVm, ConvertError> {
    let local = source::resolve(source, &limits.tmp_dir, &limits.cancel, observer)?;
    let package = Package::open(&local.path)
        .with_context(|| format!("cannot read the package {}", local.path.display()))?;
    let name = vm_name(&package.manifest().name, name, observer)?;
    let domain = package.domain().clone();
    if let Err(beyond) = domain.check_limits() {
        // Still converted: the operator may lower the recipe's request.
        observer.status(&format!(
            "Warning: the VM asks for {beyond}; a cloudlet refuses to run it \
             until its recipe's resources.requests are lowered"
        ));
    }
    let (disk, input_size) = open_disk(&package, &domain, limits)?;
    Ok(OpenedVm {
        name,
        domain,
        url: local.url.clone(),
        disk,
        input_size,
        _local: local,
    })
}

/// Where a disk may be spooled, how large it may be, and how to stop.
#[derive(Debug, Clone)]
pub struct DiskLimits {
    /// Where a downloaded package or a spooled disk goes.
    pub tmp_dir: std::path::PathBuf,
    /// The largest virtual size accepted.
    pub max_virtual_size: u64,
    /// Set to stop at the next safe point.
    pub cancel: Arc<AtomicBool>,
}

/// Conversion settings: `threads` defaults to all cores; `cancel` stops it.
pub fn convert_options(
    compression: Compression,
    threads: Option<u16>,
    cancel: &Arc<AtomicBool>,
) -> ConvertOptions {
    let defaults = ConvertOptions::default();
    ConvertOptions {
        compression,
        threads: threads.map_or(defaults.threads, usize::from),
        cancel: Some(Arc::clone(cancel)),
        ..defaults
    }
}

/// Compresses the disk into `out` (empty), flushed to disk.
pub fn compress(
    disk: DiskReader,
    out: File,
    options: &ConvertOptions,
    observer: &mut dyn Observer,
) -> Result<(File, ConvertStats), ConvertError> {
    let mut progress = observer.progress(Phase::Compress);
    progress.start(Some(disk.virtual_size()));
    let result = diskimage::convert(disk, out, options, &mut |done| progress.set_position(done));
    progress.finish();
    let (file, stats) = result.context("conversion failed")?;
    file.sync_all().context("cannot flush the image to disk")?;
    Ok((file, stats))
}

/// Percent saved by `output` over `input`, one decimal.
pub fn savings(input: u64, output: u64) -> f64 {
    if input == 0 {
        return 0.0;
    }
    let percent = 100.0 - 100.0 * output as f64 / input as f64;
    (percent * 10.0).round() / 10.0
}

/// The VM's name: the package's, else the caller's, else asked.
fn vm_name(
    from_package: &str,
    from_caller: Option<&str>,
    observer: &mut dyn Observer,
) -> Result<String, ConvertError> {
    let named = |name: &str| !PLACEHOLDER_NAMES.contains(&name.trim());
    if named(from_package) {
        return Ok(from_package.to_owned());
    }
    if let Some(name) = from_caller.filter(|name| named(name)) {
        return Ok(name.to_owned());
    }
    match observer.ask_vm_name() {
        Some(name) if named(&name) => Ok(name.trim().to_owned()),
        _ => Err(ConvertError::Invalid(
            "the package does not name its VM: give one with --name".to_owned(),
        )),
    }
}

/// Opens the package's disk for reading: in place when stored, streamed
/// when deflated and raw, spooled to a temporary file when deflated and
/// qcow2 (which needs random access).
fn open_disk(
    package: &Package,
    domain: &Domain,
    limits: &DiskLimits,
) -> Result<(DiskReader, u64), ConvertError> {
    let declared = domain.disk_format.map(|format| match format {
        DiskFormat::Qcow2 => InputFormat::Qcow2,
        DiskFormat::Raw => InputFormat::Raw,
    });
    let member = package.disk().context("cannot read the package's disk")?;
    let size = member.len();
    let source = match member {
        DiskMember::Stored { file, offset, len } => Source::RandomAccess(Box::new(
            FileRange::new(file, offset, len).context("cannot read the package's disk")?,
        )),
        DiskMember::Deflated { reader, len } if declared == Some(InputFormat::Raw) => {
            Source::Stream { reader, len }
        }
        DiskMember::Deflated { mut reader, len } => {
            let tmp_dir = &limits.tmp_dir;
            let mut spool = tempfile::tempfile_in(tmp_dir).with_context(|| {
                format!("cannot create a temporary file in {}", tmp_dir.display())
            })?;
            spool_disk(&mut reader, &mut spool, len, limits)?;
            Source::RandomAccess(Box::new(
                FileRange::new(spool, 0, len).context("cannot read the inflated disk")?,
            ))
        }
    };
    let reader = DiskReader::open_with_limit(source, declared, limits.max_virtual_size)
        .context("cannot read the package's disk")?;
    Ok((reader, size))
}

/// The most a qcow2 file of a `virtual_size` disk can need: every cluster
/// stored plus its tables, with room to spare.
fn qcow2_file_bound(virtual_size: u64) -> u64 {
    virtual_size
        .saturating_add(virtual_size / 64)
        .saturating_add(64 << 20)
}

/// Inflates a qcow2 member of `len` declared bytes into `spool`: refused
/// before any work when its header declares a disk beyond the limit or far
/// smaller than `len` (a small package must not spool gigabytes), and
/// cancellable between pieces.
fn spool_disk(
    reader: &mut dyn Read,
    spool: &mut File,
    len: u64,
    limits: &DiskLimits,
) -> Result<(), ConvertError> {
    let mut head = vec![0u8; 512.min(len as usize)];
    reader
        .read_exact(&mut head)
        .context("cannot inflate the disk")?;
    // Before spooling: a qcow2's header says how large its disk is, else
    // the member is the disk.
    let virtual_size = diskimage::qcow2_virtual_size(&head);
    diskimage::check_virtual_size(virtual_size.unwrap_or(len), limits.max_virtual_size)
        .context("cannot read the package's disk")?;
    if let Some(virtual_size) = virtual_size
        && len > qcow2_file_bound(virtual_size)
    {
        return Err(ConvertError::Invalid(format!(
            "the package's qcow2 member declares {len} bytes for a disk of only \
             {virtual_size} bytes: refused"
        )));
    }
    spool
        .write_all(&head)
        .context("cannot write the inflated disk")?;
    let mut piece = vec![0u8; 1 << 20];
    loop {
        if limits.cancel.load(Ordering::Relaxed) {
            return Err(diskimage::Error::Cancelled).context("the disk was not inflated");
        }
        let n = match reader.read(&mut piece) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error).context("cannot inflate the disk"),
        };
        spool
            .write_all(&piece[..n])
            .context("cannot write the inflated disk")?;
    }
}
