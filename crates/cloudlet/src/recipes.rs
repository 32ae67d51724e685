//! The recipe directory, `RECIPES/<uuid>.yaml`, as the API reads it.
//!
//! Recipes are read when a request needs them, so an edit applies to the
//! next deploy, but never at the requester's pace:
//!
//! - the file is checked before it is opened (a FIFO or device is refused
//!   without blocking) and opened with `O_NONBLOCK` in case it was swapped
//!   in between, then checked again on the open file;
//! - a parsed recipe, or the reason it is unusable, is cached by the file's
//!   identity (device, inode, size, modification time), so a hostile recipe
//!   costs a parse per read slot at most, not one per request;
//! - at most [`MAX_CONCURRENT_READS`] reads run at once, on tokio's blocking
//!   pool, so a burst of requests cannot occupy the pool or multiply the
//!   parser's memory;
//! - what is wrong with a recipe is for the operator's log (an event per
//!   parse, not per request), not for the client: [`RecipeLoadError::client_detail`] says only which recipe
//!   failed, since its contents (or those of whatever file it links to)
//!   would otherwise reach anonymous clients.

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sinfonia::recipe::MAX_RECIPE_SIZE;
use sinfonia::{Recipe, RecipeError};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Most recipe reads (open, read, parse) running at once.
pub const MAX_CONCURRENT_READS: usize = 4;
/// Most recipes whose parse is remembered; the cache is emptied when full
/// (a directory of recipes is far smaller than this).
pub const MAX_CACHED_RECIPES: usize = 4096;

/// A recipe that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecipeLoadError {
    /// No `RECIPES/<uuid>.yaml`.
    #[error("no recipe for {uuid}")]
    NotFound {
        /// The backend.
        uuid: Uuid,
    },
    /// The file exists but cannot be read.
    #[error("cannot read the recipe {}: {reason}", path.display())]
    Io {
        /// The backend.
        uuid: Uuid,
        /// The recipe file.
        path: PathBuf,
        /// Why (an `io::Error` is not `Clone`, and errors are cached).
        reason: String,
    },
    /// Not a recipe: not a regular file, YAML syntax, schema, foreign tags,
    /// size, encoding.
    #[error("the recipe for {uuid} is invalid: {reason}")]
    Invalid {
        /// The backend.
        uuid: Uuid,
        /// What is wrong, from the loader.
        reason: String,
    },
    /// The blocking read task died.
    #[error("reading the recipe for {uuid} failed: {reason}")]
    Internal {
        /// The backend.
        uuid: Uuid,
        /// Why.
        reason: String,
    },
}

impl RecipeLoadError {
    /// What a client may be told: which recipe failed, never what is in it.
    /// The full error ([`std::fmt::Display`]) is for the operator's log.
    pub fn client_detail(&self) -> String {
        match self {
            RecipeLoadError::NotFound { uuid } => format!("no recipe for {uuid}"),
            RecipeLoadError::Io { uuid, .. }
            | RecipeLoadError::Invalid { uuid, .. }
            | RecipeLoadError::Internal { uuid, .. } => {
                format!("the recipe for {uuid} cannot be used; the cloudlet's log says why")
            }
        }
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
}

impl FileStamp {
    fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

type Loaded = Result<Arc<Recipe>, RecipeLoadError>;

/// The recipe directory (`RECIPES`), with its parse cache.
#[derive(Debug, Clone)]
pub struct RecipeStore {
    dir: PathBuf,
    cache: Arc<Mutex<HashMap<Uuid, (FileStamp, Loaded)>>>,
    reads: Arc<Semaphore>,
}

impl RecipeStore {
    /// Recipes in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> RecipeStore {
        RecipeStore {
            dir: dir.into(),
            cache: Arc::default(),
            reads: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a backend's recipe: `<dir>/<hyphenated uuid>.yaml` (the
    /// name comes from a parsed UUID, so it never leaves the directory).
    pub fn path(&self, uuid: Uuid) -> PathBuf {
        self.dir.join(format!("{}.yaml", uuid.hyphenated()))
    }

    /// Loads the recipe of a backend, as Sinfonia's safe loader and schema
    /// would (Python tags and unknown fields refused), waiting for a read
    /// slot and reading on tokio's blocking pool.
    pub async fn load(&self, uuid: Uuid) -> Result<Arc<Recipe>, RecipeLoadError> {
        let internal = |reason: String| RecipeLoadError::Internal { uuid, reason };
        let _slot = self
            .reads
            .acquire()
            .await
            .map_err(|e| internal(e.to_string()))?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.load_now(uuid))
            .await
            .map_err(|e| internal(e.to_string()))?
    }

