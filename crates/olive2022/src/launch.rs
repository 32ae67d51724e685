//! `uuid` and the parts of `launch` that need no network yet.

use std::process::ExitCode;

use anyhow::{Context, Result};
use vmnetx::url::VmnetxUrl;

use crate::cli::{LaunchArgs, UuidArgs};

/// `olive2022 uuid URL`: prints the Sinfonia UUID.
pub fn uuid(args: &UuidArgs) -> Result<ExitCode> {
    let url = parse(&args.url)?;
    println!("{}", url.sinfonia_uuid());
    Ok(ExitCode::SUCCESS)
}

/// `olive2022 -n launch URL`: says what a launch would do.
pub fn dry_run(args: &LaunchArgs) -> Result<ExitCode> {
    let url = parse(&args.url)?;
    println!("UUID: {}", url.sinfonia_uuid());
    println!("Canonical URL: {}", url.canonical());
    println!("Tier 1: {}", args.tier1_url);
    println!(
        "Would deploy {} through {}, open a WireGuard tunnel to it and start a VNC viewer.",
        url.sinfonia_uuid(),
        args.tier1_url
    );
    Ok(ExitCode::SUCCESS)
}

fn parse(url: &str) -> Result<VmnetxUrl> {
    VmnetxUrl::parse(url).context("not a usable VMNetX URL")
}
