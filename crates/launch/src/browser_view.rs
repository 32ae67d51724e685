//! The launch's second step in a browser: the tunnel up and the display
//! forwarded ([`Session`]), the server started, the page opened; then
//! waiting until the page has gone (after [`RELOAD_GRACE`]) or the caller
//! says stop (Ctrl-C), and the tunnel torn down.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::browser::error::BrowserError;
use crate::browser::novnc::NoVnc;
use crate::browser::opener::Opener;
use crate::browser::presence::{RELOAD_GRACE, until_page_leaves};
use crate::browser::server::BrowserServer;
use crate::cancel;
use crate::deadline::Deadline;
use crate::deploy::Deployed;
use crate::error::LaunchError;
use crate::observer::Observer;
use crate::session::{Session, in_session};

/// What the browser view needs, found before anything is deployed.
#[derive(Debug, Clone)]
pub struct Browser {
    /// noVNC's files.
    pub novnc: NoVnc,
    /// How the page is opened.
    pub opener: Opener,
}

impl Browser {
    /// noVNC in `novnc_dir` (default: Debian's) and the user's browser.
    pub fn find(novnc_dir: Option<&Path>) -> Result<Browser, BrowserError> {
        Ok(Browser {
            novnc: NoVnc::find(novnc_dir)?,
            opener: Opener::find()?,
        })
    }
}

/// How the browser view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEnded {
    /// The page disconnected and did not come back.
    Closed,
    /// The stop flag was set (Ctrl-C, SIGTERM).
    Stopped,
}

/// The whole second step in a browser: opens a [`Session`] for
/// `deployed`, serves the page until it has gone or `stop` is set (which
/// also cuts the wait for the display short: then the result is
/// [`LaunchError::Interrupted`]), then closes the session. The page must
/// connect before `deadline`.
pub fn view_in_browser(
    deployed: &Deployed,
    browser: &Browser,
    deadline: Deadline,
    observer: &mut dyn Observer,
    stop: Arc<AtomicBool>,
) -> Result<PageEnded, LaunchError> {
    in_session(
        deployed,
        deadline,
        &stop,
        observer,
        async |session, observer| {
            let ended = serve(session, browser, deadline, observer, &stop).await;
            tracing::info!(?ended, "browser view ended");
            Ok(ended?)
        },
    )
}

/// Serves the session's display to the browser until the page has gone.
async fn serve(
    session: &Session,
    browser: &Browser,
    deadline: Deadline,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<PageEnded, BrowserError> {
    let display = SocketAddr::from((Ipv4Addr::LOCALHOST, session.port()));
    let server = BrowserServer::start(browser.novnc.clone(), display).await?;
    let url = server.page_url();
    observer.status(&format!(
        "Opening the VM's screen in the browser ({}/…)",
        server.origin()
    ));
    observer.detail(&format!(
        "Starting {} {}",
        browser.opener.program().display(),
        browser.opener.args(&url).join(" ")
    ));
    browser.opener.open(&url)?;
    let page_gone = until_page_leaves(
        server.presence(),
        deadline.at().into(),
        RELOAD_GRACE,
        deadline.total().as_secs(),
    );
    let ended = tokio::select! {
        gone = page_gone => gone.map(|()| PageEnded::Closed),
        () = cancel::requested(stop) => Ok(PageEnded::Stopped),
    };
    server.shutdown();
    ended
}
