//! The client's WireGuard key pairs and the key cache shared with the Python
//! `sinfonia-tier3`.
//!
//! One key pair per backend UUID, reused across launches so the cloudlet
//! recognises the client and reattaches it to its running deployment. The
//! cache lives in `$XDG_CACHE_HOME/sinfonia/<uuid>` (default
//! `~/.cache/sinfonia/<uuid>`), a YAML mapping written exactly as the Python
//! client writes it:
//!
//! ```text
//! private_key: <standard base64>
//! public_key: <standard base64>
//! ```
//!
//! The directory is created with mode 0700 and the file with mode 0600 (from
//! the moment it exists: it is written to a temporary file with that mode and
//! renamed into place). A file that does not parse, holds keys that are not
//! 32 bytes, or whose public key does not belong to its private key is
//! replaced by a fresh pair, and [`KeyOrigin::Replaced`] says why. A key file
//! that is a symbolic link is refused.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rustix::fs::OFlags;
use uuid::Uuid;

pub use x25519_dalek::{PublicKey, StaticSecret};

/// Largest key file read: a real one is about 115 bytes.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A client WireGuard (X25519) key pair.
///
/// `Debug` shows the public key only; the private key leaves this type only
/// through [`KeyPair::secret`] (for the tunnel) and
/// [`KeyPair::private_base64`] (for writing a `wg.conf`).
#[derive(Clone)]
pub struct KeyPair {
    private: StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    /// A fresh key pair from the operating system's random source, with the
    /// private key clamped as `wg genkey` and the Python client store it.
    pub fn generate() -> KeyPair {
        let mut bytes = StaticSecret::random().to_bytes();
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        KeyPair::from_private_bytes(bytes)
    }

    /// The key pair of a private key (kept as given; X25519 clamps on use).
    pub fn from_private_bytes(private: [u8; 32]) -> KeyPair {
        let private = StaticSecret::from(private);
        let public = PublicKey::from(&private);
        KeyPair { private, public }
    }

    /// The private key, for the WireGuard implementation (boringtun takes an
    /// x25519-dalek 2 `StaticSecret`).
    pub fn secret(&self) -> &StaticSecret {
        &self.private
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The public key's 32 bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The public key in standard base64 (`wg pubkey`, the key file).
    pub fn public_base64(&self) -> String {
        encode_key(self.public.as_bytes())
    }

    /// The public key in URL-safe base64 without padding, as the deploy URL
    /// carries it.
    pub fn public_urlsafe(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public.as_bytes())
    }

    /// The private key in standard base64. Only for writing a `wg.conf` or
    /// the key file: never log it or pass it on a command line.
    pub fn private_base64(&self) -> String {
        encode_key(self.private.as_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public_base64())
            .field("private", &"(hidden)")
            .finish()
    }
}

/// A WireGuard key in standard base64, as `wg` and the Python client write it.
pub fn encode_key(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

/// A public key shortened for logs: its first 8 URL-safe base64
/// characters and `…`, enough to tell clients apart, too short to be used.
pub fn short_key(key: &[u8; 32]) -> String {
    let mut short: String = URL_SAFE_NO_PAD.encode(key).chars().take(8).collect();
    short.push('…');
    short
}

/// Decodes a WireGuard key as the Python client accepts it: standard or
/// URL-safe base64, with or without `=` padding, or 64 hexadecimal digits;
/// the result must be exactly 32 bytes.
pub fn decode_key(text: &str) -> Result<[u8; 32], KeyFormatError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if text.is_empty() {
        return Err(KeyFormatError::Empty);
    }
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            let pair = &text[2 * i..2 * i + 2];
            *byte = u8::from_str_radix(pair, 16).map_err(|_| KeyFormatError::NotBase64)?;
        }
        return Ok(key);
    }
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = LENIENT
        .decode(standard.as_bytes())
        .map_err(|_| KeyFormatError::NotBase64)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyFormatError::Length(bytes.len()))
}

/// A WireGuard key that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// The empty string.
    #[error("the key is empty")]
    Empty,
    /// Not base64 (standard or URL-safe) nor 64 hex digits.
    #[error("the key is not base64")]
    NotBase64,
    /// Decodes, but not to 32 bytes.
    #[error("the key is {0} bytes long, not 32")]
    Length(usize),
}

/// Where [`KeyCache::load_or_create`] got its key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from the cache.
    Cached,
    /// No key file yet: a new pair was created and stored.
    Created,
    /// The key file was unusable and has been replaced by a new pair (the
    /// cloudlet will treat us as a new client).
    Replaced {
        /// Why the old file was unusable.
        reason: String,
    },
}

/// A key pair from the cache, and where it came from.
#[derive(Debug, Clone)]
pub struct CachedKey {
    /// The key pair.
    pub keys: KeyPair,
    /// Cached, created or replaced.
    pub origin: KeyOrigin,
}

