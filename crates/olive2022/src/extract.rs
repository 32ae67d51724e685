//! `olive2022 extract`: a VMNetX package to a compressed qcow2 image.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use diskimage::{ConvertOptions, ConvertStats, DiskReader, FileRange, InputFormat, Source};
use serde::Serialize;
use vmnetx::domain::{DiskFormat, Domain};
use vmnetx::package::{DiskMember, Package};

use crate::cli::{Cli, ExtractArgs};
use crate::progress::{Verbosity, bytes_style};
use crate::{interrupt, source};

/// Names that mean "the archive did not name this VM".
const PLACEHOLDER_NAMES: [&str; 2] = ["", "Virtual Machine"];

/// What `extract` reports.
#[derive(Debug, Serialize)]
struct Summary {
    name: String,
    uuid: Option<String>,
    vcpus: u32,
    memory_mib: u64,
    disk_bus: String,
    kubevirt_bus: String,
    arch: Option<String>,
    machine: Option<String>,
    network: bool,
    input_format: String,
    input_size: u64,
    virtual_size: u64,
    output: PathBuf,
    output_size: u64,
    compression: String,
    savings_percent: f64,
    elapsed_seconds: f64,
}

/// Runs `extract`.
pub fn run(cli: &Cli, args: &ExtractArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet || args.json,
        verbose: cli.verbose,
    };
    let out_dir = parent_dir(&args.output);
    let tmp_dir = args.tmp_dir.clone().unwrap_or_else(|| out_dir.clone());
    if cli.dry_run {
        println!(
            "Would read {} and write {}",
            source::redact(&args.source),
            args.output.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    interrupt::flag();
    let local = source::resolve(&args.source, &tmp_dir, verbosity)?;
    let package = Package::open(&local.path)
        .with_context(|| format!("cannot read the package {}", local.path.display()))?;
    let name = vm_name(&package.manifest().name, args.name.as_deref())?;
    let domain = package.domain().clone();
    verbosity.status(format!("Extracting \"{name}\""));
    let (disk, input_size) = open_disk(&package, &domain, &tmp_dir)?;
    let format = disk.format();
    let options = ConvertOptions {
        compression: args.compression.into(),
        threads: args.threads.map_or_else(default_threads, usize::from),
        cancel: Some(interrupt::flag()),
        ..ConvertOptions::default()
    };
    let stats = write_image(disk, &args.output, &out_dir, &options, verbosity)?;
    let summary = Summary {
        name,
        uuid: local
            .url
            .as_ref()
            .map(|url| url.sinfonia_uuid().to_string()),
        vcpus: domain.vcpus,
        memory_mib: domain.memory_mib(),
        disk_bus: domain.disk_bus.libvirt().to_owned(),
        kubevirt_bus: domain.disk_bus.kubevirt().to_owned(),
        arch: domain.arch.clone(),
        machine: domain.machine.clone(),
        network: domain.has_network,
        input_format: format.to_string(),
        input_size,
        virtual_size: stats.virtual_size,
        output: args.output.clone(),
        output_size: stats.output_size,
        compression: format!("{:?}", args.compression).to_lowercase(),
        savings_percent: savings(input_size, stats.output_size),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
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

/// Converts into a hidden temporary file beside `output`, then renames it:
/// the output appears only when complete.
fn write_image(
    disk: DiskReader,
    output: &Path,
    out_dir: &Path,
    options: &ConvertOptions,
    verbosity: Verbosity,
) -> Result<ConvertStats> {
    let temp = tempfile::Builder::new()
        .prefix(".olive2022-")
        .suffix(".qcow2.part")
        // An ordinary file once renamed: the umask decides, as for `cp`.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(out_dir)
        .with_context(|| format!("cannot create a file in {}", out_dir.display()))?;
    let bar = verbosity.bytes_bar("compress");
    bar.set_length(disk.virtual_size());
    bar.set_style(bytes_style(true));
    let file = temp.reopen()?;
    let result = diskimage::convert(disk, file, options, &mut |done| bar.set_position(done));
    bar.finish_and_clear();
    let (file, stats) = result.context("conversion failed")?;
    file.sync_all().context("cannot flush the image to disk")?;
    temp.persist(output)
        .with_context(|| format!("cannot move the image to {}", output.display()))?;
    Ok(stats)
}

fn savings(input: u64, output: u64) -> f64 {
    if input == 0 {
        return 0.0;
    }
    let percent = 100.0 - 100.0 * output as f64 / input as f64;
    (percent * 10.0).round() / 10.0
}

fn print_summary(summary: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
        return Ok(());
    }
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!("Name:         {}", summary.name);
    if let Some(uuid) = &summary.uuid {
        println!("UUID:         {uuid}");
    }
    println!("vCPUs:        {}", summary.vcpus);
    println!("Memory:       {} MiB", summary.memory_mib);
    println!(
        "Disk bus:     {} (KubeVirt: {})",
        summary.disk_bus, summary.kubevirt_bus
    );
    println!(
        "Input:        {} {:.1} MiB",
        summary.input_format,
        mib(summary.input_size)
    );
    println!("Virtual size: {:.1} MiB", mib(summary.virtual_size));
    println!(
        "Output:       {} {:.1} MiB ({})",
        summary.output.display(),
        mib(summary.output_size),
        summary.compression
    );
    println!("Savings:      {:.1}%", summary.savings_percent);
    println!(
        "Elapsed:      {:.1} s",
        Duration::from_secs_f64(summary.elapsed_seconds).as_secs_f64()
    );
    Ok(())
}
