//! What shows the VM's screen: a native VNC viewer or the web browser.
//!
//! The browser when asked for (`--browser`, or [`BROWSER_CHOICE`] as the
//! viewer in `--viewer` or `OLIVE2022_VIEWER`), and when no native viewer
//! is installed but noVNC and a browser are; otherwise the viewer that
//! [`viewer::find`] picks.

use std::path::Path;

use crate::browser_view::Browser;
use crate::error::LaunchError;
use crate::viewer::{self, VIEWER_ENV, Viewer, ViewerError};

/// The viewer name that means "the browser".
pub const BROWSER_CHOICE: &str = "browser";

/// The chosen way to show the screen.
#[derive(Debug, Clone)]
pub enum Frontend {
    /// A native VNC viewer.
    Viewer(Viewer),
    /// noVNC in the user's browser.
    Browser(Browser),
}

impl Frontend {
    /// Chooses: `custom` is `--viewer` (else `OLIVE2022_VIEWER` is read),
    /// `browser` is `--browser`, `novnc_dir` is `--novnc-dir`.
    pub fn choose(
        custom: Option<&str>,
        browser: bool,
        novnc_dir: Option<&Path>,
    ) -> Result<Frontend, LaunchError> {
        let from_env = std::env::var(VIEWER_ENV).ok();
        let custom = custom.or(from_env.as_deref());
        if browser || custom == Some(BROWSER_CHOICE) {
            return Ok(Frontend::Browser(Browser::find(novnc_dir)?));
        }
        match viewer::find(custom) {
            Ok(viewer) => Ok(Frontend::Viewer(viewer)),
            Err(ViewerError::NoneFound) => match Browser::find(novnc_dir) {
                Ok(browser) => {
                    tracing::info!("no VNC viewer installed: showing the VM in the browser");
                    Ok(Frontend::Browser(browser))
                }
                Err(_) => Err(ViewerError::NoneFound.into()),
            },
            Err(error) => Err(error.into()),
        }
    }
}
