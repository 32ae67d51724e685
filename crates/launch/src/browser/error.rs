//! What can stop the browser view: no noVNC, no browser, the local server
//! or the page never connecting.

use std::path::PathBuf;

/// The Debian package that ships noVNC's files.
pub const NOVNC_PACKAGE: &str = "novnc";

/// A failure of the browser view.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// noVNC's page is not in the directory.
    #[error(
        "noVNC is not in {} (no vnc.html): install the Debian package {NOVNC_PACKAGE} \
         or name its directory with --novnc-dir",
        dir.display()
    )]
    NoNovnc {
        /// The directory looked in.
        dir: PathBuf,
    },
    /// Neither `$BROWSER` nor `xdg-open` names a program that exists.
    #[error("no web browser found: set BROWSER or install xdg-utils (xdg-open)")]
    NoBrowser,
    /// The browser (or `xdg-open`) could not be started.
    #[error("cannot start the browser {}", program.display())]
    StartBrowser {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No random bytes for the token.
    #[error("cannot get random bytes for the page's token: {0}")]
    Random(String),
    /// The local HTTP server could not listen or failed.
    #[error("the browser view's local server failed")]
    Serve(#[source] std::io::Error),
    /// The page did not connect before the launch's deadline.
    #[error("the browser did not open the VM's page within {seconds} s of the launch")]
    NeverConnected {
        /// The launch's whole timeout.
        seconds: u64,
    },
}
