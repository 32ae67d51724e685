//! Deployment names like Sinfonia's: two random words (`bold-tesla`).
//!
//! Sinfonia names each deployment's Kubernetes namespace with
//! `randomname`; we draw an adjective and a scientist's name. Every name is
//! a valid DNS label (lowercase letters and one `-`, well under 63
//! characters), so `<name>.svc.cluster.local` is a valid search domain.

use uuid::Uuid;

const ADJECTIVES: [&str; 64] = [
    "agile", "amber", "ample", "azure", "bold", "brave", "breezy", "bright", "brisk", "calm",
    "clever", "cosmic", "crisp", "curious", "daring", "dapper", "eager", "earnest", "fancy",
    "fearless", "fluent", "frosty", "gentle", "gleaming", "golden", "grand", "happy", "hardy",
    "honest", "humble", "jolly", "keen", "kind", "lively", "lucid", "lucky", "mellow", "merry",
    "mighty", "modest", "nimble", "noble", "patient", "plucky", "polite", "proud", "quick",
    "quiet", "rapid", "ready", "serene", "sharp", "shiny", "smooth", "snappy", "steady", "sunny",
    "swift", "tidy", "upbeat", "vivid", "warm", "witty", "zesty",
];

const NOUNS: [&str; 64] = [
    "agnesi",
    "archimedes",
    "babbage",
    "bardeen",
    "bohr",
    "boole",
    "borg",
    "bose",
    "carson",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "dirac",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goodall",
    "hamilton",
    "hawking",
    "hopper",
    "hubble",
    "hypatia",
    "johnson",
    "joule",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "leavitt",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "mirzakhani",
    "morse",
    "newton",
    "nobel",
    "noether",
    "pascal",
    "pasteur",
    "planck",
    "poincare",
    "ramanujan",
    "ritchie",
    "sagan",
    "shannon",
    "thompson",
    "tesla",
    "torvalds",
    "turing",
    "volta",
    "wiles",
    "wozniak",
    "wright",
    "yalow",
    "zuse",
];

/// A random two-word name; `taken` says which names are in use. After a
/// few collisions a number is appended (`bold-tesla-2`), so a name is
/// always found.
pub fn unique_name(taken: impl Fn(&str) -> bool) -> String {
    for _ in 0..64 {
        let name = random_name();
        if !taken(&name) {
            return name;
        }
    }
    let base = random_name();
    (2u64..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken(name))
        .unwrap_or(base)
}

/// Two random words joined by `-`.
pub fn random_name() -> String {
    // A version-4 UUID carries 122 random bits from the OS generator.
    let bits = Uuid::new_v4().as_u128();
    let adjective = ADJECTIVES[(bits % ADJECTIVES.len() as u128) as usize];
    let noun = NOUNS[((bits >> 32) % NOUNS.len() as u128) as usize];
    format!("{adjective}-{noun}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_dns_labels_and_unique() {
        let mut seen = HashSet::new();
        for _ in 0..5000 {
            let name = unique_name(|n| seen.contains(n));
            assert!(name.len() < 64);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'));
            assert!(seen.insert(name));
        }
    }
}
