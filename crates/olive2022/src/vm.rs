//! A VM package opened for conversion, shared by `extract` and `convert`:
//! where it comes from, its name and domain, and its disk ready to read.

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use diskimage::{
    Compression, ConvertOptions, ConvertStats, DiskReader, FileRange, InputFormat, Source,
};
use vmnetx::domain::{DiskFormat, Domain};
use vmnetx::package::{DiskMember, Package};
use vmnetx::url::VmnetxUrl;

use crate::interrupt;
use crate::progress::{Verbosity, bytes_style};
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
/// when needed; `name` is the `--name` flag.
pub fn open(
    source: &str,
    name: Option<&str>,
    tmp_dir: &Path,
    verbosity: Verbosity,
) -> Result<OpenedVm> {
    let local = source::resolve(source, tmp_dir, verbosity)?;
    let package = Package::open(&local.path)
        .with_context(|| format!("cannot read the package {}", local.path.display()))?;
    let name = vm_name(&package.manifest().name, name)?;
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

/// Conversion settings from the command line; Ctrl-C cancels.
pub fn convert_options(compression: Compression, threads: Option<u16>) -> ConvertOptions {
    let defaults = ConvertOptions::default();
    ConvertOptions {
        compression,
        threads: threads.map_or(defaults.threads, usize::from),
        cancel: Some(interrupt::flag()),
        ..defaults
    }
}

/// Compresses the disk into `out` (empty), with a progress bar.
pub fn compress(
    disk: DiskReader,
    out: File,
    options: &ConvertOptions,
    verbosity: Verbosity,
) -> Result<(File, ConvertStats)> {
    let bar = verbosity.bytes_bar("compress");
    bar.set_length(disk.virtual_size());
    bar.set_style(bytes_style(true));
    let result = diskimage::convert(disk, out, options, &mut |done| bar.set_position(done));
    bar.finish_and_clear();
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

/// The VM's name: the package's, else `--name`, else asked on a terminal.
fn vm_name(from_package: &str, from_flag: Option<&str>) -> Result<String> {
    if !PLACEHOLDER_NAMES.contains(&from_package.trim()) {
        return Ok(from_package.to_owned());
    }
    if let Some(name) = from_flag.filter(|name| !PLACEHOLDER_NAMES.contains(&name.trim())) {
        return Ok(name.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("the package does not name its VM: give one with --name");
    }
    let stdin = std::io::stdin();
    loop {
        eprint!("VM image name: ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("the package does not name its VM: give one with --name");
        }
        let name = line.trim();
        if !PLACEHOLDER_NAMES.contains(&name) {
            return Ok(name.to_owned());
        }
    }
}

/// Opens the package's disk for reading: in place when stored, streamed
/// when deflated and raw, spooled to a temporary file when deflated and
/// qcow2 (which needs random access).
fn open_disk(package: &Package, domain: &Domain, tmp_dir: &Path) -> Result<(DiskReader, u64)> {
    let declared = domain.disk_format.map(|format| match format {
        DiskFormat::Qcow2 => InputFormat::Qcow2,
        DiskFormat::Raw => InputFormat::Raw,
    });
    let member = package.disk().context("cannot read the package's disk")?;
    let size = member.len();
    let source = match member {
        DiskMember::Stored { file, offset, len } => {
            Source::RandomAccess(Box::new(FileRange::new(file, offset, len)?))
        }
        DiskMember::Deflated { reader, len } if declared == Some(InputFormat::Raw) => {
            Source::Stream { reader, len }
        }
        DiskMember::Deflated { mut reader, len } => {
            let mut spool = tempfile::tempfile_in(tmp_dir).with_context(|| {
                format!("cannot create a temporary file in {}", tmp_dir.display())
            })?;
            std::io::copy(&mut reader, &mut spool).context("cannot inflate the disk")?;
            Source::RandomAccess(Box::new(FileRange::new(spool, 0, len)?))
        }
    };
    let reader = DiskReader::open(source, declared).context("cannot read the package's disk")?;
    Ok((reader, size))
}
