//! noVNC's files, as Debian's `novnc` package installs them (1.3.0 in
//! Debian 12): found at run time, served read-only.
//!
//! The page is `vnc.html`; its query parameters (read by `app/ui.js`)
//! make it connect by itself (`autoconnect`), scale the screen to the
//! window (`resize=scale`) and use our WebSocket path (`path`, relative to
//! the server's root; host and port default to the page's own).
//!
//! Only regular files under the directory are served: a request path is
//! split into plain segments (no `..`, no percent escapes, no hidden
//! files), and the file found must still be under the directory once
//! symbolic links are resolved (Debian's `vnc_auto.html` links to
//! `vnc.html`).

use std::path::{Path, PathBuf};

use crate::browser::error::BrowserError;

/// Where Debian's `novnc` package puts the files.
pub const DEFAULT_NOVNC_DIR: &str = "/usr/share/novnc";
/// The page we open.
pub const PAGE: &str = "vnc.html";
/// The largest file served (noVNC's largest is about 100 KiB).
const MAX_FILE_SIZE: u64 = 4 << 20;

/// A directory holding noVNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoVnc {
    root: PathBuf,
}

/// A file to send: its bytes and content type.
#[derive(Debug)]
pub struct Asset {
    /// The file's contents.
    pub body: Vec<u8>,
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

impl NoVnc {
    /// noVNC in `dir`, or in [`DEFAULT_NOVNC_DIR`]; it must hold [`PAGE`].
    pub fn find(dir: Option<&Path>) -> Result<NoVnc, BrowserError> {
        let dir = dir.unwrap_or(Path::new(DEFAULT_NOVNC_DIR));
        let missing = || BrowserError::NoNovnc {
            dir: dir.to_owned(),
        };
        let root = std::fs::canonicalize(dir).map_err(|_| missing())?;
        if !root.join(PAGE).is_file() {
            return Err(missing());
        }
        Ok(NoVnc { root })
    }

    /// The directory (with links resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The query that makes [`PAGE`] connect to `websocket_path` (relative
    /// to the server's root) and scale the screen to the window.
    pub fn page_query(websocket_path: &str) -> String {
        // The path is a token and a fixed word: nothing to escape but `/`.
        let path = websocket_path.replace('/', "%2F");
        format!("autoconnect=true&resize=scale&reconnect=false&path={path}")
    }

    /// The file at `relative` (a URL path below the directory), or `None`
    /// when there is no such servable file.
    pub async fn asset(&self, relative: &str) -> Option<Asset> {
        let path = self.resolve(relative)?;
        let file = tokio::fs::canonicalize(&path).await.ok()?;
        let metadata = tokio::fs::metadata(&file).await.ok()?;
        if !file.starts_with(&self.root) || !metadata.is_file() || metadata.len() > MAX_FILE_SIZE {
            return None;
        }
        let body = tokio::fs::read(&file).await.ok()?;
        Some(Asset {
            body,
            content_type: content_type(&file),
        })
    }

    /// The path of `relative` below the directory, if every segment is a
    /// plain name.
    fn resolve(&self, relative: &str) -> Option<PathBuf> {
        let mut path = self.root.clone();
        for segment in relative.split('/') {
            let plain = !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
            if !plain {
                return None;
            }
            path.push(segment);
        }
        Some(path)
    }
}

/// The content type of the kinds of file noVNC has.
fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|extension| extension.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        // Module scripts must come as JavaScript, or the browser refuses.
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("oga" | "ogg") => "audio/ogg",
        Some("mp3") => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, NoVnc) {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(dir.path().join("app")).expect("app");
        std::fs::write(dir.path().join(PAGE), "<html>").expect("page");
        std::fs::write(dir.path().join("app/ui.js"), "export {}").expect("script");
        std::fs::write(dir.path().join(".hidden"), "secret").expect("hidden");
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("out.html")).expect("link");
        std::os::unix::fs::symlink(PAGE, dir.path().join("in.html")).expect("link");
        let novnc = NoVnc::find(Some(dir.path())).expect("noVNC");
        (dir, novnc)
    }

    #[tokio::test]
    async fn files_under_the_directory_are_served_with_their_type() {
        let (_dir, novnc) = fixture();
        let page = novnc.asset(PAGE).await.expect("page");
        assert_eq!(
            (page.body.as_slice(), page.content_type),
            (&b"<html>"[..], "text/html; charset=utf-8")
        );
        let script = novnc.asset("app/ui.js").await.expect("script");
        assert!(script.content_type.starts_with("text/javascript"));
        assert!(
            novnc.asset("in.html").await.is_some(),
            "a link inside is fine"
        );
    }

    #[tokio::test]
    async fn nothing_outside_it_is() {
        let (_dir, novnc) = fixture();
        for path in [
            "",
            "app",
            "app/",
            "../etc/passwd",
            "app/../vnc.html",
            ".hidden",
            "out.html",
            "%2e%2e/etc/passwd",
            "app//ui.js",
            "missing.js",
        ] {
            assert!(novnc.asset(path).await.is_none(), "{path}");
        }
    }

    #[test]
    fn a_directory_without_the_page_is_no_novnc() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let error = NoVnc::find(Some(dir.path())).expect_err("no page");
        assert!(error.to_string().contains("--novnc-dir"), "{error}");
        assert!(NoVnc::find(Some(&dir.path().join("missing"))).is_err());
    }

    #[test]
    fn the_query_connects_and_scales() {
        assert_eq!(
            NoVnc::page_query("abc/websockify"),
            "autoconnect=true&resize=scale&reconnect=false&path=abc%2Fwebsockify"
        );
    }
}
