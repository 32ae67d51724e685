//! The key cache: format, modes, replacement of unusable files, symlinks,
//! and interoperability with the original Python `sinfonia-tier3`
//! (`sinfonia_tier3.key_cache`), run as an oracle.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sinfonia::keys::{
    KeyCache, KeyError, KeyFormatError, KeyOrigin, KeyPair, decode_key, resolve_location,
};
use testkit::oracle_python;
use uuid::Uuid;

const UUID: Uuid = Uuid::from_u128(0x9f3c_1a2b_0000_4000_8000_0000_0000_0042);

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// Checks the file is exactly what PyYAML writes for the Python client.
fn assert_key_file(path: &Path, keys: &KeyPair) {
    let text = fs::read_to_string(path).expect("key file");
    assert_eq!(
        text,
        format!(
            "private_key: {}\npublic_key: {}\n",
            keys.private_base64(),
            keys.public_base64()
        )
    );
    assert_eq!(mode(path), 0o600, "key file mode");
}

/// No temporary files left behind.
fn assert_only_key_files(dir: &Path) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(!name.starts_with('.'), "left over: {name}");
    }
}

#[test]
fn round_trip_and_modes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = KeyCache::at(tmp.path().join("cache/sinfonia"));
    let first = cache.load_or_create(UUID).expect("create");
    assert_eq!(first.origin, KeyOrigin::Created);
    let path = cache.path_for(UUID);
    assert_eq!(
        path,
        tmp.path()
            .join("cache/sinfonia/9f3c1a2b-0000-4000-8000-000000000042")
    );
    assert_key_file(&path, &first.keys);
    assert_eq!(mode(cache.dir()), 0o700, "cache directory mode");
    assert_only_key_files(cache.dir());

    let second = cache.load_or_create(UUID).expect("load");
    assert_eq!(second.origin, KeyOrigin::Cached);
    assert_eq!(second.keys.public_bytes(), first.keys.public_bytes());
    assert_eq!(second.keys.private_base64(), first.keys.private_base64());

    // Another UUID, another key.
    let other = cache.load_or_create(Uuid::nil()).expect("other");
    assert_eq!(other.origin, KeyOrigin::Created);
    assert_ne!(other.keys.public_bytes(), first.keys.public_bytes());
}

#[test]
fn loose_modes_are_tightened() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sinfonia");
    fs::create_dir(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let cache = KeyCache::at(&dir);
    let created = cache.load_or_create(UUID).expect("create");
    assert_eq!(mode(&dir), 0o700);
    let path = cache.path_for(UUID);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = cache.load_or_create(UUID).expect("load");
    assert_eq!(loaded.origin, KeyOrigin::Cached);
    assert_eq!(loaded.keys.public_bytes(), created.keys.public_bytes());
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn unusable_files_are_replaced() {
    let valid = KeyPair::generate();
    let other = KeyPair::generate();
    let short = STANDARD.encode([7u8; 31]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "empty"),
        ("blank", "\n  \n".into(), "empty"),
        ("corrupt", "private_key: [unclosed\n".into(), "parse"),
        ("binary", "\u{0}\u{1}garbage".into(), "parse"),
        ("list", "- a\n- b\n".into(), "parse"),
        (
            "missing public",
            format!("private_key: {}\n", valid.private_base64()),
            "parse",
        ),
        (
            "short private",
            format!(
                "private_key: {short}\npublic_key: {}\n",
                valid.public_base64()
            ),
            "31 bytes",
        ),
        (
            "short public",
            format!(
                "private_key: {}\npublic_key: {short}\n",
                valid.private_base64()
            ),
            "31 bytes",
        ),
        (
            "not base64",
            format!(
                "private_key: {}\npublic_key: not*base64!\n",
                valid.private_base64()
            ),
            "not base64",
        ),
        (
            "mismatch",
            format!(
                "private_key: {}\npublic_key: {}\n",
                valid.private_base64(),
                other.public_base64()
            ),
            "does not belong",
        ),
    ];
    for (what, content, reason) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = KeyCache::at(tmp.path().join("sinfonia"));
        fs::create_dir(cache.dir()).expect("mkdir");
        let path = cache.path_for(UUID);
        fs::write(&path, &content).expect("write");
        let loaded = cache.load_or_create(UUID).expect(what);
        match &loaded.origin {
            KeyOrigin::Replaced { reason: why } => {
                assert!(why.contains(reason), "{what}: reason {why:?}")
            }
            origin => panic!("{what}: {origin:?}"),
        }
        assert_key_file(&path, &loaded.keys);
        assert_only_key_files(cache.dir());
        let again = cache.load_or_create(UUID).expect(what);
        assert_eq!(again.origin, KeyOrigin::Cached, "{what}");
        assert_eq!(again.keys.public_bytes(), loaded.keys.public_bytes());
    }
}

