//! The workspace's shape, checked: no module imports a sibling that imports
//! it back, and nothing in the repository refers to files outside it.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside a crate, such as `["server", "engine"]`.
type ModPath = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files(&path, extension, found);
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
}

/// The modules of a crate's `src`, by path, with their source text.
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    let mut found = Vec::new();
    files(src, "rs", &mut found);
    let mut modules = BTreeMap::new();
    for file in found {
        let relative = file.strip_prefix(src).unwrap().with_extension("");
        let mut path: ModPath = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path.last().is_some_and(|last| last == "mod") {
            path.pop();
        }
        if path == ["lib"] || path == ["main"] || path.first().is_some_and(|p| p == "bin") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        modules.insert(path, code);
    }
    modules
}

/// Every `crate::a::b` and `super::a` path named in `code`, with braces
/// (`crate::{a, b::c}`) expanded.
fn named_paths(code: &str, module: &ModPath) -> Vec<ModPath> {
    let mut paths = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            for tail in expand(rest) {
                let mut path = base.clone();
                path.extend(tail);
                paths.push(path);
            }
        }
    }
    paths
}

fn parent(module: &ModPath) -> ModPath {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// The paths after a prefix: `a::b` or `{a, b::c}` (one level of braces).
fn expand(rest: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|part| {
                part.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|part| !part.is_empty())
            .collect()
    };
    if let Some(inner) = rest.strip_prefix('{') {
        let inner = inner.split('}').next().unwrap_or("");
        inner.split(',').map(|item| ident(item.trim())).collect()
    } else {
        vec![ident(rest)]
    }
}

#[test]
fn no_module_imports_a_sibling_that_imports_it_back() {
    let mut cycles = Vec::new();
    let mut crates = 0;
    for entry in std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .flatten()
    {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        crates += 1;
        let modules = modules(&src);
        let mut edges = BTreeSet::new();
        for (module, code) in &modules {
            for named in named_paths(code, module) {
                // The longest prefix that is a module of this crate.
                let Some(target) = (1..=named.len())
                    .rev()
                    .map(|k| named[..k].to_vec())
                    .find(|prefix| modules.contains_key(prefix))
                else {
                    continue;
                };
                let shared = module
                    .iter()
                    .zip(&target)
                    .take_while(|(a, b)| a == b)
                    .count();
                if shared == module.len() || shared == target.len() {
                    continue; // a module and its own descendant
                }
                edges.insert((module[..=shared].to_vec(), target[..=shared].to_vec()));
            }
        }
        for (from, to) in &edges {
            if from < to && edges.contains(&(to.clone(), from.clone())) {
                cycles.push(format!(
                    "{}: {} <-> {}",
                    entry.file_name().to_string_lossy(),
                    from.join("::"),
                    to.join("::")
                ));
            }
        }
    }
    assert!(crates >= 10, "found only {crates} crates");
    assert!(
        cycles.is_empty(),
        "modules importing each other: {cycles:#?}"
    );
}

#[test]
fn nothing_refers_outside_the_repository() {
    let root = workspace();
    let mut found = Vec::new();
    for extension in ["rs", "md", "sh", "toml", "py", "yaml"] {
        files(&root, extension, &mut found);
    }
    let outside = [
        "../shared",
        "/work/",
        "shared/spec",
        "shared/vectors",
        "shared/oracles",
    ];
    let this_file = Path::new(file!()).file_name().unwrap();
    // The one exception: the interoperability script installs the reference
    // systems no package registry offers from beside the repository.
    let interop = root.join("scripts/interop.sh");
    let offenders: Vec<String> = found
        .iter()
        .filter(|path| path.file_name() != Some(this_file) && **path != interop)
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            outside.iter().any(|needle| text.contains(needle))
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(found.len() > 100, "read only {} files", found.len());
    assert!(
        offenders.is_empty(),
        "files referring outside: {offenders:#?}"
    );
}
