//! The lexical layer: split the file into numbered lines and classify each one as blank,
//! a `[Section]` header or a `Key = value` entry.
//!
//! Everything that can be wrong with a line on its own (too long, not UTF-8, no `=`, a
//! malformed header) is found here; what the key and value mean is the parser's business.

use alloc::format;
use alloc::string::String;

/// The longest line accepted, in bytes, not counting the line ending.
pub const MAX_LINE_LEN: usize = 1024;

/// One line of the file, with comments and surrounding whitespace removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line<'a> {
    /// Empty, whitespace or only a comment.
    Blank,
    /// `[Name]`: the name between the brackets, trimmed.
    Section(&'a str),
    /// `Key = value`: both trimmed; the value may still be empty.
    Entry { key: &'a str, value: &'a str },
}

/// A line that could not be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BadLine {
    pub message: String,
    /// It starts with `[`: probably meant as a section header, so the lines after it
    /// belong to a section of unknown kind.
    pub header: bool,
}

/// Iterates over `(1-based line number, line or what is wrong with it)`.
///
/// Lines end at `\n`; a `\r` before it is dropped, and so is a UTF-8 byte order mark at
/// the very start of the file.
pub(super) fn lines(text: &[u8]) -> impl Iterator<Item = (usize, Result<Line<'_>, BadLine>)> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    // A final newline ends the last line; it does not start an extra (blank) one.
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&byte| byte == b'\n')
        .enumerate()
        .map(|(index, raw)| (index + 1, classify(raw)))
}

fn classify(raw: &[u8]) -> Result<Line<'_>, BadLine> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    classify_line(raw).map_err(|message| BadLine {
        message,
        header: raw.trim_ascii_start().starts_with(b"["),
    })
}

fn classify_line(raw: &[u8]) -> Result<Line<'_>, String> {
    if raw.len() > MAX_LINE_LEN {
        return Err(format!(
            "line is {} bytes long; the limit is {MAX_LINE_LEN}",
            raw.len()
        ));
    }
    let text = core::str::from_utf8(raw).map_err(|error| {
        format!(
            "line is not valid UTF-8 (bad byte at column {})",
            error.valid_up_to() + 1
        )
    })?;
    let text = strip_comment(text).trim();
    if text.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.strip_suffix(']') {
            Some(name) if !name.contains(['[', ']']) => Ok(Line::Section(name.trim())),
            _ => Err(format!(
                "malformed section header {text:?}; expected [Link], [Interface], [Peer] or [Metrics]"
            )),
        };
    }
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok(Line::Entry {
            key: key.trim(),
            value: value.trim(),
        }),
        Some(_) => Err(format!("missing key name before '=' in {text:?}")),
        None => Err(format!(
            "expected `Key = value` or a [Section] header, found {text:?}"
        )),
    }
}

/// Cuts the line at the first `#` or `;`. Neither can occur in any valid value (base64,
/// addresses, numbers), so a comment may also follow a value on the same line.
fn strip_comment(text: &str) -> &str {
    match text.find(['#', ';']) {
        Some(start) => text.get(..start).unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn all(text: &[u8]) -> Vec<(usize, Result<Line<'_>, BadLine>)> {
        lines(text).collect()
    }

    #[test]
    fn entries_sections_and_comments_are_classified() {
        let text = b"# top\n[Link]   ; note\n  Address = 10.0.2.15/24   # trailing\n\n;only\n";
        let got = all(text);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], (1, Ok(Line::Blank)));
        assert_eq!(got[1], (2, Ok(Line::Section("Link"))));
        assert_eq!(
            got[2],
            (
                3,
                Ok(Line::Entry {
                    key: "Address",
                    value: "10.0.2.15/24"
                })
            )
        );
        assert_eq!(got[3], (4, Ok(Line::Blank)));
        assert_eq!(got[4], (5, Ok(Line::Blank)));
    }

    #[test]
    fn crlf_and_byte_order_mark_are_accepted() {
        let got = all(b"\xEF\xBB\xBF[Peer]\r\nEndpoint=192.0.2.1:1\r\n");
        assert_eq!(got[0], (1, Ok(Line::Section("Peer"))));
        assert_eq!(
            got[1],
            (
                2,
                Ok(Line::Entry {
                    key: "Endpoint",
                    value: "192.0.2.1:1"
                })
            )
        );
    }

    #[test]
    fn value_may_be_empty_but_key_may_not() {
        assert_eq!(
            all(b"MTU =")[0].1,
            Ok(Line::Entry {
                key: "MTU",
                value: ""
            })
        );
        assert!(all(b" = 5")[0].1.is_err());
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(all(b"no equals sign")[0].1.is_err());
        assert!(all(b"[Link")[0].1.as_ref().is_err_and(|e| e.header));
        assert!(all(b"  [\xff]")[0].1.as_ref().is_err_and(|e| e.header));
        assert!(all(b"Link]")[0].1.as_ref().is_err_and(|e| !e.header));
        assert!(all(b"[Link] extra")[0].1.is_err());
        assert!(all(b"[[Link]]")[0].1.is_err());
        assert!(all(b"Key = \xff\xfe")[0].1.is_err());
        let long = [b'a'; MAX_LINE_LEN + 1];
        assert!(all(&long)[0].1.is_err());
        let fits = [b' '; MAX_LINE_LEN];
        assert_eq!(all(&fits)[0].1, Ok(Line::Blank));
    }
}
