//! `olive2022 extract`: the flags become [`convert::ExtractSettings`], the
//! `convert` crate writes the image, and its report is printed (or printed
//! as one JSON object).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use convert::{ExtractPlan, ExtractReport, ExtractSettings};
use vmnetx::shown::Shown;

use crate::cli::{Cli, ExtractArgs};
use crate::interrupt;
use crate::progress::{TerminalObserver, Verbosity};

/// Runs `extract`.
pub fn run(cli: &Cli, args: &ExtractArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet || args.json,
        verbose: cli.is_verbose(),
    };
    if cli.dry_run {
        let plan = ExtractPlan::new(&args.source, &args.output);
        if args.json {
            crate::json::print_line(&plan)?;
        } else {
            println!(
                "Would read {} and write {}",
                plan.source,
                plan.output.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let settings = ExtractSettings {
        name: args.disk.name.clone(),
        compression: args.disk.compression.into(),
        threads: args.disk.threads,
        tmp_dir: args.tmp_dir.clone(),
        max_virtual_size: args.disk.max_virtual_size,
        cancel: interrupt::flag(),
    };
    let mut observer = TerminalObserver { verbosity };
    let report = convert::extract(&args.source, &args.output, &settings, &mut observer)?;
    print_report(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &ExtractReport, json: bool) -> Result<()> {
    if json {
        return crate::json::print_line(report);
    }
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!("Name:         {}", Shown(&report.name));
    if let Some(uuid) = &report.uuid {
        println!("UUID:         {uuid}");
    }
    println!("vCPUs:        {}", report.vcpus);
    println!("Memory:       {} MiB", report.memory_mib);
    println!(
        "Disk bus:     {} (KubeVirt: {})",
        report.disk_bus, report.kubevirt_bus
    );
    println!(
        "Input:        {} {:.1} MiB",
        report.input_format,
        mib(report.input_size)
    );
    println!("Virtual size: {:.1} MiB", mib(report.virtual_size));
    println!(
        "Output:       {} {:.1} MiB ({})",
        report.output.display(),
        mib(report.output_size),
        report.compression
    );
    println!("Savings:      {:.1}%", report.savings_percent);
    println!(
        "Elapsed:      {:.1} s",
        Duration::from_secs_f64(report.elapsed_seconds).as_secs_f64()
    );
    Ok(())
}
