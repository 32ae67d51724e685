//! [`DiskSource`]: where a containerDisk comes from, as a command line or
//! a recipe's chart values name it.

use std::fmt;
use std::path::PathBuf;

use crate::auth::Credentials;
use crate::digest::Digest;
use crate::pull_error::PullError;
use crate::reference::{ImageReference, is_valid_tag};
use crate::source::ImageRef;

/// Where a containerDisk comes from.
#[derive(Clone)]
pub enum DiskSource {
    /// An image in a registry.
    Registry {
        /// `host[:port]`.
        registry: String,
        /// The repository, without the registry.
        repository: String,
        /// Tag or digest.
        reference: ImageRef,
        /// Credentials, if the registry needs them.
        credentials: Option<Credentials>,
        /// Plain HTTP to a registry that is not on loopback.
        insecure: bool,
    },
    /// An image in an OCI image layout directory.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// Its `org.opencontainers.image.ref.name`, or a manifest digest.
        reference: ImageRef,
    },
}

impl fmt::Debug for DiskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials' Debug hides the password.
        match self {
            DiskSource::Registry {
                registry,
                repository,
                reference,
                credentials,
                insecure,
            } => f
                .debug_struct("Registry")
                .field("registry", registry)
                .field("repository", repository)
                .field("reference", reference)
                .field("credentials", credentials)
                .field("insecure", insecure)
                .finish(),
            DiskSource::Layout { dir, reference } => f
                .debug_struct("Layout")
                .field("dir", dir)
                .field("reference", reference)
                .finish(),
        }
    }
}

impl fmt::Display for DiskSource {
    /// `registry/repository:tag`, `registry/repository@digest`,
    /// `oci:DIR:ref` or `oci:DIR@digest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = |reference: &ImageRef| match reference {
            ImageRef::Tag(_) => ':',
            ImageRef::Digest(_) => '@',
        };
        match self {
            DiskSource::Registry {
                registry,
                repository,
                reference,
                ..
            } => write!(
                f,
                "{registry}/{repository}{}{}",
                separator(reference),
                reference.as_str()
            ),
            DiskSource::Layout { dir, reference } => write!(
                f,
                "oci:{}{}{}",
                dir.display(),
                separator(reference),
                reference.as_str()
            ),
        }
    }
}

impl DiskSource {
    /// Parses `oci:DIR:REF`, `oci:DIR@sha256:…` or a registry reference
    /// `host[:port]/repository[:tag][@sha256:…]` (a digest wins over a tag;
    /// neither means `latest`).
    pub fn parse(text: &str) -> Result<DiskSource, PullError> {
        let invalid = |reason: &str| PullError::InvalidSource(format!("{text:?}: {reason}"));
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, reference) = if let Some((dir, digest)) = rest.rsplit_once('@') {
                let digest = Digest::parse(digest).map_err(|e| invalid(&e.to_string()))?;
                (dir, ImageRef::Digest(digest))
            } else {
                match rest.rsplit_once(':') {
                    Some((dir, name)) if !name.is_empty() && !name.contains('/') => {
                        (dir, ImageRef::Tag(name.to_owned()))
                    }
                    _ => return Err(invalid("expected oci:DIR:REF or oci:DIR@sha256:…")),
                }
            };
            if dir.is_empty() {
                return Err(invalid("no layout directory"));
            }
            return Ok(DiskSource::Layout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        let parsed = ImageReference::parse(text).map_err(|e| invalid(&e.to_string()))?;
        let reference = match (parsed.digest, parsed.tag) {
            (Some(digest), _) => ImageRef::Digest(digest),
            (None, Some(tag)) => ImageRef::Tag(tag),
            (None, None) => ImageRef::Tag("latest".into()),
        };
        Ok(DiskSource::Registry {
            registry: parsed.registry,
            repository: parsed.repository,
            reference,
            credentials: None,
            insecure: false,
        })
    }

