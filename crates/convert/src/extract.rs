//! `extract`: a VMNetX package to a compressed qcow2 image that appears at
//! its path only once complete.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use diskimage::{Compression, ConvertOptions, ConvertStats, DiskReader};
use serde::{Deserialize, Serialize};

use vmnetx::shown::Shown;

use crate::error::{Context, ConvertError};
use crate::observer::Observer;
use crate::vm;

/// How to extract.
#[derive(Debug, Clone)]
pub struct ExtractSettings {
    /// A name for a VM whose package names none.
    pub name: Option<String>,
    /// Cluster compression.
    pub compression: Compression,
    /// Compressing threads (default: all cores).
    pub threads: Option<u16>,
    /// Where a downloaded package goes (default: beside the output).
    pub tmp_dir: Option<PathBuf>,
    /// The largest virtual size accepted (see
    /// [`diskimage::DEFAULT_MAX_VIRTUAL_SIZE`]).
    pub max_virtual_size: u64,
    /// Set to stop at the next safe point.
    pub cancel: Arc<AtomicBool>,
}

/// What `extract` would do (the dry run; also its `--json` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractPlan {
    /// The package file or URL, without a URL's query (it may hold an
    /// access token).
    pub source: String,
    /// The qcow2 image to write.
    pub output: PathBuf,
}

impl ExtractPlan {
    /// The plan to read `source` into `output`.
    pub fn new(source: &str, output: &Path) -> ExtractPlan {
        ExtractPlan {
            source: crate::source::redact(source).to_owned(),
            output: output.to_owned(),
        }
    }
}

/// What `extract` did (also its `--json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    /// The VM's name.
    pub name: String,
    /// Its Sinfonia UUID, when it came from a VMNetX URL.
    pub uuid: Option<String>,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// The package's disk bus.
    pub disk_bus: String,
    /// The KubeVirt bus it maps to.
    pub kubevirt_bus: String,
    /// CPU architecture, if declared.
    pub arch: Option<String>,
    /// Machine type, if declared.
    pub machine: Option<String>,
    /// Whether the VM has a network interface.
    pub network: bool,
    /// The disk's format in the package.
    pub input_format: String,
    /// The disk member's size in the package.
    pub input_size: u64,
    /// The disk's virtual size.
    pub virtual_size: u64,
    /// The image written.
    pub output: PathBuf,
    /// Its size.
    pub output_size: u64,
    /// Its cluster compression.
    pub compression: String,
    /// Percent saved over the input.
    pub savings_percent: f64,
    /// Wall time.
    pub elapsed_seconds: f64,
}

/// Extracts SOURCE into `output`.
pub fn extract(
    source: &str,
    output: &Path,
    settings: &ExtractSettings,
    observer: &mut dyn Observer,
) -> Result<ExtractReport, ConvertError> {
    let started = Instant::now();
    check_output(output)?;
    let out_dir = parent_dir(output);
    let tmp_dir = settings.tmp_dir.clone().unwrap_or_else(|| out_dir.clone());
    let limits = vm::DiskLimits {
        tmp_dir,
        max_virtual_size: settings.max_virtual_size,
        cancel: settings.cancel.clone(),
    };
    let vm = vm::open(source, settings.name.as_deref(), &limits, observer)?;
    observer.status(&format!("Extracting \"{}\"", Shown(&vm.name)));
    let format = vm.disk.format();
    let options = vm::convert_options(settings.compression, settings.threads, &settings.cancel);
    let stats = write_image(vm.disk, output, &out_dir, &options, observer)?;
    let (name, domain, input_size) = (vm.name, vm.domain, vm.input_size);
    Ok(ExtractReport {
        name,
        uuid: vm.url.as_ref().map(|url| url.sinfonia_uuid().to_string()),
        vcpus: domain.vcpus,
        memory_mib: domain.memory_mib(),
        disk_bus: domain.disk_bus.libvirt().to_owned(),
        kubevirt_bus: domain.disk_bus.kubevirt().name().to_owned(),
        arch: domain.arch.clone(),
        machine: domain.machine.clone(),
        network: domain.has_network,
        input_format: format.to_string(),
        input_size,
        virtual_size: stats.virtual_size,
        output: output.to_owned(),
        output_size: stats.output_size,
        compression: compression_name(settings.compression).to_owned(),
        savings_percent: vm::savings(input_size, stats.output_size),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::Deflate { .. } => "deflate",
        Compression::Zstd { .. } => "zstd",
    }
}

/// The output may be a new path or a regular file to replace, never a
/// directory, a device, a FIFO or a socket: the rename at the end would
/// replace whatever stands there (as root, `/dev/null` itself).
fn check_output(output: &Path) -> Result<(), ConvertError> {
    // Follows a symlink: `-o /dev/stdout` is a link to a device.
    let kind = match std::fs::metadata(output) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot look at {}", output.display()));
        }
        Ok(meta) => meta.file_type(),
    };
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory: give the path of the image file to write, such as DIR/disk.qcow2"
    } else {
        "not a regular file (a device, FIFO or socket): give the path of a regular file"
    };
    Err(ConvertError::Invalid(format!(
        "the output {} is {what}",
        output.display()
    )))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Converts into a hidden temporary file beside `output`, then renames it:
/// the output appears only when complete.
fn write_image(
    disk: DiskReader,
    output: &Path,
    out_dir: &Path,
    options: &ConvertOptions,
    observer: &mut dyn Observer,
) -> Result<ConvertStats, ConvertError> {
    let temp = tempfile::Builder::new()
        .prefix(".olive2022-")
        .suffix(".qcow2.part")
        // An ordinary file once renamed: the umask decides, as for `cp`.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(out_dir)
        .with_context(|| format!("cannot create a file in {}", out_dir.display()))?;
    let file = temp
        .reopen()
        .with_context(|| format!("cannot open {}", temp.path().display()))?;
    let (_, stats) = vm::compress(disk, file, options, observer)?;
    temp.persist(output)
        .with_context(|| format!("cannot move the image to {}", output.display()))?;
    Ok(stats)
}
