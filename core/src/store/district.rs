//! The district platform's work: its rules, and the station's sweep that
//! escalates overdue rectification items into dispatched cases and folds
//! duplicate reports that were filed offline into the case they repeat.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::ledger::{LedgerState, Scope, escalation_case_id};
use super::{Store, time_from_ms};
use crate::access::Role;
use crate::doc;
use crate::error::{Error, Result};
use crate::model::case::{Case, CaseSource, CaseStatus, LinkedReport, StatusChange, Whistle};
use crate::model::geo::GeoPoint;
use crate::model::rules::{DistrictRules, RULES_DOC};

/// A report waiting to be accepted, as the index has it.
struct Waiting {
    id: String,
    at: i64,
    category: String,
    shop: Option<String>,
    location: GeoPoint,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Escalation cases opened (ids).
    pub escalated: Vec<String>,
    /// (duplicate case, the open case it was folded into).
    pub folded: Vec<(String, String)>,
    /// The earliest deadline of an entry still open: until then, and until
    /// something new is stored, another sweep has nothing to do.
    pub next_deadline: Option<DateTime<Utc>>,
    /// The change feed's head after the sweep's own writes.
    pub feed_head: u64,
}

impl SweepReport {
    /// Escalated nothing and folded nothing.
    pub fn did_nothing(&self) -> bool {
        self.escalated.is_empty() && self.folded.is_empty()
    }
}

