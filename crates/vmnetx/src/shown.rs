//! Untrusted text made safe to print: a VM's name, a URL or a server's
//! message may hold a newline that forges a second output line, a carriage
//! return that overwrites one, terminal escapes (C0 and C1 controls such as
//! U+009B), or bidirectional overrides (U+202E) that reverse what a reader
//! sees. [`Shown`] prints each of those as a visible `\u{…}` escape.

use std::fmt;

/// Displays an untrusted string with its control and bidirectional
/// formatting characters escaped.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

/// Whether `c` reorders or hides text without being a control character:
/// the bidirectional marks, embeddings, overrides and isolates. The one
/// list every crate that cleans untrusted text uses.
pub fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() || is_bidi_format(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Shown;

    #[test]
    fn controls_and_bidi_overrides_are_escaped_and_the_rest_kept() {
        let shown = Shown("Win\n3.1\r\u{9b}31m\u{202e}gpj.exe é").to_string();
        assert_eq!(shown, "Win\\u{a}3.1\\u{d}\\u{9b}31m\\u{202e}gpj.exe é");
        assert!(!shown.contains(['\n', '\r', '\u{9b}', '\u{202e}']));
    }
}
