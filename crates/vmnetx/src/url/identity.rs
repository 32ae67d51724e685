//! What names a VM: its canonical URL and the Sinfonia UUID derived from
//! it, as one record (`olive2022 uuid --json`).

use serde::{Deserialize, Serialize};

use super::VmnetxUrl;

/// A VM's names, `{"url": "vmnetx+https://…", "uuid": "…"}`. The download
/// URL is left out: its query may hold an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmIdentity {
    /// The canonical URL ([`VmnetxUrl::canonical`]).
    pub url: String,
    /// The Sinfonia UUID ([`VmnetxUrl::sinfonia_uuid`]), hyphenated.
    pub uuid: String,
}

impl VmnetxUrl {
    /// The canonical URL and the UUID, as one record.
    pub fn identity(&self) -> VmIdentity {
        VmIdentity {
            url: self.canonical().to_owned(),
            uuid: self.sinfonia_uuid().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identity_names_the_canonical_url_and_its_uuid() {
        let url = VmnetxUrl::parse("vmnetx://OliveArchive.org/a/../b?token=secret").unwrap();
        let identity = url.identity();
        assert_eq!(identity.url, "vmnetx+https://olivearchive.org/b");
        assert_eq!(identity.uuid, url.sinfonia_uuid().to_string());
        assert!(!format!("{identity:?}").contains("secret"));
    }
}
