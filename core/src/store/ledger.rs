//! The rectification ledger (整改台账), derived from submitted inspections and
//! the district's escalation cases: a failed item opens an entry with a
//! deadline from its category's rule, later inspections of the item re-check
//! it (a pass closes it), and past its deadline the station escalates it into
//! a case dispatched to a department.
//!
//! Nothing here is stored: the ledger is a function of the synced documents
//! and the rules, so every device shows the same one.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, split_list, time_from_ms};
use crate::error::Result;
use crate::model::case::CaseStatus;
use crate::model::period::end_of_day_after;
use crate::model::rules::DistrictRules;
use crate::model::template::ChecklistTemplate;

/// Which shops' ledger (or score facts) to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    All,
    Shop(&'a str),
    Subdistrict(&'a str),
    /// One street's shops, within a subdistrict when it is given (a shop's
    /// rank is within its street).
    Street {
        street: &'a str,
        subdistrict: Option<&'a str>,
    },
}

impl<'a> Scope<'a> {
    /// The district, or one subdistrict.
    pub fn of_subdistrict(subdistrict: Option<&'a str>) -> Self {
        subdistrict.map_or(Scope::All, Scope::Subdistrict)
    }

    /// The condition on the shops table (aliased `s`) that picks the scope's
    /// shops, with its two parameters ?1 and ?2 ([`Scope::params`]).
    pub(crate) fn shops_sql(&self) -> &'static str {
        match self {
            Scope::All => "?1 IS NULL AND ?2 IS NULL",
            Scope::Shop(_) => "s.id = ?1 AND ?2 IS NULL",
            Scope::Subdistrict(_) => "s.subdistrict = ?1 AND ?2 IS NULL",
            Scope::Street { .. } => "s.street = ?1 AND (?2 IS NULL OR s.subdistrict = ?2)",
        }
    }

    pub(crate) fn params(&self) -> (Option<&'a str>, Option<&'a str>) {
        match *self {
            Scope::All => (None, None),
            Scope::Shop(s) | Scope::Subdistrict(s) => (Some(s), None),
            Scope::Street {
                street,
                subdistrict,
            } => (Some(street), subdistrict),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerState {
    /// 整改中
    Open,
    /// 已逾期 (not yet escalated: the station does it at its next sweep)
    Overdue,
    /// 已升级 (a district case, dispatched to a department)
    Escalated,
    /// 已整改 (a re-check passed)
    Closed,
}

impl LedgerState {
    pub fn label_zh(self) -> &'static str {
        match self {
            LedgerState::Open => "整改中",
            LedgerState::Overdue => "已逾期",
            LedgerState::Escalated => "已升级派遣",
            LedgerState::Closed => "已整改",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStepKind {
    /// 检查不合格，立整改
    Opened,
    /// 复查仍不合格
    RecheckFailed,
    /// 逾期未整改
    Overdue,
    /// 升级立案，派遣部门
    Escalated,
    /// 复查合格，整改完成
    Closed,
}

impl LedgerStepKind {
    pub fn label_zh(self) -> &'static str {
        match self {
            LedgerStepKind::Opened => "检查不合格，限期整改",
            LedgerStepKind::RecheckFailed => "复查仍不合格",
            LedgerStepKind::Overdue => "逾期未整改",
            LedgerStepKind::Escalated => "升级区级平台，派遣处置",
            LedgerStepKind::Closed => "复查合格，整改完成",
        }
    }
}

/// One step of an entry's history: what happened, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerStep {
    pub kind: LedgerStepKind,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: DateTime<Utc>,
    /// A user id, or `system` for the deadline passing.
    pub by: String,
    /// The inspection that opened, re-checked or closed the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inspection: Option<String>,
    /// The escalation case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
}

/// A rectification item (整改事项).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RectificationItem {
    /// `<inspection id>#<item code>`: the failure that opened it.
    pub id: String,
    pub shop_id: String,
    pub shop_name: String,
    pub item: String,
    pub item_text: String,
    /// The problem category (code), when the checklist item names one.
    pub category: Option<String>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub deadline: DateTime<Utc>,
    pub state: LedgerState,
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub closed_at: Option<DateTime<Utc>>,
    pub case_id: Option<String>,
    pub case_status: Option<CaseStatus>,
    /// The failing result's photos.
    pub photos: Vec<String>,
    pub steps: Vec<LedgerStep>,
}

impl RectificationItem {
    /// Put right by the deadline? (`None` while open.)
    pub fn on_time(&self) -> Option<bool> {
        self.closed_at.map(|c| c <= self.deadline)
    }

    pub(crate) fn fact(&self) -> crate::scores::RectFact {
        crate::scores::RectFact {
            opened_at: self.opened_at.timestamp_millis(),
            deadline: self.deadline.timestamp_millis(),
            closed_at: self.closed_at.map(|t| t.timestamp_millis()),
            escalated_at: self
                .steps
                .iter()
                .find(|s| s.kind == LedgerStepKind::Escalated)
                .map(|s| s.at.timestamp_millis()),
        }
    }
}

/// The deterministic id of the case escalating ledger entry `entry`.
pub(crate) fn escalation_case_id(entry: &str) -> String {
    let (inspection, item) = entry.split_once('#').unwrap_or((entry, ""));
    format!(
        "case/rect-{}-{item}",
        inspection.strip_prefix("insp/").unwrap_or(inspection)
    )
}

/// One failed result of a submitted inspection.
struct FailureRow {
    shop: String,
    code: String,
    inspection: String,
    at: i64,
    inspector: String,
    template: (String, u32),
    photos: String,
    shop_name: String,
}

impl Store {
    /// The rectification ledger of `scope` as of `now`, by shop, then item,
    /// then opening time.
    pub fn rectification_ledger(
        &self,
        scope: Scope<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RectificationItem>> {
        let rules = self.rules()?;
        self.ledger_with(&rules, scope, now)
    }

    pub(crate) fn ledger_with(
        &self,
        rules: &DistrictRules,
        scope: Scope<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RectificationItem>> {
        let failures = self.failures(scope)?;
        let escalations = self.escalations()?;
        let mut templates: HashMap<(String, u32), Option<ChecklistTemplate>> = HashMap::new();
        let mut next_pass = self.conn.prepare_cached(
            // The first later result of this item that passed: it closes the
            // entry. Walks the shop's results of the item forward by index.
            "SELECT it.inspection_id, it.submitted_at, i.inspector
             FROM inspection_items it INDEXED BY results_by_shop
             JOIN inspections i ON i.id = it.inspection_id
             WHERE it.shop_id = ?1 AND it.code = ?2 AND it.submitted_at IS NOT NULL
               AND (it.submitted_at > ?3 OR (it.submitted_at = ?3 AND it.inspection_id > ?4))
               AND it.outcome = 'pass'
             ORDER BY it.submitted_at, it.inspection_id LIMIT 1",
        )?;
        let mut out = Vec::new();
        let mut k = 0;
        while k < failures.len() {
            let f = &failures[k];
            if !templates.contains_key(&f.template) {
                let t = self.template(&f.template.0, Some(f.template.1)).ok();
                templates.insert(f.template.clone(), t);
            }
            let item = templates
                .get(&f.template)
                .and_then(|t| t.as_ref())
                .and_then(|t| t.item(&f.code));
            let category = item.and_then(|i| i.category.clone());
            let days = rules.rectification_days(category.as_deref());
            let at = time_from_ms(&f.inspection, f.at)?;
            let step = |kind, r: &FailureRow, at| LedgerStep {
                kind,
                at,
                by: r.inspector.clone(),
                inspection: Some(r.inspection.clone()),
                case_id: None,
            };
            let mut entry = RectificationItem {
                id: format!("{}#{}", f.inspection, f.code),
                shop_id: f.shop.clone(),
                shop_name: f.shop_name.clone(),
                item: f.code.clone(),
                item_text: item.map(|i| i.text.clone()).unwrap_or_default(),
                category,
                opened_at: at,
                opened_by: f.inspector.clone(),
                deadline: end_of_day_after(at, days),
                state: LedgerState::Open,
                closed_at: None,
                case_id: None,
                case_status: None,
                photos: split_list(&f.photos),
                steps: vec![step(LedgerStepKind::Opened, f, at)],
            };
            let pass: Option<(String, i64, String)> = next_pass
                .query_row(params![f.shop, f.code, f.at, f.inspection], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            // Later failures of the item before that pass are failed re-checks.
            let mut j = k + 1;
            while let Some(g) = failures.get(j) {
                let same = g.shop == f.shop && g.code == f.code;
                let before_pass = pass
                    .as_ref()
                    .is_none_or(|(id, t, _)| (g.at, g.inspection.as_str()) < (*t, id.as_str()));
                if !(same && before_pass) {
                    break;
                }
                let at = time_from_ms(&g.inspection, g.at)?;
                entry.steps.push(step(LedgerStepKind::RecheckFailed, g, at));
                j += 1;
            }
            if let Some((id, t, by)) = pass {
                let at = time_from_ms(&id, t)?;
                entry.closed_at = Some(at);
                entry.steps.push(LedgerStep {
                    kind: LedgerStepKind::Closed,
                    at,
                    by,
                    inspection: Some(id),
                    case_id: None,
                });
            }
            out.push(finish(entry, now, &escalations));
            k = j;
        }
        Ok(out)
    }

    /// Every failed result of submitted inspections in `scope`, by shop, item,
    /// time, from the index of failed results (for a subdistrict, one seek per
    /// shop: CROSS JOIN keeps the shops first).
    fn failures(&self, scope: Scope<'_>) -> Result<Vec<FailureRow>> {
        let from = match scope {
            Scope::All => "FROM inspection_items it INDEXED BY failed_results
                 JOIN inspections i ON i.id = it.inspection_id
                 WHERE ?1 IS NULL AND ?2 IS NULL"
                .to_string(),
            Scope::Shop(_) => "FROM inspection_items it INDEXED BY failed_results
                 JOIN inspections i ON i.id = it.inspection_id
                 WHERE it.shop_id = ?1 AND ?2 IS NULL"
                .to_string(),
            Scope::Subdistrict(_) | Scope::Street { .. } => format!(
                "FROM shops s CROSS JOIN inspection_items it INDEXED BY failed_results
                 JOIN inspections i ON i.id = it.inspection_id
                 WHERE {} AND it.shop_id = s.id",
                scope.shops_sql()
            ),
        };
        let sql = format!(
            "SELECT it.shop_id, it.code, it.inspection_id, it.submitted_at, i.inspector,
                    i.template_id, i.template_version, it.photos,
                    (SELECT name FROM shops WHERE id = it.shop_id)
             {from} AND it.outcome = 'fail' AND it.submitted_at IS NOT NULL
             ORDER BY it.shop_id, it.code, it.submitted_at, it.inspection_id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let (a, b) = scope.params();
        let mut rows = stmt.query(params![a, b])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(FailureRow {
                shop: r.get(0)?,
                code: r.get(1)?,
                inspection: r.get(2)?,
                at: r.get(3)?,
                inspector: r.get(4)?,
                template: (r.get(5)?, r.get(6)?),
                photos: r.get(7)?,
                shop_name: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Escalation cases by ledger entry: (case id, status, escalated at, by).
    fn escalations(&self) -> Result<BTreeMap<String, (String, CaseStatus, i64, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rectification, id, status, reported_at, reported_by FROM cases
             WHERE rectification IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(1)?;
            let status: String = r.get(2)?;
            let status = super::cases::parse_enum(&id, &status)?;
            out.insert(r.get(0)?, (id, status, r.get(3)?, r.get(4)?));
        }
        Ok(out)
    }
}

/// Adds the deadline passing and the escalation to an entry's history and
/// settles its state as of `now`.
fn finish(
    mut e: RectificationItem,
    now: DateTime<Utc>,
    escalations: &BTreeMap<String, (String, CaseStatus, i64, String)>,
) -> RectificationItem {
    let passed_deadline = e.closed_at.map_or(now > e.deadline, |c| c > e.deadline);
    if passed_deadline {
        e.steps.push(LedgerStep {
            kind: LedgerStepKind::Overdue,
            at: e.deadline,
            by: "system".into(),
            inspection: None,
            case_id: None,
        });
    }
    if let Some((case_id, status, at, by)) = escalations.get(&e.id) {
        if let Some(at) = DateTime::from_timestamp_millis(*at) {
            e.steps.push(LedgerStep {
                kind: LedgerStepKind::Escalated,
                at,
                by: by.clone(),
                inspection: None,
                case_id: Some(case_id.clone()),
            });
        }
        e.case_id = Some(case_id.clone());
        e.case_status = Some(*status);
    }
    // In time order; a stable sort keeps a step's own order on equal times.
    e.steps.sort_by_key(|s| s.at);
    e.state = if e.closed_at.is_some() {
        LedgerState::Closed
    } else if e.case_id.is_some() {
        LedgerState::Escalated
    } else if now > e.deadline {
        LedgerState::Overdue
    } else {
        LedgerState::Open
    };
    e
}
