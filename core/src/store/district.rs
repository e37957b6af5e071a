//! The district platform's work: its rules, and the station's sweep that
//! escalates overdue rectification items into dispatched cases and folds
//! duplicate reports that were filed offline into the case they repeat.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::ledger::{LedgerState, RectificationItem, Scope, escalation_case_id};
use super::{Store, commit, get_meta, set_meta, time_from_ms};
use crate::access::Role;
use crate::doc;
use crate::error::{Error, Result};
use crate::model::case::{Case, CaseSource, CaseStatus, LinkedReport, StatusChange, Whistle};
use crate::model::geo::GeoPoint;
use crate::model::rules::{DistrictRules, DuplicateRule, RULES_DOC};

/// A case as the duplicate search reads it from the index.
#[derive(Debug)]
struct Waiting {
    id: String,
    at: i64,
    category: String,
    shop: Option<String>,
    location: GeoPoint,
    /// Still 已上报: it may be folded.
    waiting: bool,
    /// Neither rejected nor closed: it may be folded into.
    open: bool,
}

fn waiting_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Waiting> {
    Ok(Waiting {
        id: r.get(0)?,
        at: r.get(1)?,
        category: r.get(2)?,
        shop: r.get(3)?,
        location: GeoPoint::new(r.get(4)?, r.get(5)?),
        waiting: r.get(6)?,
        open: r.get(7)?,
    })
}

/// Where the duplicate search has read the change feed up to.
const SWEEP_CURSOR: &str = "sweep.cases";

/// Half the sides (degrees of latitude, of longitude) of the box around `at`
/// that holds every point within the rule's radius.
pub(crate) fn search_box(rule: &DuplicateRule, at: GeoPoint) -> (f64, f64) {
    const M_PER_DEG: f64 = 111_320.0;
    let lon_scale = at.lat.to_radians().cos().max(0.01);
    (
        rule.radius_m / M_PER_DEG * 1.01,
        rule.radius_m / (M_PER_DEG * lon_scale) * 1.01,
    )
}

