//! `convert`, start to end: package → compressed disk → image in a
//! registry or layout → recipe.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use containerdisk::image::Image;
use containerdisk::{BlobSource, Digest};
use serde::Serialize;

use vmnetx::shown::Shown;

use crate::error::{Context, ConvertError};
use crate::job::{ConvertJob, ConvertSettings};
use crate::observer::Observer;
use crate::{push, recipe, vm};

/// What one conversion produced.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    /// The VM's name.
    pub name: String,
    /// The VM's Sinfonia UUID.
    pub uuid: String,
    /// The image: a registry reference, or `oci:DIR:<uuid>`.
    pub image: String,
    /// The manifest's digest, which the recipe pins.
    pub digest: Digest,
    /// The recipe written.
    pub recipe: PathBuf,
    /// The disk's virtual size in bytes.
    pub virtual_size: u64,
    /// The compressed qcow2's size in bytes.
    pub disk_size: u64,
    /// The tar layer's size in bytes.
    pub layer_size: u64,
    /// Whether the layer was sent (false: the registry had it).
    pub uploaded: bool,
    /// Percent saved by the compressed disk over the package's.
    pub savings_percent: f64,
    /// Wall time.
    pub seconds: f64,
}

/// Converts one job: the image is stored first, the recipe written last.
pub fn convert(
    job: &ConvertJob,
    settings: &ConvertSettings,
    observer: &mut dyn Observer,
) -> Result<ConvertReport, ConvertError> {
    let started = Instant::now();
    let uuid = job.url.sinfonia_uuid().to_string();
    let destination = settings.destination(job)?;
    observer.status(&format!("UUID: {uuid}"));
    let tmp_dir = match &settings.tmp_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => std::env::temp_dir(),
    };
    let cancel = &settings.cancel;
    let limits = vm::DiskLimits {
        tmp_dir: tmp_dir.clone(),
        max_virtual_size: settings.max_virtual_size,
        cancel: cancel.clone(),
    };
    let vm = vm::open(&job.source(), settings.name.as_deref(), &limits, observer)?;
    observer.status(&format!("Converting \"{}\"", Shown(&vm.name)));
    let disk = DiskFile::create(&tmp_dir, &uuid, settings.tmp_dir.is_some())?;
    let options = vm::convert_options(settings.compression, settings.threads, cancel);
    let (file, stats) = vm::compress(vm.disk, disk.open()?, &options, observer)?;
    let layer = push::hash_layer(file, stats.output_size, observer)?;
    let image = Image::new(&layer, &push::labels(&vm.name, job));
    let pushed = push::store(
        &destination,
        &image,
        &layer,
        job,
        &push::Access {
            insecure: settings.insecure_registry,
            ca_file: settings.registry_ca.clone(),
        },
        cancel,
        observer,
    )?;
    drop(disk);
    let recipe = recipe::build(
        settings,
        job,
        (&vm.name, &vm.domain),
        &destination,
        &pushed.digest,
    );
    let recipe_path = settings.recipe_path(job);
    recipe::write(&recipe_path, &recipe, settings.pull_credentials.is_some())?;
    tracing::info!(
        %uuid,
        image = %pushed.image,
        digest = %pushed.digest,
        recipe = %recipe_path.display(),
        disk_bytes = stats.output_size,
        seconds = started.elapsed().as_secs_f64(),
        "VM converted"
    );
    Ok(ConvertReport {
        name: vm.name,
        uuid,
        image: pushed.image,
        digest: pushed.digest,
        recipe: recipe_path,
        virtual_size: stats.virtual_size,
        disk_size: stats.output_size,
        layer_size: layer.size(),
        uploaded: pushed.uploaded,
        savings_percent: vm::savings(vm.input_size, stats.output_size),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The one temporary file: the compressed disk. Removed when dropped,
/// unless the caller asked to keep intermediate files (a given tmp dir).
struct DiskFile {
    path: PathBuf,
    keep: bool,
}

impl DiskFile {
    fn create(dir: &Path, uuid: &str, keep: bool) -> Result<DiskFile, ConvertError> {
        let path = if keep {
            dir.join(format!("{uuid}.qcow2"))
        } else {
            tempfile::Builder::new()
                .prefix(".olive2022-")
                .suffix(".qcow2")
                .tempfile_in(dir)
                .and_then(|temp| temp.into_temp_path().keep().map_err(|error| error.error))
                .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?
        };
        Ok(DiskFile { path, keep })
    }

    fn open(&self) -> Result<File, ConvertError> {
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
