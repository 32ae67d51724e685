//! A registry repository as an [`ImageSource`]: the registry client checks
//! digests; this adds the check of a blob's size against its descriptor.

use std::io::Write;

use crate::digest::Digest;
use crate::pull_error::PullError;
use crate::registry::{PushProgress, Registry, RegistryError};
use crate::source::{FetchedManifest, ImageRef, ImageSource};

/// One repository of a registry.
#[derive(Debug)]
pub(crate) struct RegistrySource {
    registry: Registry,
    repository: String,
}

impl RegistrySource {
    /// The images of `repository` in `registry`.
    pub(crate) fn new(registry: Registry, repository: &str) -> RegistrySource {
        RegistrySource {
            registry,
            repository: repository.to_owned(),
        }
    }
}

impl ImageSource for RegistrySource {
    fn manifest(&self, reference: &ImageRef) -> Result<FetchedManifest, PullError> {
        let (media_type, bytes, digest) =
            self.registry
                .pull_manifest(&self.repository, reference.as_str(), &[])?;
        Ok(FetchedManifest {
            media_type,
            bytes,
            digest,
        })
    }

    fn blob(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
        progress: &mut dyn PushProgress,
    ) -> Result<(), PullError> {
        let got = self
            .registry
            .pull_blob(&self.repository, digest, out, progress)?;
        if got != size {
            return Err(RegistryError::Protocol {
                registry: self.registry.name().to_owned(),
                message: format!("sent {got} bytes for blob {digest}, the manifest says {size}"),
            }
            .into());
        }
        Ok(())
    }
}