    /// [`RecipeStore::load`] on the calling thread, with no read slot.
    pub fn load_now(&self, uuid: Uuid) -> Result<Arc<Recipe>, RecipeLoadError> {
        let path = self.path(uuid);
        // Follows a symbolic link, as recipes mounted from a Kubernetes
        // ConfigMap are links; what it points at must be a regular file.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RecipeLoadError::NotFound { uuid });
            }
            Err(e) => return Err(io_error(uuid, &path, &e)),
        };
        let stamp = FileStamp::of(&meta);
        if let Some(loaded) = self.cached(uuid, stamp) {
            return loaded;
        }
        let loaded = if meta.is_file() {
            read_recipe(uuid, &path)
        } else {
            Err(not_regular(uuid))
        };
        // Once per parse, not once per request.
        match &loaded {
            Ok(_) => tracing::debug!(%uuid, path = %path.display(), "recipe loaded"),
            Err(error) => {
                tracing::warn!(%uuid, path = %path.display(), %error, "recipe unusable");
            }
        }
        self.remember(uuid, stamp, loaded.clone());
        loaded
    }

    fn cached(&self, uuid: Uuid, stamp: FileStamp) -> Option<Loaded> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&uuid)
            .filter(|(known, _)| *known == stamp)
            .map(|(_, loaded)| loaded.clone())
    }

    fn remember(&self, uuid: Uuid, stamp: FileStamp, loaded: Loaded) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_RECIPES && !cache.contains_key(&uuid) {
            cache.clear();
        }
        cache.insert(uuid, (stamp, loaded));
    }
}

fn io_error(uuid: Uuid, path: &Path, error: &io::Error) -> RecipeLoadError {
    RecipeLoadError::Io {
        uuid,
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

fn not_regular(uuid: Uuid) -> RecipeLoadError {
    RecipeLoadError::Invalid {
        uuid,
        reason: "not a regular file".into(),
    }
}

/// Opens, reads and parses a recipe that was a regular file when checked.
fn read_recipe(uuid: Uuid, path: &Path) -> Loaded {
    let io_error = |e: io::Error| io_error(uuid, path, &e);
    // O_NONBLOCK: if a FIFO replaced the file since it was checked, the open
    // returns at once instead of waiting for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(not_regular(uuid));
    }
    let bytes = read_bounded(file).map_err(io_error)?;
    let invalid = |reason: String| RecipeLoadError::Invalid { uuid, reason };
    if bytes.len() > MAX_RECIPE_SIZE {
        return Err(invalid(RecipeError::TooLarge(bytes.len()).to_string()));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    Recipe::from_yaml(&text)
        .map(Arc::new)
        .map_err(|e| invalid(e.to_string()))
}

/// At most one byte more than [`MAX_RECIPE_SIZE`], so a larger file is
/// refused without being read whole.
fn read_bounded(file: File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_RECIPE_SIZE).unwrap_or(u64::MAX) + 1;
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RECIPE: &str = "chart: vmi\nversion: 0.2.0\nrestricted: false\n";

    #[test]
    fn a_parse_is_cached_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecipeStore::new(dir.path());
        let uuid = Uuid::from_u128(7);
        std::fs::write(store.path(uuid), RECIPE).unwrap();
        let first = store.load_now(uuid).unwrap();
        let second = store.load_now(uuid).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "the second load parsed again");
        std::fs::write(store.path(uuid), "chart: vmi\nversion: 0.3.0\n").unwrap();
        assert_eq!(store.load_now(uuid).unwrap().version, "0.3.0");
    }

    #[test]
    fn details_stay_out_of_the_clients_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecipeStore::new(dir.path());
        let uuid = Uuid::from_u128(8);
        std::fs::write(store.path(uuid), "root:x:0:0:secret-line\n").unwrap();
        let error = store.load_now(uuid).unwrap_err();
        assert!(!error.client_detail().contains("secret-line"));
        assert!(error.client_detail().contains(&uuid.to_string()));
    }
}
