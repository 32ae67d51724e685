//! Keeping the disk cache under a size: entries not in use are removed,
//! least recently used first.
//!
//! An entry's last use is the modification time of its [`META_FILE`],
//! which every cache hit refreshes. An entry is removed by renaming it to a
//! hidden name first (a reader never sees half an entry), then deleting it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[cfg(test)]
use super::cache::touch;
use super::cache::{DISK_FILE, META_FILE};

/// What [`evict_lru`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eviction {
    /// The entries removed (their directory names: digest hex).
    pub removed: Vec<String>,
    /// Bytes freed.
    pub freed: u64,
    /// Bytes the cache's entries hold afterwards.
    pub remaining: u64,
}

struct Entry {
    dir: PathBuf,
    name: String,
    bytes: u64,
    last_used: SystemTime,
}

/// Removes complete entries of `cache_dir`, least recently used first,
/// until its entries hold at most `max_bytes`; never one whose disk is in
/// `in_use`. Unreadable entries are left alone.
pub fn evict_lru(cache_dir: &Path, max_bytes: u64, in_use: &[PathBuf]) -> Eviction {
    let mut entries = entries(cache_dir);
    let mut total: u64 = entries.iter().map(|entry| entry.bytes).sum();
    entries.sort_by_key(|entry| entry.last_used);
    let mut eviction = Eviction::default();
    for entry in entries {
        if total <= max_bytes {
            break;
        }
        if in_use.iter().any(|disk| disk == &entry.dir.join(DISK_FILE)) {
            continue;
        }
        if remove_entry(cache_dir, &entry.dir) {
            total -= entry.bytes;
            eviction.freed += entry.bytes;
            eviction.removed.push(entry.name);
        }
    }
    eviction.remaining = total;
    eviction
}

/// The bytes held by the complete entries of `cache_dir`.
pub fn cache_bytes(cache_dir: &Path) -> u64 {
    entries(cache_dir).iter().map(|entry| entry.bytes).sum()
}

fn entries(cache_dir: &Path) -> Vec<Entry> {
    let Ok(listing) = fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    listing
        .flatten()
        .filter_map(|item| {
            let name = item.file_name().into_string().ok()?;
            if name.starts_with('.') {
                return None;
            }
            let dir = item.path();
            let meta = fs::metadata(dir.join(META_FILE)).ok()?;
            let disk = fs::metadata(dir.join(DISK_FILE)).ok()?;
            Some(Entry {
                bytes: disk.len() + meta.len(),
                last_used: meta.modified().ok()?,
                dir,
                name,
            })
        })
        .collect()
}

fn remove_entry(cache_dir: &Path, dir: &Path) -> bool {
    let Ok(hidden) = tempfile::Builder::new()
        .prefix(".evicted-")
        .tempdir_in(cache_dir)
    else {
        return false;
    };
    let target = hidden.path().join("entry");
    if fs::rename(dir, &target).is_err() {
        return false;
    }
    // Dropping `hidden` deletes it and the entry inside.
    drop(hidden);
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn entry(cache: &Path, name: &str, bytes: usize, age_secs: u64) -> PathBuf {
        let dir = cache.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(DISK_FILE), vec![0u8; bytes]).unwrap();
        fs::write(dir.join(META_FILE), b"{}").unwrap();
        let file = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(META_FILE))
            .unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
        dir
    }

    #[test]
    fn the_least_recently_used_entries_not_in_use_go_first() {
        let cache = tempfile::tempdir().unwrap();
        let oldest = entry(cache.path(), "aaaa", 1000, 300);
        let old = entry(cache.path(), "bbbb", 1000, 200);
        let recent = entry(cache.path(), "cccc", 1000, 100);
        fs::create_dir(cache.path().join(".partial-x")).unwrap();
        let in_use = [oldest.join(DISK_FILE)];
        let eviction = evict_lru(cache.path(), 2100, &in_use);
        assert_eq!(eviction.removed, ["bbbb"]);
        assert!(oldest.exists() && recent.exists() && !old.exists());
        assert_eq!(eviction.remaining, 2004);
        // A hit makes an entry recent.
        touch(&oldest);
        let eviction = evict_lru(cache.path(), 1100, &[]);
        assert_eq!(eviction.removed, ["cccc"]);
        assert_eq!(cache_bytes(cache.path()), 1002);
        // Nothing but the entries was touched; no hidden leftovers but ours.
        let names: Vec<String> = fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| n == "aaaa" || n == ".partial-x"),
            "{names:?}"
        );
    }
}
