//! From a click on a VMNetX URL to the VM's screen, as library calls with
//! typed results:
//!
//! 1. [`deploy()`]: the VM deployed through Sinfonia tier 1 with this
//!    machine's cached key for it ([`Deployed`]); `--config-debug` and
//!    `--qrcode` stop here ([`Deployed::debug_config`], [`Deployed::qrcode`]);
//! 2. [`Session::open`]: the user-space WireGuard tunnel up (no namespace,
//!    no root, no helper binary), the VM's display answering through it
//!    ([`display`]), a local port forwarded to it;
//! 3. [`view()`]: steps 2 and a [`Viewer`] run on the forwarded port until
//!    it exits, whose exit status it returns.
//!
//! [`view_in_browser()`] is step 3 with the user's web browser instead of
//! a viewer: noVNC's page served from this process ([`browser`]).
//!
//! [`stage2()`] is the viewer side of the original's two-stage launch, with
//! the system resolver inside the original's namespace.
//!
//! The caller's stop flag ([`view()`]'s `stop`) ends the wait and the
//! viewer (SIGTERM, then SIGKILL after [`VIEWER_STOP_GRACE`]) and closes
//! the tunnel: the library polls it and installs no signal handler.
//!
//! One [`Deadline`] (`--timeout`) bounds all of it, from the deploy request
//! to the viewer's start: the request and its answer, the handshake, the
//! name lookups and the wait for the display each take what is left.
//!
//! Nothing here prints: status lines and the wait for the display go
//! through the caller's [`Observer`].
//!
//! The room: [`observer`] (what the caller sees), [`deploy`](mod@deploy)
//! (key and deployment), `debug` (the original's debug outputs),
//! [`display`] (the VM's VNC banner through the tunnel), [`plan`] (the dry
//! runs of `launch` and `stage2` as records), [`session`]
//! (tunnel, forward, viewer), [`viewer`] (finding and running VNC viewers),
//! [`browser`] (the screen in a web browser) and [`browser_view`] (the
//! second step with it), [`frontend`] (which of the
//! two shows it), [`stage2`](mod@stage2), `cancel` (stopping from
//! outside), [`error`].

pub mod browser;
pub mod browser_view;
mod cancel;
mod deadline;
mod debug;
pub mod deploy;
pub mod display;
pub mod error;
pub mod frontend;
pub mod observer;
pub mod plan;
pub mod session;
pub mod stage2;
pub mod viewer;

pub use browser::BrowserError;
pub use browser_view::{Browser, PageEnded, view_in_browser};
pub use cancel::VIEWER_STOP_GRACE;
pub use deadline::Deadline;
pub use debug::write_private;
pub use deploy::{Deployed, deploy};
pub use error::LaunchError;
pub use frontend::{BROWSER_CHOICE, Frontend};
pub use observer::{Observer, Silent, Waiting};
pub use plan::{LaunchPlan, Stage2Plan};
pub use session::{LOCAL_HOST, Session, view};
pub use stage2::{stage2, stage2_plan};
pub use viewer::{Viewer, ViewerError};
