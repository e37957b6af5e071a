//! The entities. Each is one small Automerge document (see `crate::doc`); these
//! structs are what the documents hold, with the validation every write passes.

pub mod case;
pub mod category;
pub mod geo;
pub mod inspection;
pub mod patrol;
pub mod period;
pub mod place;
pub mod rules;
pub mod shop;
pub mod template;
pub mod track;

use crate::error::{Error, Result};

/// Trims and checks a required piece of text. Lengths count characters, not bytes,
/// so a Chinese name of 30 characters is 30.
pub(crate) fn required_text(field: &str, value: &str, max_chars: usize) -> Result<String> {
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
    if v.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(v.to_string())
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
