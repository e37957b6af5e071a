//! Inspections: one officer's run of a checklist at one shop. Once submitted an
//! inspection is evidence and never changes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::geo::GpsFix;
use super::place::Geofence;
use super::template::ChecklistTemplate;
use crate::evidence::Evidence;
use crate::evidence::time::RecordTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// 合格
    Pass,
    /// 不合格
    Fail,
    /// 不适用
    NotApplicable,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Pass => "pass",
            ItemOutcome::Fail => "fail",
            ItemOutcome::NotApplicable => "not_applicable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub outcome: ItemOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Photo evidence ids (content hashes once the evidence pipeline exists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// 合格: every applicable item passed.
    Passed,
    /// 需整改: at least one item failed; those go into the rectification ledger.
    NeedsRectification,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::NeedsRectification => "needs_rectification",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Verdict::Passed => "合格",
            Verdict::NeedsRectification => "需整改",
        }
    }
}

/// What the officer starts with; the store fills in template items and ids.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInspection {
    pub shop_id: String,
    pub template_id: String,
    /// `None` takes the newest version this store has.
    pub template_version: Option<u32>,
    pub inspector: String,
    pub started_at: DateTime<Utc>,
    pub fix: Option<GpsFix>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    #[serde(skip)]
    pub id: String,
    pub shop_id: String,
    pub template_id: String,
    pub template_version: u32,
    pub inspector: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub started_at: DateTime<Utc>,
    #[serde(
        default,
        with = "chrono::serde::ts_milliseconds_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<GpsFix>,
    /// The item codes that applied when the inspection started (season, shop category).
    pub applicable: Vec<String>,
    #[serde(default)]
    pub items: BTreeMap<String, ItemResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The photos the items refer to, by blob hash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: Evidence,
    /// The device's clocks when the inspection started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<RecordTime>,
    /// How far the start fix was from the shop's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geofence: Option<Geofence>,
}

impl Inspection {
    /// Its items' notes, each with where it is and the most characters the
    /// form takes: what the station holds a device's record to.
    pub(crate) fn bounded_texts(&self) -> Vec<(String, &str, usize)> {
        self.items
            .iter()
            .filter_map(|(code, item)| {
                let note = item.note.as_deref()?;
                Some((format!("items.{code}.note"), note, super::MAX_NOTE_CHARS))
            })
            .collect()
    }

    pub fn is_submitted(&self) -> bool {
        self.verdict.is_some()
    }

    /// Applicable items still without a result, in template order.
    pub fn missing_items(&self) -> Vec<String> {
        self.applicable
            .iter()
            .filter(|c| !self.items.contains_key(*c))
            .cloned()
            .collect()
    }
}

/// Score 0–100: the weight of passed items over the weight of items that were
/// judged (pass or fail), rounded half up. Nothing judged scores 100.
pub fn score(template: &ChecklistTemplate, items: &BTreeMap<String, ItemResult>) -> (u32, Verdict) {
    let (mut passed, mut judged, mut failed) = (0u64, 0u64, false);
    for (code, result) in items {
        let weight = template.item(code).map_or(0, |i| u64::from(i.weight));
        match result.outcome {
            ItemOutcome::Pass => {
                passed += weight;
                judged += weight;
            }
            ItemOutcome::Fail => {
                judged += weight;
                failed = true;
            }
            ItemOutcome::NotApplicable => {}
        }
    }
    let score = if judged == 0 {
        100
    } else {
        ((passed * 200 + judged) / (judged * 2)) as u32
    };
    let verdict = if failed {
        Verdict::NeedsRectification
    } else {
        Verdict::Passed
    };
    (score, verdict)
}