impl Store {
    /// The district's rules: the published document, or the defaults until
    /// an administrator publishes one.
    pub fn rules(&self) -> Result<DistrictRules> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM rules WHERE id = ?1")?
            .query_row([RULES_DOC], |r| r.get(0))
            .optional()?;
        match body {
            Some(b) => serde_json::from_str(&b).map_err(|e| Error::corrupt(RULES_DOC, e)),
            None => Ok(DistrictRules::default()),
        }
    }

    /// Publishes the district's rules (an administrator's act; the sync server
    /// refuses anyone else's). Every device recomputes with them once synced.
    pub fn publish_rules(&mut self, rules: DistrictRules) -> Result<()> {
        let rules = rules.validated()?;
        self.mutate(RULES_DOC, true, |_, d| doc::write_root(d, &rules))
    }

    /// The station's periodic work, as user `by` (e.g. `system`) acting as the
    /// district platform: every rectification item past its deadline without a
    /// case gets one, accepted and dispatched with a routine whistle to the
    /// department the rules name for its category (逾期未改自动汇入区级平台，
    /// 智能分派处置); every report still 已上报 that repeats an earlier open
    /// case (same category, within the rules' radius and window) is linked to
    /// it and set aside as a duplicate. Running it again changes nothing.
    pub fn sweep(&mut self, now: DateTime<Utc>, by: &str) -> Result<SweepReport> {
        let rules = self.rules()?;
        let mut report = SweepReport::default();
        for item in self.ledger_with(&rules, Scope::All, now)? {
            if item.state == LedgerState::Open {
                report.next_deadline = Some(
                    report
                        .next_deadline
                        .map_or(item.deadline, |d| d.min(item.deadline)),
                );
            }
            if item.state != LedgerState::Overdue {
                continue;
            }
            let case_id = escalation_case_id(&item.id);
            // An inspection of a shop this store does not hold cannot be
            // placed; the others still escalate.
            let shop = match self.shop(&item.shop_id) {
                Ok(shop) => shop,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let inspection_id = item.id.split_once('#').map_or("", |(i, _)| i);
            let evidence = self
                .inspection(inspection_id)
                .map(|i| i.evidence)
                .unwrap_or_default()
                .into_iter()
                .filter(|(hash, _)| item.photos.contains(hash))
                .collect();
            let category = item.category.clone().unwrap_or_else(|| item.item.clone());
            let group = self.category_group(&category)?;
            let department = rules.department_for(Some(&category), group.as_deref());
            let step = |status, note: Option<String>| StatusChange {
                status,
                at: now,
                by: by.to_string(),
                note,
                role: Some(Role::Admin),
                department: (status == CaseStatus::Dispatched).then(|| department.code.clone()),
                whistle: (status == CaseStatus::Dispatched).then_some(Whistle::Routine),
            };
            let deadline = item
                .deadline
                .with_timezone(&crate::model::template::BEIJING)
                .format("%Y-%m-%d %H:%M");
            let case = Case {
                id: String::new(),
                source: CaseSource::Rectification,
                category,
                location: shop.zone.centroid(),
                shop_id: Some(item.shop_id.clone()),
                photos: item.photos.clone(),
                description: format!(
                    "逾期未整改：{}（{}，整改期限 {deadline}）",
                    item.item_text, shop.name
                ),
                deadline: None,
                reported_by: by.to_string(),
                reported_at: now,
                subdistrict: shop.subdistrict.clone(),
                lane: shop.lane.clone(),
                history: vec![
                    step(CaseStatus::Reported, None),
                    step(CaseStatus::Accepted, Some("逾期自动立案".into())),
                    step(
                        CaseStatus::Dispatched,
                        Some(format!("智能派遣：{}", department.name)),
                    ),
                ],
                evidence,
                time: None,
                linked: Vec::new(),
                rectification: Some(item.id.clone()),
            };
            self.mutate(&case_id, true, |_, d| doc::write_root(d, &case))?;
            report.escalated.push(case_id);
        }
        // Reports still waiting, oldest first: each may repeat an earlier one.
        // The index has what the search needs; a report's document is read
        // only when it is folded (most are not, and loading each was most of
        // a sweep's time).
        let waiting: Vec<Waiting> = self
            .conn
            .prepare_cached(
                "SELECT id, reported_at, category, shop_id, lat, lon FROM cases
                 WHERE status = 'reported' AND rectification IS NULL ORDER BY reported_at, id",
            )?
            .query_map([], |r| {
                Ok(Waiting {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    category: r.get(2)?,
                    shop: r.get(3)?,
                    location: GeoPoint::new(r.get(4)?, r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        for w in waiting {
            let Some(original) = self.open_duplicate(
                &rules.duplicates,
                &w.category,
                w.shop.as_deref(),
                w.location,
                time_from_ms(&w.id, w.at)?,
                Some((w.at, &w.id)),
            )?
            else {
                continue;
            };
            let id = w.id;
            let dup = self.case(&id)?;
            if dup.status() != CaseStatus::Reported {
                continue;
            }
            let link = LinkedReport {
                source: dup.source,
                reported_by: dup.reported_by.clone(),
                reported_at: dup.reported_at,
                location: dup.location,
                photos: dup.photos.clone(),
                description: dup.description.clone(),
                evidence: dup.evidence.clone(),
            };
            let step = StatusChange {
                status: CaseStatus::Rejected,
                at: now.max(dup.replay().since),
                by: by.to_string(),
                note: Some(format!("重复上报，已并入 {original}")),
                role: Some(Role::Admin),
                department: None,
                whistle: None,
            };
            // The link and the rejection together: a sweep that fails between
            // them must not leave the report to be linked again next time.
            self.mutate_both(
                (&original, |d| doc::append(d, "linked", &link)),
                (&id, |d| doc::append(d, "history", &step)),
            )?;
            report.folded.push((id, original));
        }
        report.feed_head = self.feed_head()?;
        Ok(report)
    }

    /// Could a sweep at `now` do anything after the one that reported
    /// `last`? Only if something was stored since (a result, a report, a
    /// rules change) or an open entry's deadline has passed. The station asks
    /// this each minute so that an idle district costs one query, not a
    /// ledger pass under the store's lock.
    pub fn sweep_due(&self, last: &SweepReport, now: DateTime<Utc>) -> Result<bool> {
        Ok(self.feed_head()? != last.feed_head || last.next_deadline.is_some_and(|d| now > d))
    }

    fn category_group(&self, code: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT grp FROM categories WHERE code = ?1")?
            .query_row(params![code], |r| r.get(0))
            .optional()?)
    }
}
