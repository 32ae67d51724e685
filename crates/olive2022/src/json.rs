//! `--json` output: one JSON object per line on standard output, each
//! flushed at once so a script reading a long batch sees every job as it
//! ends. The shapes are the libraries' types (`convert::JobOutcome`,
//! `convert::Plan`, `vmnetx::url::VmIdentity`…), documented in the README's
//! "Scripting with --json".

use std::io::Write;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Prints `value` as one line of JSON.
pub fn print_line(value: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(value).context("cannot encode the JSON output")?;
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&line)
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

/// Refuses `--json` outside a dry run, for the commands whose only JSON is
/// their plan (`launch`, `stage2`, `demo`, `cloudlet`, `install`,
/// `uninstall`): better a clear error than doing the real thing silently.
pub fn plan_only(json: bool, dry_run: bool) -> Result<()> {
    if json && !dry_run {
        bail!("--json prints a plan: use it with --dry-run");
    }
    Ok(())
}
