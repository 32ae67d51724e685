//! TLS: the CA certificates `--registry-ca` adds to the system's, and
//! recognising a failed TLS handshake among transport errors (so that it
//! becomes `RegistryError::Tls`, which is not retried).

use std::path::Path;

use reqwest::Certificate;

/// The CA certificates of a PEM file (one or more); the error says why
/// not (the caller names the file).
pub(super) fn read_ca_file(path: &Path) -> Result<Vec<Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certificates = Certificate::from_pem_bundle(&pem).map_err(|e| {
        let e = e.without_url();
        match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        }
    })?;
    if certificates.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certificates)
}

/// The TLS error under a transport error, if that is what failed. rustls
/// errors reach us wrapped in `io::Error`s (nested), whose `source()` skips
/// the error they wrap: look inside those too.
pub(super) fn tls_failure<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let mut inner = error;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = error.source();
    }
    None
}
