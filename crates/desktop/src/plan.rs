//! What a dry run of `install` or `uninstall` would change, as a record:
//! each [`Level::Plan`](crate::Level::Plan) event carries a [`Change`], and
//! [`HandlerPlan`] gathers them for `olive2022 install --dry-run --json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{DESKTOP_FILE_NAME, SCHEME_TYPES};

/// One change a dry run would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write the desktop entry.
    Write(EntryFile),
    /// Remove a desktop entry (an older copy, or ours on uninstall).
    Remove(PathBuf),
    /// Edit the default handlers of [`SCHEME_TYPES`] in a `mimeapps.list`.
    DefaultHandler(DefaultHandlerChange),
    /// Refresh the MIME cache of an applications directory with
    /// `update-desktop-database`.
    Refresh(PathBuf),
}

/// A desktop entry to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFile {
    /// Where.
    pub path: PathBuf,
    /// Its whole text.
    pub text: String,
}

/// How a `mimeapps.list` would name our entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultHandlerChange {
    /// The `mimeapps.list` edited.
    pub mimeapps: PathBuf,
    /// Our desktop id, [`DESKTOP_FILE_NAME`].
    pub desktop_id: String,
    /// The MIME types concerned, [`SCHEME_TYPES`].
    pub types: Vec<String>,
    /// Whether our entry becomes their default or is taken out.
    pub edit: HandlerEdit,
}

impl DefaultHandlerChange {
    /// The `edit` of our entry for every scheme in `mimeapps`.
    pub fn new(mimeapps: PathBuf, edit: HandlerEdit) -> DefaultHandlerChange {
        DefaultHandlerChange {
            mimeapps,
            desktop_id: DESKTOP_FILE_NAME.to_owned(),
            types: SCHEME_TYPES.map(str::to_owned).to_vec(),
            edit,
        }
    }
}

/// What happens to our entry in a `mimeapps.list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerEdit {
    /// It becomes the default handler (install).
    Set,
    /// It is taken out of the list (uninstall).
    Unset,
}

/// Every change of a dry run, grouped by kind, in the order they would be
/// made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerPlan {
    /// Desktop entries it would write (install: one).
    pub write: Vec<EntryFile>,
    /// Desktop entries it would remove.
    pub remove: Vec<PathBuf>,
    /// The `mimeapps.list` edits.
    pub default_handler: Vec<DefaultHandlerChange>,
    /// Applications directories whose MIME cache it would refresh (none
    /// when `update-desktop-database` is not installed).
    pub refresh: Vec<PathBuf>,
}

impl HandlerPlan {
    /// Adds `change` to its group.
    pub fn record(&mut self, change: Change) {
        match change {
            Change::Write(file) => self.write.push(file),
            Change::Remove(path) => self.remove.push(path),
            Change::DefaultHandler(edit) => self.default_handler.push(edit),
            Change::Refresh(dir) => self.refresh.push(dir),
        }
    }
}
