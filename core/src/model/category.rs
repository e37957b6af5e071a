//! The problem category table (问题分类). National codes follow CJ/T 214 /
//! GB/T 30428 where a category has one; districts add local categories.

use serde::{Deserialize, Serialize};

use super::required_text;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// This table's key, e.g. `0504`.
    pub code: String,
    /// e.g. 店外经营.
    pub name: String,
    /// The major class, e.g. 街面秩序.
    pub group: String,
    /// The code in the national standard, when the category comes from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_code: Option<String>,
    /// A district's own addition, not in the national standard.
    pub local: bool,
}

impl Category {
    pub fn doc_id(code: &str) -> String {
        format!("cat/{code}")
    }

    pub fn validated(mut self) -> Result<Self> {
        self.code = self.code.trim().to_string();
        if self.code.is_empty()
            || self.code.len() > 16
            || !self
                .code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::invalid(
                "category.code",
                "1–16 ASCII letters, digits or '-'",
            ));
        }
        self.name = required_text("category.name", &self.name, 30)?;
        self.group = required_text("category.group", &self.group, 30)?;
        if self.local == self.national_code.is_some() {
            return Err(Error::invalid(
                "category.national_code",
                "a national category carries its national code; a local one has none",
            ));
        }
        Ok(self)
    }
}
