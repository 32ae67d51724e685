//! A VM package opened for conversion, shared by `extract` and `convert`:
//! where it comes from, its name and domain, and its disk ready to read.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
    tmp_dir: &Path,
    cancel: &Arc<AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<OpenedVm, ConvertError> {
    let local = source::resolve(source, tmp_dir, cancel, observer)?;
    let package = Package::open(&local.path)
        .with_context(|| format!("cannot read the package {}", local.path.display()))?;
    let name = vm_name(&package.manifest().name, name, observer)?;
    let domain = package.domain().clone();
    let (disk, input_size) = open_disk(&package, &domain, tmp_dir)?;
    Ok(OpenedVm {
        name,
        domain,
        url: local.url.clone(),
        disk,
        input_size,
        _local: local,
    })
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
    tmp_dir: &Path,
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
            let mut spool = tempfile::tempfile_in(tmp_dir).with_context(|| {
                format!("cannot create a temporary file in {}", tmp_dir.display())
            })?;
            std::io::copy(&mut reader, &mut spool).context("cannot inflate the disk")?;
            Source::RandomAccess(Box::new(
                FileRange::new(spool, 0, len).context("cannot read the inflated disk")?,
            ))
        }
    };
    let reader = DiskReader::open(source, declared).context("cannot read the package's disk")?;
    Ok((reader, size))
}
