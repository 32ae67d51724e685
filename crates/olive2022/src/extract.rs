//! `olive2022 extract`: a VMNetX package to a compressed qcow2 image.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use diskimage::{ConvertOptions, ConvertStats, DiskReader};
use serde::Serialize;

use crate::cli::{Cli, ExtractArgs};
use crate::progress::Verbosity;
use crate::{interrupt, source, vm};

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
    let vm = vm::open(&args.source, args.disk.name.as_deref(), &tmp_dir, verbosity)?;
    verbosity.status(format!("Extracting \"{}\"", vm.name));
    let format = vm.disk.format();
    let options = vm::convert_options(args.disk.compression.into(), args.disk.threads);
    let stats = write_image(vm.disk, &args.output, &out_dir, &options, verbosity)?;
    let (name, domain, input_size) = (vm.name, vm.domain, vm.input_size);
    let summary = Summary {
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
        output: args.output.clone(),
        output_size: stats.output_size,
        compression: format!("{:?}", args.disk.compression).to_lowercase(),
        savings_percent: vm::savings(input_size, stats.output_size),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    print_summary(&summary, args.json)?;
    Ok(ExitCode::SUCCESS)
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
    verbosity: Verbosity,
) -> Result<ConvertStats> {
    let temp = tempfile::Builder::new()
        .prefix(".olive2022-")
        .suffix(".qcow2.part")
        // An ordinary file once renamed: the umask decides, as for `cp`.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(out_dir)
        .with_context(|| format!("cannot create a file in {}", out_dir.display()))?;
    let (_, stats) = vm::compress(disk, temp.reopen()?, options, verbosity)?;
    temp.persist(output)
        .with_context(|| format!("cannot move the image to {}", output.display()))?;
    Ok(stats)
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
