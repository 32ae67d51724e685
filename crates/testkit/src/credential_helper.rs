//! A real Docker credential helper for tests: Debian's
//! `docker-credential-pass` over a `pass` store in a temporary directory,
//! encrypted to a throw-away GPG key without a passphrase. The helper and
//! `pass` find the store through `GNUPGHOME` and `PASSWORD_STORE_DIR`
//! ([`PassStore::env`]); the GPG agent the store starts is stopped on drop.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// The helper's name in `credHelpers` / `credsStore`.
pub const PASS_HELPER: &str = "pass";

/// A `pass` store holding registry credentials.
pub struct PassStore {
    /// The GPG home and the store.
    pub dir: tempfile::TempDir,
}

impl PassStore {
    /// A new store with its own GPG key.
    pub fn new() -> PassStore {
        let dir = tempfile::tempdir().unwrap();
        let gnupg = dir.path().join("gnupg");
        std::fs::create_dir(&gnupg).unwrap();
        // gpg refuses a home others can read.
        std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = PassStore { dir };
        #[rustfmt::skip]
        store.run("gpg", &[
            "--batch", "--passphrase", "", "--quick-gen-key",
            "olive2022 test <test@olive2022.invalid>", "default", "default", "never",
        ], b"");
        let keys = store.run("gpg", &["--list-keys", "--with-colons"], b"");
        let fingerprint = keys
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|field| !field.is_empty()))
            .unwrap_or_else(|| panic!("no key fingerprint in: {keys}"))
            .to_owned();
        store.run("pass", &["init", &fingerprint], b"");
        store
    }

    /// The variables that point `pass` and the helper at this store.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("GNUPGHOME".into(), self.dir.path().join("gnupg").into()),
            (
                "PASSWORD_STORE_DIR".into(),
                self.dir.path().join("store").into(),
            ),
        ]
    }

    /// Stores `user` and `secret` for `server_url` with
    /// `docker-credential-pass store`, as `docker login` would.
    pub fn store(&self, server_url: &str, user: &str, secret: &str) {
        let json = serde_json::json!({"ServerURL": server_url, "Username": user, "Secret": secret});
        self.run(
            "docker-credential-pass",
            &["store"],
            json.to_string().as_bytes(),
        );
    }

    /// Runs `program` on this store; panics with its output if it fails.
    fn run(&self, program: &str, args: &[&str], stdin: &[u8]) -> String {
        let mut child = Command::new(program)
            .args(args)
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{program}` ({e}): apt-get install \
                     golang-docker-credential-helpers pass gnupg"
                )
            });
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        crate::assert_succeeded(program, args, &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Default for PassStore {
    fn default() -> Self {
        PassStore::new()
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.dir.path().join("gnupg"))
            .status();
    }
}
