//! The Sinfonia recipe of a converted VM: built from the package's facts
//! and the pushed image, written atomically, and loaded back as Sinfonia
//! would before it is trusted.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use containerdisk::Digest;
use containerdisk::reference::registry_of;
use sinfonia::Recipe;
use sinfonia::vmi::{ContainerDisk, PullCredentials, Requests, Resources, VirtVnc, VmiValues};
use vmnetx::domain::Domain;

use crate::error::{Context, ConvertError};
use crate::job::{ConvertJob, ConvertSettings, Destination, TAG};

/// The recipe deploying `job`'s image (`digest`) at `destination`.
pub fn build(
    settings: &ConvertSettings,
    job: &ConvertJob,
    (name, domain): (&str, &Domain),
    destination: &Destination,
    digest: &Digest,
) -> Recipe {
    let (repository, tag) = match destination {
        Destination::Registry(_) => (
            settings.registry.trim_end_matches('/').to_owned(),
            Some(TAG.to_owned()),
        ),
        Destination::Layout(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            (format!("oci:{}", dir.display()), None)
        }
    };
    let pull_credentials = settings.pull_credentials.as_ref();
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
            registry: registry_of(&settings.registry).to_owned(),
            username: credentials.username.clone(),
            password: credentials.password.clone(),
        }),
        machine: None,
    };
    Recipe {
        description: Some(name.to_owned()),
        chart: settings.chart.clone(),
        version: settings.chart_version.clone(),
        values: values.to_values(),
        restricted: pull_credentials.is_some(),
    }
}

/// Writes the recipe atomically (0600 when it holds credentials), after
/// loading it back as Sinfonia would and checking that nothing was lost.
pub fn write(path: &Path, recipe: &Recipe, secret: bool) -> Result<(), ConvertError> {
    let yaml = recipe.to_yaml().context("cannot write the recipe")?;
    let loaded = Recipe::from_yaml(&yaml).context("the recipe written does not load back")?;
    if &loaded != recipe || VmiValues::from_values(&loaded.values).is_err() {
        return Err(ConvertError::Invalid(
            "the recipe does not load back as written".to_owned(),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mode = if secret { 0o600 } else { 0o666 };
    let mut temp = tempfile::Builder::new()
        .prefix(".recipe-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    temp.write_all(yaml.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", temp.path().display()))?;
    temp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
