//! `olive2022 convert`: a VMNetX package to a containerDisk image in a
//! registry (or an OCI layout) plus a Sinfonia recipe, in one pass over the
//! disk and without Docker.
//!
//! The disk is compressed once into a single temporary qcow2, hashed as a
//! tar layer without copying, and uploaded from that same file. The recipe
//! is written only after the push succeeded, atomically.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use containerdisk::auth::{self, Credentials};
use containerdisk::image::{Image, MANIFEST_MEDIA_TYPE};
use containerdisk::layer::DiskLayer;
use containerdisk::reference::{ImageReference, registry_of};
use containerdisk::registry::{Registry, RegistryOptions};
use containerdisk::{BlobSource, Digest, layout};
use sinfonia::Recipe;
use sinfonia::vmi::{ContainerDisk, PullCredentials, Requests, Resources, VirtVnc, VmiValues};
use vmnetx::domain::Domain;
use vmnetx::url::VmnetxUrl;

use crate::cli::{Cli, ConvertArgs};
use crate::progress::{TransferBar, Verbosity, bytes_style};
use crate::vm;

/// The tag the original pushes, kept for compatibility.
const TAG: &str = "latest";

/// Where the image goes.
enum Destination {
    /// A registry repository `REG/<uuid>`.
    Registry(ImageReference),
    /// An OCI image layout directory.
    Layout(PathBuf),
}

/// One conversion to do.
struct Job {
    url: VmnetxUrl,
    /// The VMNetX URL as given (downloads keep its query string).
    source_url: String,
    package: Option<PathBuf>,
}

/// What one conversion produced.
struct Outcome {
    name: String,
    image: String,
    digest: Digest,
    recipe: PathBuf,
    virtual_size: u64,
    disk_size: u64,
    layer_size: u64,
    uploaded: bool,
    savings_percent: f64,
    seconds: f64,
}

/// Runs `convert`.
pub fn run(cli: &Cli, args: &ConvertArgs) -> Result<ExitCode> {
    let verbosity = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    crate::interrupt::flag();
    let jobs = match &args.batch {
        Some(file) => read_batch(file)?,
        None => vec![job(
            args.url.as_deref().unwrap_or_default(),
            args.package.clone(),
        )?],
    };
    let pull_credentials = args
        .deploy_token
        .as_deref()
        .map(auth::parse_user_token)
        .transpose()
        .context("--deploy-token / OLIVE2022_CREDENTIALS must be USER:TOKEN")?;
    if cli.dry_run {
        for job in &jobs {
            print_plan(args, job)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if pull_credentials.is_none() && args.output.is_none() {
        confirm_public(args, jobs.len())?;
    }
    if args.batch.is_none() {
        let outcome = convert_one(args, &jobs[0], pull_credentials.as_ref(), verbosity)?;
        print_outcome(&outcome);
        return Ok(ExitCode::SUCCESS);
    }
    run_batch(args, &jobs, pull_credentials.as_ref(), verbosity)
}

fn job(url: &str, package: Option<PathBuf>) -> Result<Job> {
    let parsed =
        VmnetxUrl::parse(url).with_context(|| format!("not a usable VMNetX URL: {url}"))?;
    Ok(Job {
        url: parsed,
        source_url: url.to_owned(),
        package,
    })
}

/// `--batch FILE`: one `VMNETX_URL [PACKAGE_FILE]` per line; blank lines
/// and `#` comments are skipped.
fn read_batch(file: &Path) -> Result<Vec<Job>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut jobs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let url = words.next().unwrap_or_default();
        let package = words.next().map(PathBuf::from);
        if words.next().is_some() {
            bail!(
                "{}:{}: expected `VMNETX_URL [PACKAGE_FILE]`",
                file.display(),
                number + 1
            );
        }
        jobs.push(job(url, package).with_context(|| format!("{}:{}", file.display(), number + 1))?);
    }
    if jobs.is_empty() {
        bail!("{} lists no VMNetX URL", file.display());
    }
    Ok(jobs)
}

fn destination(args: &ConvertArgs, job: &Job) -> Result<Destination> {
    if let Some(output) = &args.output {
        let Some(dir) = output.strip_prefix("oci:") else {
            bail!("--output takes oci:DIR, not {output:?}");
        };
        return Ok(Destination::Layout(PathBuf::from(dir)));
    }
    let text = format!(
        "{}/{}:{TAG}",
        args.registry.trim_end_matches('/'),
        job.url.sinfonia_uuid()
    );
    let reference = ImageReference::parse(&text)
        .with_context(|| format!("invalid --registry {:?}", args.registry))?;
    Ok(Destination::Registry(reference))
}

fn recipe_path(args: &ConvertArgs, job: &Job) -> PathBuf {
    args.recipes
        .join(format!("{}.yaml", job.url.sinfonia_uuid()))
}

