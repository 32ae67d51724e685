//! `mimeapps.list` (MIME Applications Associations spec): a key-file editor
//! that changes only our own desktop id and keeps every other line verbatim.

use crate::{DESKTOP_FILE_NAME, SCHEME_TYPES};

/// The `mimeapps.list` sections that name us.
const DEFAULT_SECTION: &str = "Default Applications";
const ADDED_SECTION: &str = "Added Associations";
const REMOVED_SECTION: &str = "Removed Associations";

/// `mimeapps.list` text with us first for each scheme in the default and
/// added sections, and out of the removed associations.
pub fn register(text: &str) -> String {
    let mut list = KeyFile::parse(text);
    for mime in SCHEME_TYPES {
        for section in [DEFAULT_SECTION, ADDED_SECTION] {
            list.update(section, mime, |ids| {
                ids.retain(|id| id != DESKTOP_FILE_NAME);
                ids.insert(0, DESKTOP_FILE_NAME.to_owned());
            });
        }
        list.update(REMOVED_SECTION, mime, |ids| {
            ids.retain(|id| id != DESKTOP_FILE_NAME);
        });
    }
    list.render()
}

/// `mimeapps.list` text without us (other handlers of the schemes stay).
pub fn unregister(text: &str) -> String {
    let mut list = KeyFile::parse(text);
    for mime in SCHEME_TYPES {
        for section in [DEFAULT_SECTION, ADDED_SECTION] {
            list.update(section, mime, |ids| {
                ids.retain(|id| id != DESKTOP_FILE_NAME);
            });
        }
    }
    list.render()
}

/// The lines of a `mimeapps.list`, kept verbatim except those we change.
struct KeyFile {
    lines: Vec<String>,
}

impl KeyFile {
    fn parse(text: &str) -> KeyFile {
        KeyFile {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    fn render(&self) -> String {
        let mut text = self.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Applies `edit` to the desktop ids of `key` in every `[section]`
    /// (an absent key is an empty list); a key left empty is removed, and a
    /// new one goes after the last line of the first such section, or in a
    /// new section at the end.
    fn update(&mut self, section: &str, key: &str, edit: impl Fn(&mut Vec<String>)) {
        let mut in_section = false;
        let mut sections_seen = 0;
        let mut found = false;
        let mut insert_at = None;
        let mut index = 0;
        while index < self.lines.len() {
            let line = self.lines[index].trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_section = name == section;
                if in_section {
                    sections_seen += 1;
                    if sections_seen == 1 {
                        insert_at = Some(index + 1);
                    }
                }
                index += 1;
                continue;
            }
            if !in_section {
                index += 1;
                continue;
            }
            if sections_seen == 1 && !line.is_empty() {
                insert_at = Some(index + 1);
            }
            let entry = line.split_once('=').filter(|_| !line.starts_with('#'));
            let Some((name, value)) =
                entry.filter(|(name, _)| name.trim().eq_ignore_ascii_case(key))
            else {
                index += 1;
                continue;
            };
            found = true;
            let mut ids = split_ids(value);
            let before = ids.clone();
            edit(&mut ids);
            if ids.is_empty() && !before.is_empty() {
                // Only a found key is ever removed, and then nothing is
                // inserted, so `insert_at` may go stale.
                self.lines.remove(index);
            } else {
                if ids != before {
                    self.lines[index] = format!("{}={};", name.trim(), ids.join(";"));
                }
                index += 1;
            }
        }
        if found {
            return;
        }
        let mut ids = Vec::new();
        edit(&mut ids);
        if ids.is_empty() {
            return;
        }
        let line = format!("{key}={};", ids.join(";"));
        match insert_at {
            Some(at) => self.lines.insert(at, line),
            None => {
                if self
                    .lines
                    .last()
                    .is_some_and(|last| !last.trim().is_empty())
                {
                    self.lines.push(String::new());
                }
                self.lines.push(format!("[{section}]"));
                self.lines.push(line);
            }
        }
    }
}

fn split_ids(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}