/// The key cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither `XDG_CACHE_HOME` nor the home directory is known.
    #[error(
        "cannot locate the key cache: the home directory is unknown (set HOME or XDG_CACHE_HOME)"
    )]
    NoHome,
    /// The key file is a symbolic link, which we refuse to follow.
    #[error("refusing to use the key file {}: it is a symbolic link", path.display())]
    Symlink {
        /// The key file.
        path: PathBuf,
    },
    /// The key file is a directory, device, socket, …
    #[error("refusing to use the key file {}: it is not a regular file", path.display())]
    NotAFile {
        /// The key file.
        path: PathBuf,
    },
    /// The cache directory cannot be trusted with private keys.
    #[error("refusing to keep keys in {}: {reason}", path.display())]
    UnsafeDir {
        /// The cache directory.
        path: PathBuf,
        /// Why (a symbolic link, another user's, not a directory).
        reason: &'static str,
    },
    /// The file system refused.
    #[error("key cache {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directory of per-UUID key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCache {
    dir: PathBuf,
}

/// What reading a key file found.
enum Found {
    Missing,
    Valid(KeyPair),
    Invalid(String),
}

impl KeyCache {
    /// The cache the Python client uses: `$XDG_CACHE_HOME/sinfonia`, or
    /// `~/.cache/sinfonia` when `XDG_CACHE_HOME` is unset, empty or relative.
    pub fn default_location() -> Result<KeyCache, KeyError> {
        let xdg = std::env::var_os("XDG_CACHE_HOME");
        let home = std::env::home_dir();
        Ok(KeyCache::at(resolve_location(
            xdg.as_deref(),
            home.as_deref(),
        )?))
    }

    /// A cache in `dir` (the directory holding the `<uuid>` files).
    pub fn at(dir: impl Into<PathBuf>) -> KeyCache {
        KeyCache { dir: dir.into() }
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key file of `uuid`.
    pub fn path_for(&self, uuid: Uuid) -> PathBuf {
        self.dir.join(uuid.hyphenated().to_string())
    }

    /// The key pair of `uuid`: the cached one, or a new one stored in the
    /// cache (replacing an unusable file).
    pub fn load_or_create(&self, uuid: Uuid) -> Result<CachedKey, KeyError> {
        self.ensure_dir()?;
        let path = self.path_for(uuid);
        // Two rounds: if another process creates the file between our read
        // and our write, we take its key rather than overwrite it.
        for _ in 0..2 {
            match read_key_file(&path)? {
                Found::Valid(keys) => {
                    return Ok(CachedKey {
                        keys,
                        origin: KeyOrigin::Cached,
                    });
                }
                Found::Invalid(reason) => {
                    let keys = KeyPair::generate();
                    self.install(&path, &keys, true)?;
                    tracing::warn!(
                        %uuid,
                        path = %path.display(),
                        // Not the reason: a parse error may quote the file,
                        // and the file holds a private key.
                        public_key = %short_key(&keys.public_bytes()),
                        "replaced an unusable cached key"
                    );
                    return Ok(CachedKey {
                        keys,
                        origin: KeyOrigin::Replaced { reason },
                    });
                }
                Found::Missing => {
                    let keys = KeyPair::generate();
                    if self.install(&path, &keys, false)? {
                        tracing::info!(
                            %uuid,
                            path = %path.display(),
                            public_key = %short_key(&keys.public_bytes()),
                            "created a key for this VM"
                        );
                        return Ok(CachedKey {
                            keys,
                            origin: KeyOrigin::Created,
                        });
                    }
                }
            }
        }
        let keys = KeyPair::generate();
        self.install(&path, &keys, true)?;
        Ok(CachedKey {
            keys,
            origin: KeyOrigin::Created,
        })
    }

    /// Creates the cache directory with mode 0700 (its parents with the
    /// default mode, as Python's `mkdir(mode=0o700, parents=True)`), and
    /// tightens an existing one that others can read, but only when it is
    /// a real directory of this user's: a symbolic link is refused (its
    /// target, say a shared 1777 directory, is never changed), as is
    /// another user's directory.
    fn ensure_dir(&self) -> Result<(), KeyError> {
        let dir = &self.dir;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(dir)(e)),
        }
        let unsafe_dir = |reason| KeyError::UnsafeDir {
            path: dir.to_owned(),
            reason,
        };
        // O_NOFOLLOW | O_DIRECTORY: the directory itself, never a link's
        // target, and the mode is changed on this open descriptor, so
        // nothing swapped in after the check is touched.
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags((OFlags::NOFOLLOW | OFlags::DIRECTORY).bits() as i32)
            .open(dir);
        let handle = match opened {
            Ok(handle) => handle,
            Err(e) => {
                let refused = [rustix::io::Errno::LOOP, rustix::io::Errno::NOTDIR]
                    .map(|errno| Some(errno.raw_os_error()))
                    .contains(&e.raw_os_error());
                if !refused {
                    return Err(io_error(dir)(e));
                }
                let is_link = fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
                return Err(unsafe_dir(if is_link {
                    "it is a symbolic link"
                } else {
                    "it is not a directory"
                }));
            }
        };
        let meta = handle.metadata().map_err(io_error(dir))?;
        if meta.uid() != rustix::process::getuid().as_raw() {
            return Err(unsafe_dir("it belongs to another user"));
        }
        if meta.mode() & 0o077 != 0 {
            handle
                .set_permissions(fs::Permissions::from_mode(0o700))
                .map_err(io_error(dir))?;
        }
        Ok(())
    }

    /// Writes `keys` to a new mode-0600 temporary file and moves it to
    /// `path`: replacing what is there when `replace`, otherwise only if
    /// nothing is (returns false when something is).
    fn install(&self, path: &Path, keys: &KeyPair, replace: bool) -> Result<bool, KeyError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tmp, mut file) = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = self
                .dir
                .join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(file) => break (tmp, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error(&tmp)(e)),
            }
        };
        let result = write_key_file(&mut file, keys)
            .map_err(io_error(&tmp))
            .and_then(|()| {
                drop(file);
                move_into_place(&tmp, path, replace)
            });
        // Gone after a rename; left over after a hard link or a failure.
        let _ = fs::remove_file(&tmp);
        result
    }
}