    /// The source a recipe's `vmi` chart values name: `repository` (a
    /// registry and path, or `oci:DIR`), `name`, and a `digest` (preferred)
    /// or a `tag` (default `latest`; for a layout, the name is the reference
    /// name). `credentials` apply to a registry.
    pub fn from_chart_values(
        repository: &str,
        name: &str,
        tag: Option<&str>,
        digest: Option<&str>,
        credentials: Option<Credentials>,
    ) -> Result<DiskSource, PullError> {
        let digest = digest
            .map(|text| Digest::parse(text).map_err(|e| PullError::InvalidSource(e.to_string())))
            .transpose()?;
        if let Some(dir) = repository.strip_prefix("oci:") {
            if dir.is_empty() {
                return Err(PullError::InvalidSource(format!(
                    "{repository:?}: no layout directory"
                )));
            }
            let reference = match digest {
                Some(digest) => ImageRef::Digest(digest),
                None => ImageRef::Tag(name.to_owned()),
            };
            return Ok(DiskSource::Layout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        let text = format!("{}/{name}", repository.trim_end_matches('/'));
        let parsed =
            ImageReference::parse(&text).map_err(|e| PullError::InvalidSource(e.to_string()))?;
        let reference = match (digest, tag) {
            (Some(digest), _) => ImageRef::Digest(digest),
            (None, Some(tag)) if is_valid_tag(tag) => ImageRef::Tag(tag.to_owned()),
            (None, Some(tag)) => {
                return Err(PullError::InvalidSource(format!("invalid tag {tag:?}")));
            }
            (None, None) => ImageRef::Tag("latest".into()),
        };
        Ok(DiskSource::Registry {
            registry: parsed.registry,
            repository: parsed.repository,
            reference,
            credentials,
            insecure: false,
        })
    }

    /// The tag or digest the source names.
    pub fn reference(&self) -> &ImageRef {
        match self {
            DiskSource::Registry { reference, .. } | DiskSource::Layout { reference, .. } => {
                reference
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    #[test]
    fn sources_parse() {
        let digest = Digest::of(b"x");
        let layout = DiskSource::parse("oci:/var/lib/layout:1234-abcd").unwrap();
        assert!(matches!(
            &layout,
            DiskSource::Layout { dir, reference: ImageRef::Tag(name) }
                if dir == Path::new("/var/lib/layout") && name == "1234-abcd"
        ));
        assert_eq!(layout.to_string(), "oci:/var/lib/layout:1234-abcd");
        let by_digest = DiskSource::parse(&format!("oci:/l@{digest}")).unwrap();
        assert!(matches!(
            by_digest,
            DiskSource::Layout { reference: ImageRef::Digest(ref d), .. } if *d == digest
        ));
        assert!(DiskSource::parse("oci:/no/reference").is_err());
        let registry = DiskSource::parse("localhost:5000/olive/x:v1").unwrap();
        assert_eq!(registry.to_string(), "localhost:5000/olive/x:v1");
        let pinned = DiskSource::parse(&format!("localhost:5000/olive/x:v1@{digest}")).unwrap();
        assert_eq!(
            pinned.to_string(),
            format!("localhost:5000/olive/x@{digest}")
        );
        assert!(DiskSource::parse("ubuntu").is_err());

        let from_values = DiskSource::from_chart_values(
            "registry.example.org/olive2022",
            "uuid-1",
            Some("vmnetx"),
            Some(digest.as_str()),
            None,
        )
        .unwrap();
        assert_eq!(
            from_values.to_string(),
            format!("registry.example.org/olive2022/uuid-1@{digest}")
        );
        let tagged =
            DiskSource::from_chart_values("localhost:5000/o", "u", Some("t"), None, None).unwrap();
        assert_eq!(tagged.to_string(), "localhost:5000/o/u:t");
        let layout =
            DiskSource::from_chart_values("oci:/srv/layout", "uuid-1", None, None, None).unwrap();
        assert_eq!(layout.to_string(), "oci:/srv/layout:uuid-1");
        assert!(
            DiskSource::from_chart_values("localhost:5000/o", "u", None, Some("sha256:1"), None)
                .is_err()
        );
    }
}
