//! The text of `olive2022.desktop` (Desktop Entry spec): `Exec` quoting and
//! string escapes, so the URL always reaches us as one inert argument.

use std::path::Path;

use crate::{DesktopError, Handler, SCHEME_TYPES};

/// The desktop entry that runs `exe handler URL`.
pub fn desktop_entry(exe: &Path, handler: Handler) -> Result<String, DesktopError> {
    let exe = exe
        .to_str()
        .filter(|exe| !exe.chars().any(char::is_control))
        .ok_or_else(|| {
            DesktopError::ProgramPath(format!(
                "the path of this program, {exe:?}, is not UTF-8 text without control \
                 characters, which a desktop entry needs"
            ))
        })?;
    if !Path::new(exe).is_absolute() {
        return Err(DesktopError::ProgramPath(format!(
            "the path of this program, {exe:?}, is not absolute"
        )));
    }
    if exe.contains('%') {
        // The spec wants `%%`, but GLib (and so most browsers) looks the
        // program up before expanding it and then ignores the entry.
        return Err(DesktopError::ProgramPath(format!(
            "the path of this program, {exe:?}, has a `%`, which desktop launchers do not \
             agree on: put olive2022 in a directory without one"
        )));
    }
    let (name, comment) = if handler == Handler::Convert {
        (
            "Olive 2022 (convert)",
            "Convert Olive Archive VMNetX packages to containerDisk images and Sinfonia recipes",
        )
    } else {
        (
            "Olive 2022",
            "Run Olive Archive virtual machines on a nearby cloudlet with Sinfonia",
        )
    };
    let exec = [exec_arg(exe), handler.command().to_owned(), "%u".to_owned()].join(" ");
    Ok(format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Version=1.0\n\
         Name={name}\n\
         Comment={comment}\n\
         TryExec={try_exec}\n\
         Exec={exec}\n\
         Terminal=true\n\
         NoDisplay=true\n\
         MimeType={mime}\n\
         Categories=Network;RemoteAccess;\n",
        try_exec = escape_string(exe),
        exec = escape_string(&exec),
        mime = SCHEME_TYPES.map(|mime| format!("{mime};")).concat(),
    ))
}

/// Characters that make an `Exec` argument need quoting (Desktop Entry spec,
/// "The Exec key").
const EXEC_RESERVED: &[char] = &[
    ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')',
    '`',
];

/// One literal `Exec` argument: `%` doubled, and quoted in `"…"` with
/// `"`, `` ` ``, `$` and `\` escaped when it has a reserved character.
fn exec_arg(arg: &str) -> String {
    let arg = arg.replace('%', "%%");
    if !arg.is_empty() && !arg.contains(EXEC_RESERVED) {
        return arg;
    }
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('"');
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The escapes of a value of type string (applied before `Exec` quoting is
/// undone, so a backslash of the quoting becomes `\\`).
fn escape_string(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            c => escaped.push(c),
        }
    }
    escaped
}