#[test]
fn quoted_and_urlsafe_files_are_accepted() {
    // What other YAML writers (or a hand edit) may produce: quoted scalars,
    // other key order, URL-safe encoding without padding.
    let keys = KeyPair::generate();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = KeyCache::at(tmp.path());
    let path = cache.path_for(UUID);
    let private_urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(decode_key(&keys.private_base64()).expect("decode"));
    fs::write(
        &path,
        format!(
            "# comment\npublic_key: \"{}\"\nprivate_key: '{private_urlsafe}'\n",
            keys.public_base64()
        ),
    )
    .expect("write");
    let loaded = cache.load_or_create(UUID).expect("load");
    assert_eq!(loaded.origin, KeyOrigin::Cached);
    assert_eq!(loaded.keys.public_bytes(), keys.public_bytes());
}

#[test]
fn symlinks_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = KeyCache::at(tmp.path().join("sinfonia"));
    fs::create_dir(cache.dir()).expect("mkdir");
    let target = tmp.path().join("elsewhere");
    let keys = KeyPair::generate();
    let content = format!(
        "private_key: {}\npublic_key: {}\n",
        keys.private_base64(),
        keys.public_base64()
    );
    fs::write(&target, &content).expect("write");
    let path = cache.path_for(UUID);
    std::os::unix::fs::symlink(&target, &path).expect("symlink");
    match cache.load_or_create(UUID) {
        Err(e @ KeyError::Symlink { .. }) => {
            assert!(e.to_string().contains("symbolic link"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing touched: the link and its target are as they were.
    assert!(
        fs::symlink_metadata(&path)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&target).expect("target"), content);

    // A dangling link is refused too, not written through.
    fs::remove_file(&target).expect("rm");
    assert!(matches!(
        cache.load_or_create(UUID),
        Err(KeyError::Symlink { .. })
    ));
    assert!(!target.exists());

    // So is a directory in the key file's place.
    fs::remove_file(&path).expect("rm");
    fs::create_dir(&path).expect("mkdir");
    assert!(matches!(
        cache.load_or_create(UUID),
        Err(KeyError::NotAFile { .. })
    ));
}

#[test]
fn key_encodings() {
    let keys = KeyPair::generate();
    let raw = keys.public_bytes();
    let standard = keys.public_base64();
    assert_eq!(standard.len(), 44);
    assert!(standard.ends_with('='));
    let urlsafe = keys.public_urlsafe();
    assert_eq!(urlsafe.len(), 43);
    assert!(!urlsafe.contains(['=', '+', '/']));
    for text in [
        standard.clone(),
        standard.trim_end_matches('=').to_owned(),
        urlsafe.clone(),
        format!("{urlsafe}="),
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ] {
        assert_eq!(decode_key(&text), Ok(raw), "{text}");
    }
    assert_eq!(
        decode_key(&STANDARD.encode([1u8; 31])),
        Err(KeyFormatError::Length(31))
    );
    assert_eq!(
        decode_key(&STANDARD.encode([1u8; 33])),
        Err(KeyFormatError::Length(33))
    );
    assert_eq!(decode_key("not a key!"), Err(KeyFormatError::NotBase64));
    assert_eq!(decode_key(""), Err(KeyFormatError::Empty));

    // The private key is clamped as `wg genkey` clamps it.
    let private = decode_key(&keys.private_base64()).expect("private");
    assert_eq!(private[0] & 7, 0);
    assert_eq!(private[31] & 0xc0, 0x40);
}

#[test]
fn debug_hides_the_private_key() {
    let keys = KeyPair::generate();
    let debug = format!("{keys:?}");
    assert!(debug.contains(&keys.public_base64()), "{debug}");
    assert!(!debug.contains(&keys.private_base64()), "{debug}");
    let private = keys.private_base64();
    assert!(!debug.contains(private.trim_end_matches('=')), "{debug}");
    let cached = format!(
        "{:?}",
        KeyCache::at(tempfile::tempdir().expect("tempdir").path())
            .load_or_create(UUID)
            .expect("create")
    );
    assert!(!cached.contains("private_key"), "{cached}");
}

#[test]
fn location_rules() {
    let home = Path::new("/home/visitor");
    let at = |xdg: Option<&str>, home: Option<&Path>| {
        resolve_location(xdg.map(OsStr::new), home).map_err(|e| e.to_string())
    };
    assert_eq!(
        at(Some("/var/cache/x"), Some(home)),
        Ok(PathBuf::from("/var/cache/x/sinfonia"))
    );
    for xdg in [None, Some(""), Some("relative/cache")] {
        assert_eq!(
            at(xdg, Some(home)),
            Ok(PathBuf::from("/home/visitor/.cache/sinfonia")),
            "{xdg:?}"
        );
    }
    assert!(at(None, None).is_err());
    assert_eq!(
        at(Some("/x"), None),
        Ok(PathBuf::from("/x/sinfonia")),
        "no home needed"
    );
}

// --- The original Python client as an oracle ---

/// Runs `code` in the oracle Python with the given environment; its stdout.
fn python(code: &str, env: &[(&str, &OsStr)]) -> String {
    let mut command = Command::new(oracle_python());
    command.arg("-c").arg(code);
    command.env_remove("XDG_CACHE_HOME");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run the oracle python");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const LOAD: &str = "import sys\n\
from uuid import UUID\n\
from sinfonia_tier3.key_cache import KeyCacheEntry\n\
e = KeyCacheEntry.load(UUID(sys.argv[1] if len(sys.argv) > 1 else '9f3c1a2b-0000-4000-8000-000000000042'))\n\
print(e.public_key)\n\
print(e.public_key.urlsafe)\n";

#[test]
fn python_key_is_reused_by_us() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = python(LOAD, &[("XDG_CACHE_HOME", tmp.path().as_os_str())]);
    let mut lines = out.lines();
    let public = lines.next().expect("public key").to_owned();
    let urlsafe = lines.next().expect("urlsafe key").to_owned();
    let path = tmp
        .path()
        .join("sinfonia/9f3c1a2b-0000-4000-8000-000000000042");
    let written = fs::read(&path).expect("python's key file");

    let cache = KeyCache::at(tmp.path().join("sinfonia"));
    let loaded = cache.load_or_create(UUID).expect("load");
    assert_eq!(loaded.origin, KeyOrigin::Cached);
    assert_eq!(loaded.keys.public_base64(), public);
    assert_eq!(loaded.keys.public_urlsafe(), urlsafe);
    assert_eq!(fs::read(&path).expect("key file"), written, "unchanged");
    // And our writer writes what PyYAML wrote.
    assert_key_file(&path, &loaded.keys);
}

#[test]
fn our_key_is_reused_by_python() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = KeyCache::at(tmp.path().join("sinfonia"));
    let created = cache.load_or_create(UUID).expect("create");
    let path = cache.path_for(UUID);
    let written = fs::read(&path).expect("key file");

    let out = python(LOAD, &[("XDG_CACHE_HOME", tmp.path().as_os_str())]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(created.keys.public_base64().as_str()));
    assert_eq!(lines.next(), Some(created.keys.public_urlsafe().as_str()));
    assert_eq!(fs::read(&path).expect("key file"), written, "unchanged");

    // Python derives the same public key from our private key.
    let mut child = Command::new(oracle_python())
        .arg("-c")
        .arg(
            "import sys\nfrom wireguard_tools import WireguardKey\n\
             print(WireguardKey(sys.stdin.readline().strip()).public_key())\n",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{}", created.keys.private_base64()).expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        created.keys.public_base64()
    );
}

#[test]
fn default_location_matches_python() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let code = "from xdg import xdg_cache_home\nprint(xdg_cache_home() / 'sinfonia')\n";
    for xdg in [None, Some(""), Some("relative"), Some("/abs/cache")] {
        let mut env: Vec<(&str, &OsStr)> = vec![("HOME", home.as_os_str())];
        if let Some(xdg) = xdg {
            env.push(("XDG_CACHE_HOME", OsStr::new(xdg)));
        }
        let theirs = python(code, &env);
        let ours = resolve_location(xdg.map(OsStr::new), Some(&home)).expect("location");
        assert_eq!(theirs.trim_end(), ours.to_string_lossy(), "{xdg:?}");
    }
}

#[test]
fn a_cache_directory_that_is_a_link_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A shared directory such as /tmp: sticky and writable by all.
    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).expect("mkdir");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
    let dir = tmp.path().join("sinfonia");
    std::os::unix::fs::symlink(&shared, &dir).expect("symlink");
    let cache = KeyCache::at(&dir);
    match cache.load_or_create(UUID) {
        Err(e @ KeyError::UnsafeDir { .. }) => {
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        other => panic!("a linked cache directory was used: {other:?}"),
    }
    assert_eq!(mode(&shared), 0o1777, "the link's target was changed");
    assert_eq!(fs::read_dir(&shared).expect("read").count(), 0);
}
