//! The VM's screen in a web browser, with no viewer installed and no
//! other process: noVNC's page (Debian's `novnc` package) served from this
//! process, its WebSocket bridged to the forwarded port of the
//! [`Session`](crate::Session).
//!
//! The room: [`guard`] (who may ask: token, `Host`, `Origin`), [`novnc`]
//! (finding and serving noVNC's files), [`bridge`] (one WebSocket to the
//! display), [`presence`] (whether the page is there, the reload grace),
//! [`server`] (the HTTP server tying them together), [`connections`]
//! (its connections, bounded in number and header time), [`opener`]
//! (`$BROWSER`, `xdg-open`), [`error`]. The launch's second step with all
//! of it is [`crate::browser_view`], outside this room: it speaks the
//! launch's errors, which wrap this room's.

pub mod bridge;
pub mod connections;
pub mod error;
pub mod guard;
pub mod novnc;
pub mod opener;
pub mod presence;
pub mod server;

pub use error::BrowserError;
pub use server::BrowserServer;
