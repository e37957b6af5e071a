//! Checklist templates: versioned data, not code, because districts differ
//! (Beijing's 一核实五必查, Jinan's 门前五包) and rules change.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::required_text;
use super::shop::ShopCategory;
use crate::error::{Error, Result};

/// A duty group (包): the template's headings, e.g. 包卫生干净.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duty {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable across versions: results and statistics refer to it.
    pub code: String,
    /// What the officer reads, in Chinese.
    pub text: String,
    /// The duty group's code.
    pub duty: String,
    /// Share of the score; a positive whole number.
    pub weight: u32,
    /// A failed result must carry at least one photo.
    pub photo_on_fail: bool,
    /// Months (1–12, Beijing time) when the item applies; empty means all year.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<u8>,
    /// Shop categories the item applies to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<ShopCategory>,
    /// The problem category (code in the category table) a failure of this
    /// item is: it decides the rectification deadline and, when overdue, the
    /// department the case goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistTemplate {
    /// e.g. `beijing-1v5`; the same id across versions.
    pub id: String,
    pub version: u32,
    pub name: String,
    /// Whose rules these are, e.g. 北京市城市管理综合执法局.
    pub issuer: String,
    pub duties: Vec<Duty>,
    pub items: Vec<ChecklistItem>,
}

/// Beijing is UTC+8 all year (no daylight saving).
pub const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

impl ChecklistTemplate {
    /// The document id of one version: versions are separate, immutable documents.
    pub fn doc_id(id: &str, version: u32) -> String {
        format!("tmpl/{id}@{version}")
    }

    pub fn validated(mut self) -> Result<Self> {
        if self.id.is_empty()
            || self.id.len() > 40
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                "template.id",
                "1–40 ASCII letters, digits, '-' or '_'",
            ));
        }
        if self.version == 0 {
            return Err(Error::invalid("template.version", "versions start at 1"));
        }
        self.name = required_text("template.name", &self.name, 100)?;
        self.issuer = required_text("template.issuer", &self.issuer, 100)?;
        let mut duty_codes = BTreeSet::new();
        for (i, d) in self.duties.iter_mut().enumerate() {
            d.code = code_text(&format!("duties[{i}].code"), &d.code)?;
            d.name = required_text(&format!("duties[{i}].name"), &d.name, 50)?;
            if !duty_codes.insert(d.code.clone()) {
                return Err(Error::invalid(
                    format!("duties[{i}].code"),
                    format!("duplicate duty {}", d.code),
                ));
            }
        }
        if self.items.is_empty() {
            return Err(Error::invalid("template.items", "a checklist needs items"));
        }
        let mut codes = BTreeSet::new();
        for (i, item) in self.items.iter_mut().enumerate() {
            let f = |name: &str| format!("items[{i}].{name}");
            item.code = code_text(&f("code"), &item.code)?;
            if !codes.insert(item.code.clone()) {
                return Err(Error::invalid(
                    f("code"),
                    format!("duplicate item {}", item.code),
                ));
            }
            item.text = required_text(&f("text"), &item.text, 200)?;
            item.category = super::optional_text(&f("category"), item.category.as_deref(), 16)?;
            if !duty_codes.contains(&item.duty) {
                return Err(Error::invalid(
                    f("duty"),
                    format!("unknown duty {}", item.duty),
                ));
            }
            if item.weight == 0 || item.weight > 100 {
                return Err(Error::invalid(f("weight"), "a weight from 1 to 100"));
            }
            if let Some(m) = item.months.iter().find(|m| !(1..=12).contains(*m)) {
                return Err(Error::invalid(
                    f("months"),
                    format!("month {m} is not 1–12"),
                ));
            }
            item.months.sort_unstable();
            item.months.dedup();
            item.categories.sort_unstable();
            item.categories.dedup();
        }
        Ok(self)
    }

    pub fn item(&self, code: &str) -> Option<&ChecklistItem> {
        self.items.iter().find(|i| i.code == code)
    }

    /// The item codes that apply to a shop of `category` on `at` (Beijing's calendar).
    pub fn applicable_items(&self, category: ShopCategory, at: DateTime<Utc>) -> Vec<String> {
        let month = at.with_timezone(&BEIJING).month() as u8;
        self.items
            .iter()
            .filter(|i| i.months.is_empty() || i.months.contains(&month))
            .filter(|i| i.categories.is_empty() || i.categories.contains(&category))
            .map(|i| i.code.clone())
            .collect()
    }
}

fn code_text(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty()
        || v.len() > 32
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(Error::invalid(
            field,
            "a code is 1–32 ASCII letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(v.to_string())
}
