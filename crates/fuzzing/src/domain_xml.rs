//! `domain.xml`: the libvirt domain description inside a package.

use vmnetx::domain::Domain;

/// Parses `data` as a libvirt domain document (when it is UTF-8, as the
/// package reader requires) and reads every fact of the result.
pub fn domain_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(domain) = Domain::parse(text) {
        // The derived figures must be computable for any accepted domain.
        let _ = domain.memory_mib();
        let _ = format!("{domain:?}");
    }
}