/// The key cache directory from `XDG_CACHE_HOME` and the home directory,
/// resolved as the Python `xdg` package does: `XDG_CACHE_HOME` counts only
/// when it is set, non-empty and absolute; otherwise `~/.cache`. The result
/// is that directory plus `sinfonia`.
pub fn resolve_location(
    xdg_cache_home: Option<&OsStr>,
    home: Option<&Path>,
) -> Result<PathBuf, KeyError> {
    let base = match xdg_cache_home.map(Path::new) {
        Some(xdg) if xdg.is_absolute() => xdg.to_owned(),
        _ => match home {
            Some(home) if home.is_absolute() => home.join(".cache"),
            _ => return Err(KeyError::NoHome),
        },
    };
    Ok(base.join("sinfonia"))
}

fn write_key_file(file: &mut File, keys: &KeyPair) -> io::Result<()> {
    // Exactly what PyYAML's `yaml.dump` writes for the Python client's
    // dict (keys sorted; base64 needs no quoting).
    let text = format!(
        "private_key: {}\npublic_key: {}\n",
        keys.private_base64(),
        keys.public_base64()
    );
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Moves `tmp` to `path`. Without `replace`, uses a hard link so that an
/// existing file is never overwritten (false when one exists); file systems
/// without hard links fall back to a rename.
fn move_into_place(tmp: &Path, path: &Path, replace: bool) -> Result<bool, KeyError> {
    if !replace {
        match fs::hard_link(tmp, path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(_) => {}
        }
    }
    fs::rename(tmp, path).map_err(io_error(path))?;
    Ok(true)
}

/// Reads a key file without following a symbolic link.
fn read_key_file(path: &Path) -> Result<Found, KeyError> {
    let before = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io_error(path)(e)),
    };
    if before.file_type().is_symlink() {
        return Err(KeyError::Symlink {
            path: path.to_owned(),
        });
    }
    if !before.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(io_error(path)(e)),
    };
    // The file we opened must be the one we looked at: a symbolic link
    // swapped in between would show another inode.
    let opened = file.metadata().map_err(io_error(path))?;
    if opened.dev() != before.dev() || opened.ino() != before.ino() {
        return Err(KeyError::Symlink {
            path: path.to_owned(),
        });
    }
    if opened.mode() & 0o077 != 0 {
        let _ = file.set_permissions(fs::Permissions::from_mode(0o600));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Ok(Found::Invalid("the file is too large".into()));
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Found::Invalid("the file is not text".into()));
    };
    Ok(match parse_key_file(&text) {
        Ok(keys) => Found::Valid(keys),
        Err(reason) => Found::Invalid(reason),
    })
}

#[derive(serde::Deserialize)]
struct KeyFile {
    private_key: String,
    public_key: String,
}

/// Parses a key file's YAML; the error says what is wrong with it.
fn parse_key_file(text: &str) -> Result<KeyPair, String> {
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    let file: KeyFile =
        serde_saphyr::from_str(text).map_err(|e| format!("the file does not parse: {e}"))?;
    let private = decode_key(&file.private_key).map_err(|e| format!("private_key: {e}"))?;
    let public = decode_key(&file.public_key).map_err(|e| format!("public_key: {e}"))?;
    let keys = KeyPair::from_private_bytes(private);
    if keys.public_bytes() != public {
        return Err("public_key does not belong to private_key".into());
    }
    Ok(keys)
}
