//! `olive2022 convert`: the flags become [`convert::ConvertSettings`], the
//! `convert` crate does the work, and the outcome is printed (one summary,
//! or a table for `--batch`, or a [`JobOutcome`] line per job for
//! `--json`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use containerdisk::auth;
use convert::{ConvertJob, ConvertReport, ConvertSettings, JobOutcome};
use vmnetx::shown::Shown;

use crate::cli::{Cli, ConvertArgs};
use crate::json;
use crate::progress::{TerminalObserver, Verbosity};

/// Runs `convert`.
pub fn run(cli: &Cli, args: &ConvertArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        // Only the JSON lines on standard output, only errors on stderr.
        quiet: cli.quiet || args.json,
        verbose: cli.is_verbose(),
    };
    let jobs = match &args.batch {
        Some(file) => convert::read_batch(file)?,
        None => vec![ConvertJob::new(
            args.url.as_deref().unwrap_or_default(),
            args.package.clone(),
        )?],
    };
    let settings = settings(args)?;
    if cli.dry_run {
        for job in &jobs {
            let plan = settings.plan(job)?;
            if args.json {
                json::print_line(&plan)?;
            } else {
                print_plan(&plan);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if settings.pull_credentials.is_none() && settings.layout.is_none() {
        confirm_public(args, jobs.len())?;
    }
    let mut observer = TerminalObserver { verbosity };
    if args.json {
        return run_json(&jobs, &settings, &mut observer);
    }
    if args.batch.is_none() {
        let report = convert::convert(&jobs[0], &settings, &mut observer)?;
        print_report(&report);
        return Ok(ExitCode::SUCCESS);
    }
    run_batch(&jobs, &settings, &mut observer)
}

fn settings(args: &ConvertArgs) -> Result<ConvertSettings> {
    let pull_credentials = args
        .deploy_token
        .as_deref()
        .map(auth::parse_user_token)
        .transpose()
        .context("--deploy-token / OLIVE2022_CREDENTIALS must be USER:TOKEN")?;
    let layout = match &args.output {
        Some(output) => match output.strip_prefix("oci:") {
            Some(dir) => Some(PathBuf::from(dir)),
            None => bail!("--output takes oci:DIR, not {output:?}"),
        },
        None => None,
    };
    Ok(ConvertSettings {
        registry: args.registry.clone(),
        layout,
        insecure_registry: args.insecure_registry,
        registry_ca: args.registry_ca.clone(),
        recipes: args.recipes.clone(),
        tmp_dir: args.tmp_dir.clone(),
        name: args.disk.name.clone(),
        compression: args.disk.compression.into(),
        threads: args.disk.threads,
        max_virtual_size: args.disk.max_virtual_size,
        chart: args.chart.clone(),
        chart_version: args.chart_version.clone(),
        pull_credentials,
        cancel: crate::interrupt::flag(),
    })
}

fn print_plan(plan: &convert::Plan) {
    println!("UUID:   {}", plan.uuid);
    println!("Source: {}", plan.source);
    println!("Image:  {}", plan.image);
    println!("Recipe: {}", plan.recipe.display());
}

/// Without deploy credentials the image is public: ask, or take `--yes`,
/// and never block on a closed standard input.
fn confirm_public(args: &ConvertArgs, count: usize) -> Result<()> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "without --deploy-token the image{} will be public: confirm with --yes",
            if count > 1 { "s" } else { "" }
        );
    }
    eprint!(
        "No deploy token: push {count} public (non-restricted) image(s) to {}? [y/N] ",
        args.registry
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        bail!("not confirmed; nothing was pushed");
    }
    Ok(())
}

fn print_report(report: &ConvertReport) {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!("Name:    {}", Shown(&report.name));
    println!("Image:   {}", report.image);
    println!("Digest:  {}", report.digest);
    println!(
        "Disk:    {:.1} MiB virtual, {:.1} MiB compressed ({:.1}% saved), layer {:.1} MiB{}",
        mib(report.virtual_size),
        mib(report.disk_size),
        report.savings_percent,
        mib(report.layer_size),
        if report.uploaded {
            ""
        } else {
            " (already in the registry)"
        }
    );
    println!("Recipe:  {}", report.recipe.display());
    println!("Time:    {:.1} s", report.seconds);
}

fn run_batch(
    jobs: &[ConvertJob],
    settings: &ConvertSettings,
    observer: &mut TerminalObserver,
) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for job in jobs {
        let result = match convert::convert(job, settings, observer) {
            // Ctrl-C stops the whole batch, not just this conversion.
            Err(error) if error.is_cancelled() => return Err(error.into()),
            result => result.map_err(anyhow::Error::from),
        };
        if let Err(error) = &result {
            eprintln!("olive2022: {}: {error:#}", job.url.canonical());
        }
        rows.push((job, result));
    }
    println!("{:<36}  {:<6}  DIGEST OR ERROR", "UUID", "STATUS");
    let mut failed = 0;
    for (job, result) in &rows {
        match result {
            Ok(report) => println!(
                "{:<36}  {:<6}  {}",
                job.url.sinfonia_uuid(),
                "ok",
                report.digest
            ),
            Err(error) => {
                failed += 1;
                println!(
                    "{:<36}  {:<6}  {error:#}",
                    job.url.sinfonia_uuid(),
                    "FAILED"
                );
            }
        }
    }
    println!("{} converted, {failed} failed", rows.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--json`: every job, one or a batch, as a [`JobOutcome`] line; failed
/// when any job failed.
fn run_json(
    jobs: &[ConvertJob],
    settings: &ConvertSettings,
    observer: &mut TerminalObserver,
) -> Result<ExitCode> {
    let mut failed = false;
    for job in jobs {
        let started = Instant::now();
        let outcome = match convert::convert(job, settings, observer) {
            Ok(report) => JobOutcome::succeeded(job, &report),
            // Ctrl-C stops the whole batch, not just this conversion.
            Err(error) if error.is_cancelled() => return Err(error.into()),
            Err(error) => {
                failed = true;
                let outcome = JobOutcome::failed(job, &error, started.elapsed().as_secs_f64());
                let why = outcome.error.as_deref().unwrap_or_default();
                eprintln!("olive2022: {}: {}", job.url.canonical(), Shown(why));
                outcome
            }
        };
        json::print_line(&outcome)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
