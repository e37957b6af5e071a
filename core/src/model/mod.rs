//! The entities. Each is one small Automerge document (see `crate::doc`); these
//! structs are what the documents hold, with the validation every write passes.

pub mod case;
pub mod category;
pub mod geo;
pub mod inspection;
pub mod patrol;
pub mod period;
pub mod place;
pub mod role;
pub mod rules;
pub mod shop;
pub mod template;
pub mod track;

use crate::error::{Error, Result};

/// The most characters a piece of free text may have (a case's description,
/// a note on a case or a checklist item): what the forms take, and what the
/// station takes from a device, whatever made the record.
pub const MAX_NOTE_CHARS: usize = 500;

/// The most characters of a subdistrict's, a street's or a lane's name.
pub const MAX_PLACE_CHARS: usize = 50;

/// Trims and checks a required piece of text. Lengths count characters, not bytes,
/// so a Chinese name of 30 characters is 30.
pub fn required_text(field: &str, value: &str, max_chars: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max_chars {
        return Err(Error::invalid(
            field,
            format!("longer than {max_chars} characters"),
        ));
    }
    if let Some(why) = control_in(v, false) {
        return Err(Error::invalid(field, why));
    }
    Ok(v.to_string())
}

/// Free text that may run over several lines (a description, a note): no
/// control characters but line breaks; `\r\n` is kept as `\n`.
pub(crate) fn multiline_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>> {
    let Some(v) = value.map(|v| v.replace("\r\n", "\n")) else {
        return Ok(None);
    };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if let Some(why) = control_in(v, true) {
        return Err(Error::invalid(field, why));
    }
    Ok(Some(v.to_string()))
}

/// Why `text` may not be stored: a control character (other than a line
/// break, where `lines`), which a terminal or a screen could act on.
pub fn control_in(text: &str, lines: bool) -> Option<String> {
    text.chars()
        .find(|c| c.is_control() && !(lines && *c == '\n'))
        .map(|c| format!("contains the control character U+{:04X}", u32::from(c)))
}

/// Like [`required_text`] but an empty value means "none".
pub(crate) fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => required_text(field, v, max).map(Some),
    }
}

/// A user id as the sync server issues it: short, printable, no spaces.
pub(crate) fn user_id(field: &str, value: &str) -> Result<String> {
    let v = required_text(field, value, 64)?;
    if v.chars().any(char::is_whitespace) {
        return Err(Error::invalid(field, "a user id has no spaces"));
    }
    Ok(v)
}