fn print_plan(args: &ConvertArgs, job: &Job) -> Result<()> {
    let target = match destination(args, job)? {
        Destination::Registry(reference) => reference.to_string(),
        Destination::Layout(dir) => format!("oci:{}", dir.display()),
    };
    println!("UUID:   {}", job.url.sinfonia_uuid());
    println!(
        "Source: {}",
        job.package.as_ref().map_or_else(
            || job.url.canonical().to_owned(),
            |p| p.display().to_string()
        )
    );
    println!("Image:  {target}");
    println!("Recipe: {}", recipe_path(args, job).display());
    Ok(())
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

fn convert_one(
    args: &ConvertArgs,
    job: &Job,
    pull_credentials: Option<&Credentials>,
    verbosity: Verbosity,
) -> Result<Outcome> {
    let started = Instant::now();
    let uuid = job.url.sinfonia_uuid();
    let destination = destination(args, job)?;
    verbosity.status(format!("UUID: {uuid}"));
    let tmp_dir = match &args.tmp_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => std::env::temp_dir(),
    };
    let source = match &job.package {
        Some(path) => path.to_string_lossy().into_owned(),
        None => job.source_url.clone(),
    };
    let vm = vm::open(&source, args.disk.name.as_deref(), &tmp_dir, verbosity)?;
    verbosity.status(format!("Converting \"{}\"", vm.name));
    let disk = DiskFile::create(&tmp_dir, &uuid.to_string(), args.tmp_dir.is_some())?;
    let options = vm::convert_options(args.disk.compression.into(), args.disk.threads);
    let (file, stats) = vm::compress(vm.disk, disk.file()?, &options, verbosity)?;
    let layer = hash_layer(file, stats.output_size, verbosity)?;
    let image = Image::new(&layer, &labels(&vm.name, job));
    let (image_name, digest, uploaded) = match &destination {
        Destination::Registry(reference) => {
            let (digest, uploaded) = push(args, reference, &image, &layer, verbosity)?;
            (reference.to_string(), digest, uploaded)
        }
        Destination::Layout(dir) => {
            let digest = layout::write(dir, &image, &layer, &uuid.to_string(), &mut |_| {})
                .with_context(|| format!("cannot write the OCI layout {}", dir.display()))?;
            (format!("oci:{}:{uuid}", dir.display()), digest, true)
        }
    };
    drop(disk);
    let recipe = recipe(
        args,
        job,
        (&vm.name, &vm.domain),
        &destination,
        &digest,
        pull_credentials,
    );
    let recipe_path = recipe_path(args, job);
    write_recipe(&recipe_path, &recipe, pull_credentials.is_some())?;
    Ok(Outcome {
        name: vm.name,
        image: image_name,
        digest,
        recipe: recipe_path,
        virtual_size: stats.virtual_size,
        disk_size: stats.output_size,
        layer_size: layer.size(),
        uploaded,
        savings_percent: vm::savings(vm.input_size, stats.output_size),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The one temporary file: the compressed disk. Removed when dropped,
/// unless the user asked to keep intermediate files (`--tmp-dir`).
struct DiskFile {
    path: PathBuf,
    keep: bool,
}

impl DiskFile {
    fn create(dir: &Path, uuid: &str, keep: bool) -> Result<DiskFile> {
        let path = if keep {
            dir.join(format!("{uuid}.qcow2"))
        } else {
            let temp = tempfile::Builder::new()
                .prefix(".olive2022-")
                .suffix(".qcow2")
                .tempfile_in(dir)?;
            temp.into_temp_path().keep()?
        };
        Ok(DiskFile { path, keep })
    }

    fn file(&self) -> Result<File> {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn hash_layer(file: File, size: u64, verbosity: Verbosity) -> Result<DiskLayer> {
    let bar = verbosity.bytes_bar("hash");
    bar.set_length(size);
    bar.set_style(bytes_style(true));
    let layer = DiskLayer::new(file, "disk.qcow2", &mut |done| bar.set_position(done));
    bar.finish_and_clear();
    layer.context("cannot read the compressed disk back")
}

/// The original's two labels, plus where the VM came from.
fn labels(name: &str, job: &Job) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "org.opencontainers.image.url".into(),
            "https://olivearchive.org".into(),
        ),
        ("org.opencontainers.image.title".into(), name.into()),
        (
            "org.opencontainers.image.source".into(),
            job.url.canonical().into(),
        ),
        (
            "org.olivearchive.sinfonia.uuid".into(),
            job.url.sinfonia_uuid().to_string(),
        ),
    ])
}

/// Pushes layer, config and manifest; returns the manifest digest and
/// whether the layer had to be uploaded.
fn push(
    args: &ConvertArgs,
    reference: &ImageReference,
    image: &Image,
    layer: &DiskLayer,
    verbosity: Verbosity,
) -> Result<(Digest, bool)> {
    let options = RegistryOptions {
        insecure: args.insecure_registry,
        credentials: auth::from_auth_files_for(&reference.registry, &reference.repository),
        ..RegistryOptions::default()
    };
    let registry = Registry::new(&reference.registry, options)?;
    let repository = &reference.repository;
    let mut bar = TransferBar::new(verbosity, "upload");
    let uploaded = registry.push_blob(repository, layer, &mut bar);
    bar.finish();
    let uploaded =
        uploaded.with_context(|| format!("cannot push the disk layer to {reference}"))?;
    if !uploaded {
        verbosity.status("The registry already has this disk: upload skipped");
    }
    registry
        .push_blob(
            repository,
            &image.config,
            &mut containerdisk::registry::NoProgress,
        )
        .with_context(|| format!("cannot push the image config to {reference}"))?;
    let tag = reference.tag.as_deref().unwrap_or(TAG);
    let digest = registry
        .push_manifest(repository, tag, MANIFEST_MEDIA_TYPE, image.manifest.bytes())
        .with_context(|| format!("cannot push the manifest to {reference}"))?;
    Ok((digest, uploaded))
}

fn recipe(
    args: &ConvertArgs,
    job: &Job,
    (name, domain): (&str, &Domain),
    destination: &Destination,
    digest: &Digest,
    pull_credentials: Option<&Credentials>,
) -> Recipe {
    let (repository, tag) = match destination {
        Destination::Registry(_) => (
            args.registry.trim_end_matches('/').to_owned(),
            Some(TAG.to_owned()),
        ),
        Destination::Layout(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            (format!("oci:{}", dir.display()), None)
        }
    };
    let values = VmiValues {
        container_disk: ContainerDisk {
            repository,
            name: job.url.sinfonia_uuid().to_string(),
            tag,
            digest: Some(digest.to_string()),
            bus: domain.disk_bus.kubevirt(),
        },
        resources: Resources {
            requests: Requests {
                cpu: domain.vcpus,
                memory: VmiValues::memory_request(domain.memory_mib()),
            },
        },
        virtvnc: VirtVnc {
            fullname_override: "vmi".to_owned(),
        },
        container_disk_credentials: pull_credentials.map(|credentials| PullCredentials {
            registry: registry_of(&args.registry).to_owned(),
            username: credentials.username.clone(),
            password: credentials.password.clone(),
        }),
        machine: None,
    };
    Recipe {
        description: Some(name.to_owned()),
        chart: args.chart.clone(),
        version: args.chart_version.clone(),
        values: values.to_values(),
        restricted: pull_credentials.is_some(),
    }
}

/// Writes the recipe atomically (0600 when it holds credentials), then
/// loads it back as Sinfonia would and checks that nothing was lost.
fn write_recipe(path: &Path, recipe: &Recipe, secret: bool) -> Result<()> {
    let yaml = recipe.to_yaml().context("cannot write the recipe")?;
    let loaded = Recipe::from_yaml(&yaml).context("the recipe written does not load back")?;
    if &loaded != recipe || VmiValues::from_values(&loaded.values).is_err() {
        bail!("the recipe does not load back as written");
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mode = if secret { 0o600 } else { 0o666 };
    let mut temp = tempfile::Builder::new()
        .prefix(".recipe-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    temp.write_all(yaml.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn print_outcome(outcome: &Outcome) {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!("Name:    {}", outcome.name);
    println!("Image:   {}", outcome.image);
    println!("Digest:  {}", outcome.digest);
    println!(
        "Disk:    {:.1} MiB virtual, {:.1} MiB compressed ({:.1}% saved), layer {:.1} MiB{}",
        mib(outcome.virtual_size),
        mib(outcome.disk_size),
        outcome.savings_percent,
        mib(outcome.layer_size),
        if outcome.uploaded {
            ""
        } else {
            " (already in the registry)"
        }
    );
    println!("Recipe:  {}", outcome.recipe.display());
    println!("Time:    {:.1} s", outcome.seconds);
}

fn run_batch(
    args: &ConvertArgs,
    jobs: &[Job],
    pull_credentials: Option<&Credentials>,
    verbosity: Verbosity,
) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for job in jobs {
        let result = match convert_one(args, job, pull_credentials, verbosity) {
            // Ctrl-C stops the whole batch, not just this conversion.
            Err(error) if crate::interrupt::caused(&error) => return Err(error),
            result => result,
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
            Ok(outcome) => println!(
                "{:<36}  {:<6}  {}",
                job.url.sinfonia_uuid(),
                "ok",
                outcome.digest
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