/// A sweep under way (see [`Store::start_sweep`]).
#[derive(Debug)]
pub struct Sweep {
    now: DateTime<Utc>,
    by: String,
    rules: DistrictRules,
    overdue: std::collections::VecDeque<RectificationItem>,
    /// The changed cases of the page read last that are still to be looked
    /// at (a slice may end in the middle of a page).
    page: std::collections::VecDeque<String>,
    /// Reports that may fold, by (time, id), from the page of changed cases
    /// read last; the cursor moves to `page_end` once they are done.
    candidates: std::collections::BTreeMap<(i64, String), Waiting>,
    page_end: Option<i64>,
    /// What it has done so far.
    pub report: SweepReport,
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
        let mut sweep = self.start_sweep(now, by)?;
        while !self.continue_sweep(&mut sweep, None)? {}
        Ok(sweep.report)
    }

    /// Begins a sweep: reads the ledger for what is overdue. The station then
    /// calls [`Store::continue_sweep`] with a time budget, letting other work
    /// in between, so a long sweep never holds the store for long.
    pub fn start_sweep(&self, now: DateTime<Utc>, by: &str) -> Result<Sweep> {
        let rules = self.rules()?;
        let mut report = SweepReport::default();
        let mut overdue = std::collections::VecDeque::new();
        for item in self.ledger_with(&rules, Scope::All, now)? {
            if item.state == LedgerState::Open {
                report.next_deadline = Some(
                    report
                        .next_deadline
                        .map_or(item.deadline, |d| d.min(item.deadline)),
                );
            }
            if item.state == LedgerState::Overdue {
                overdue.push_back(item);
            }
        }
        Ok(Sweep {
            now,
            by: by.to_string(),
            rules,
            overdue,
            page: std::collections::VecDeque::new(),
            candidates: std::collections::BTreeMap::new(),
            page_end: None,
            report,
        })
    }

    /// Does some of a sweep's work, each escalation and each fold in its own
    /// transaction, until `budget` is spent (or all of it without one).
    /// Returns whether the sweep is finished. Duplicate search is
    /// incremental: only cases changed since the last sweep (the change feed
    /// after a cursor kept in `meta`) can make a new fold, as the duplicate or,
    /// for a report filed late, as the earlier report others repeat.
    pub fn continue_sweep(
        &mut self,
        sweep: &mut Sweep,
        budget: Option<std::time::Duration>,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        let spent = || budget.is_some_and(|b| started.elapsed() >= b);
        while let Some(item) = sweep.overdue.pop_front() {
            if let Some(id) = self.escalate(sweep, &item)? {
                sweep.report.escalated.push(id);
            }
            if spent() {
                return Ok(false);
            }
        }
        const PAGE: i64 = 200;
        loop {
            // Each changed case of the page may be a duplicate itself, and
            // reports after it nearby may repeat it: all of them are gathered
            // before any is folded, so folds go oldest report first.
            while let Some(id) = sweep.page.pop_front() {
                if let Some(w) = self.waiting_case(&id)? {
                    for later in self.reports_repeating(&sweep.rules.duplicates, &w)? {
                        sweep.candidates.insert((later.at, later.id.clone()), later);
                    }
                    if w.waiting {
                        sweep.candidates.insert((w.at, w.id.clone()), w);
                    }
                }
                if spent() {
                    return Ok(false);
                }
            }
            // Folds found in the page, oldest report first, one at a time.
            while let Some((_, w)) = sweep.candidates.pop_first() {
                if let Some(folded) = self.fold(sweep, w)? {
                    sweep.report.folded.push(folded);
                }
                if spent() {
                    return Ok(false);
                }
            }
            // That page is done: the cursor moves past it.
            if let Some(last) = sweep.page_end.take() {
                let tx = self.conn.transaction()?;
                set_meta(&tx, SWEEP_CURSOR, &last.to_string())?;
                commit(tx)?;
            }
            let cursor: i64 = get_meta(&self.conn, SWEEP_CURSOR)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            // The cases changed after the cursor, a page at a time.
            let changed: Vec<(i64, String)> = self
                .conn
                .prepare_cached(
                    "SELECT seq, doc_id FROM changes
                     WHERE seq > ?1 AND doc_id >= 'case/' AND doc_id < 'case0'
                     ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![cursor, PAGE], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let Some(&(last, _)) = changed.last() else {
                sweep.report.feed_head = self.feed_head()?;
                return Ok(true);
            };
            let mut ids: Vec<String> = changed.into_iter().map(|(_, id)| id).collect();
            ids.sort();
            ids.dedup();
            sweep.page = ids.into();
            sweep.page_end = Some(last);
            if spent() {
                return Ok(false);
            }
        }
    }

    /// Opens the escalation case of an overdue item (`None` when its shop is
    /// not in this store).
    fn escalate(&mut self, sweep: &Sweep, item: &RectificationItem) -> Result<Option<String>> {
        let (now, by, rules) = (sweep.now, sweep.by.as_str(), &sweep.rules);
        let case_id = escalation_case_id(&item.id);
        // An inspection of a shop this store does not hold cannot be
        // placed; the others still escalate.
        let shop = match self.shop(&item.shop_id) {
            Ok(shop) => shop,
            Err(Error::NotFound { .. }) => return Ok(None),
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
        Ok(Some(case_id))
    }

    /// A case as the duplicate search sees it, if it can take part in one
    /// (not a rectification escalation).
    fn waiting_case(&self, id: &str) -> Result<Option<Waiting>> {
        self.conn
            .prepare_cached(
                "SELECT id, reported_at, category, shop_id, lat, lon, status = 'reported',
                        status NOT IN ('rejected', 'closed')
                 FROM cases WHERE id = ?1 AND rectification IS NULL",
            )?
            .query_row([id], waiting_from_row)
            .optional()
            .map_err(Into::into)
    }

    /// Reports still waiting that were filed after `original` near it, in its
    /// category, within the rules' window: each may repeat it.
    fn reports_repeating(&self, rule: &DuplicateRule, original: &Waiting) -> Result<Vec<Waiting>> {
        if !original.open {
            return Ok(Vec::new());
        }
        let (dlat, dlon) = search_box(rule, original.location);
        let hours = f64::from(rule.window_hours);
        let at_h = original.at as f64 / 3_600_000.0;
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.reported_at, c.category, c.shop_id, c.lat, c.lon,
                    c.status = 'reported', c.status NOT IN ('rejected', 'closed')
             FROM case_places p CROSS JOIN cases c ON c.rowid = p.key
             WHERE p.lat0 <= ?1 + ?2 AND p.lat1 >= ?1 - ?2
               AND p.lon0 <= ?3 + ?4 AND p.lon1 >= ?3 - ?4
               AND p.h0 <= ?5 + ?6 AND p.h1 >= ?5
               AND c.category = ?7 AND c.status = 'reported' AND c.rectification IS NULL
               AND (c.reported_at, c.id) > (?8, ?9)",
        )?;
        let rows = stmt.query_map(
            params![
                original.location.lat,
                dlat,
                original.location.lon,
                dlon,
                at_h,
                hours + 0.01,
                original.category,
                original.at,
                original.id
            ],
            waiting_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Folds a waiting report into the earlier open case it repeats, if any:
    /// (duplicate, original).
    fn fold(&mut self, sweep: &Sweep, w: Waiting) -> Result<Option<(String, String)>> {
        let (now, by, rules) = (sweep.now, sweep.by.as_str(), &sweep.rules);
        let Some(original) = self.open_duplicate(
            &rules.duplicates,
            &w.category,
            w.shop.as_deref(),
            w.location,
            time_from_ms(&w.id, w.at)?,
            Some((w.at, &w.id)),
        )?
        else {
            return Ok(None);
        };
        let id = w.id;
        let dup = self.case(&id)?;
        if dup.status() != CaseStatus::Reported {
            return Ok(None);
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
        Ok(Some((id, original)))
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

impl Store {
    /// A camera's or sensor's problem seen again after its reminder's
    /// deadline: a case at the shop from source 摄像头, accepted and
    /// dispatched by the district's rules (department by category, routine
    /// whistle), written by `by`. A report of the same problem already open
    /// there takes it instead (linked, as any duplicate). `photos` are the
    /// sources' snapshots, registered on this store. Returns the case.
    pub fn escalate_reminder(
        &mut self,
        shop_id: &str,
        category: &str,
        description: &str,
        photos: Vec<String>,
        now: DateTime<Utc>,
        by: &str,
    ) -> Result<String> {
        use crate::model::case::{CaseMove, NewCase};
        let rules = self.rules()?;
        let shop = self.shop(shop_id)?;
        let filed = self.file_report(NewCase {
            source: CaseSource::Camera,
            category: category.to_string(),
            location: shop.zone.centroid(),
            shop_id: Some(shop_id.to_string()),
            photos,
            description: description.to_string(),
            deadline: None,
            reported_by: by.to_string(),
            reported_at: now,
            subdistrict: None,
            lane: None,
        })?;
        if filed.linked {
            return Ok(filed.case_id);
        }
        let group = self.category_group(category)?;
        let department = rules
            .department_for(Some(category), group.as_deref())
            .code
            .clone();
        for (to, department, whistle) in [
            (CaseStatus::Accepted, None, None),
            (
                CaseStatus::Dispatched,
                Some(department),
                Some(Whistle::Routine),
            ),
        ] {
            self.move_case(
                &filed.case_id,
                CaseMove {
                    to,
                    by: by.to_string(),
                    role: Role::Admin,
                    at: now,
                    note: Some("摄像头提醒后逾期未改正，自动派单".into()),
                    department,
                    whistle,
                },
            )?;
        }
        Ok(filed.case_id)
    }
}
