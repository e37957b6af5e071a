//! Reporting problems and moving cases along their status history.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::inspections::validate_photos;
use super::{Store, new_id, time_from_ms};
use crate::doc;
use crate::error::{Error, Result};
use crate::model::case::{
    Case, CaseMove, CaseSource, CaseStatus, LinkedReport, NewCase, StatusChange, Whistle,
};
use crate::model::geo::GeoPoint;
use crate::model::{MAX_NOTE_CHARS, MAX_PLACE_CHARS, multiline_text, optional_text, user_id};

/// Where a report went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    pub case_id: String,
    /// The report was linked to an open case of the same problem.
    pub linked: bool,
}

/// What a case list keeps (every field optional: `None` keeps all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    pub status: Option<CaseStatus>,
    /// A category code, e.g. `0504`.
    pub category: Option<String>,
    pub source: Option<crate::model::case::CaseSource>,
    /// Reported at or after.
    pub from: Option<DateTime<Utc>>,
    /// Reported before.
    pub to: Option<DateTime<Utc>>,
    /// Words in the description.
    pub text: Option<String>,
    /// Cases at this shop.
    pub shop_id: Option<String>,
    /// Cases in this subdistrict (街道) …
    pub subdistrict: Option<String>,
    /// … or on this lane (街巷): the shop's, or the report's own place.
    pub lane: Option<String>,
    /// Cases still open and past their deadline at this time (超期).
    pub overdue_at: Option<DateTime<Utc>>,
    /// Open (not closed or rejected) cases only, or only the others.
    pub open: Option<bool>,
    pub order: CaseOrder,
}

/// How a case list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaseOrder {
    /// Newest report first.
    #[default]
    Newest,
    /// Oldest report first.
    Oldest,
    /// Soonest deadline first (cases without one last).
    Due,
}

impl CaseOrder {
    fn sql(self) -> &'static str {
        match self {
            CaseOrder::Newest => "reported_at DESC, id DESC",
            CaseOrder::Oldest => "reported_at, id",
            CaseOrder::Due => concat!(due_sql!(), " IS NULL, ", due_sql!(), ", id"),
        }
    }
}

/// SQL: when a case (columns of `cases`) is due: once dispatched, the
/// dispatch plus its whistle's hours (`:urgent` / `:routine`, in ms, from
/// the rules); before, the report's own deadline. The one definition the
/// case list, its filters and the overview's rates use.
pub(crate) const DUE_SQL: &str = due_sql!();

macro_rules! due_sql {
    () => {
        "(CASE WHEN dispatched_at IS NOT NULL AND whistle IS NOT NULL
          THEN dispatched_at + CASE whistle WHEN 'urgent' THEN :urgent ELSE :routine END
          ELSE deadline END)"
    };
}
use due_sql;

/// The whistles' hours in ms, bound to [`DUE_SQL`]'s parameters.
pub(crate) fn whistle_ms(rules: &crate::model::rules::DistrictRules) -> (i64, i64) {
    (
        i64::from(rules.whistles.urgent_hours) * 3_600_000,
        i64::from(rules.whistles.routine_hours) * 3_600_000,
    )
}

/// What a case list shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    pub id: String,
    pub category: String,
    pub status: CaseStatus,
    pub location: GeoPoint,
    pub shop_id: Option<String>,
    pub reported_at: DateTime<Utc>,
    /// When the case is due: once dispatched, the dispatch plus its whistle's
    /// hours (紧急哨 / 常规哨, from the rules); before, the report's own deadline.
    pub deadline: Option<DateTime<Utc>>,
    /// The department and whistle of the effective dispatch.
    pub dispatched_to: Option<(String, Whistle)>,
    /// When the current status was reached.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Reports a problem (随手拍, inspection finding, hotline …); it starts as 已上报.
    /// Returns the id of the case the report is on: a report of the same
    /// category near an open case, soon after it, is linked to that case.
    pub fn report_case(&mut self, new: NewCase) -> Result<String> {
        self.file_report(new).map(|f| f.case_id)
    }

    /// [`Store::report_case`], saying whether the report opened a case or was
    /// linked to an open one.
    pub fn file_report(&mut self, new: NewCase) -> Result<Filed> {
        let reported_by = user_id("reported_by", &new.reported_by)?;
        if new.source == CaseSource::Rectification {
            return Err(Error::invalid(
                "source",
                "overdue rectification items are escalated by the district platform, not reported",
            ));
        }
        new.location.validate("location")?;
        if !self.category_exists(&new.category)? {
            return Err(Error::invalid(
                "category",
                format!("{} is not in the category table", new.category),
            ));
        }
        // A report at a shop lies where the shop does.
        let (subdistrict, lane) = match &new.shop_id {
            Some(shop) => {
                let shop = self.shop(shop)?;
                (shop.subdistrict, shop.lane)
            }
            None => {
                let sub =
                    optional_text("subdistrict", new.subdistrict.as_deref(), MAX_PLACE_CHARS)?;
                let lane = optional_text("lane", new.lane.as_deref(), MAX_PLACE_CHARS)?;
                if sub.is_none() && lane.is_none() {
                    self.area_near(new.location)?
                } else {
                    (sub, lane)
                }
            }
        };
        let description = multiline_text("description", Some(&new.description), MAX_NOTE_CHARS)?
            .unwrap_or_default();
        let photos = validate_photos(new.photos)?;
        if description.is_empty() && photos.is_empty() {
            return Err(Error::invalid(
                "description",
                "a report needs a description or a photo",
            ));
        }
        if new.deadline.is_some_and(|d| d < new.reported_at) {
            return Err(Error::invalid(
                "deadline",
                "the deadline is before the report",
            ));
        }
        if let Some(open) = self.open_duplicate(
            &self.rules()?.duplicates,
            &new.category,
            new.shop_id.as_deref(),
            new.location,
            new.reported_at,
            None,
        )? {
            let link = LinkedReport {
                source: new.source,
                reported_by,
                reported_at: new.reported_at,
                location: new.location,
                photos,
                description,
                evidence: Default::default(),
            };
            self.mutate(&open, false, |tx, d| {
                let mut link = link;
                link.evidence = Store::evidence_for(tx, &link.photos, &Default::default())?;
                doc::append(d, "linked", &link)
            })?;
            return Ok(Filed {
                case_id: open,
                linked: true,
            });
        }
        let case = Case {
            id: String::new(),
            source: new.source,
            category: new.category,
            location: new.location,
            shop_id: new.shop_id,
            photos,
            description,
            deadline: new.deadline,
            reported_by: reported_by.clone(),
            reported_at: new.reported_at,
            subdistrict,
            lane,
            history: vec![StatusChange {
                status: CaseStatus::Reported,
                at: new.reported_at,
                by: reported_by.clone(),
                note: None,
                role: None,
                department: None,
                whistle: None,
            }],
            evidence: Default::default(),
            time: Some(self.record_time(new.reported_at)?),
            linked: Vec::new(),
            rectification: None,
        };
        let id = new_id("case");
        self.mutate(&id, true, |tx, d| {
            let mut case = case;
            case.evidence = Store::evidence_for(tx, &case.photos, &Default::default())?;
            doc::write_root(d, &case)
        })?;
        Ok(Filed {
            case_id: id,
            linked: false,
        })
    }

    /// The open case (not rejected, not closed) of `category` nearest to `at`
    /// within the rules' radius, reported within their window of `when`;
    /// the earliest reported on a tie. A report about a shop repeats only a
    /// case about that shop or about no shop. `reported_before` limits it to
    /// cases filed before that (time, id).
    pub(crate) fn open_duplicate(
        &self,
        rule: &crate::model::rules::DuplicateRule,
        category: &str,
        shop: Option<&str>,
        at: GeoPoint,
        when: DateTime<Utc>,
        reported_before: Option<(i64, &str)>,
    ) -> Result<Option<String>> {
        // The R*Tree finds the neighbours in place and time; the cases table
        // decides the rest.
        let (dlat, dlon) = super::district::search_box(rule, at);
        let window = i64::from(rule.window_hours) * 3_600_000;
        let ms = when.timestamp_millis();
        let hours = ms as f64 / 3_600_000.0;
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.lat, c.lon, c.reported_at
             FROM case_places p CROSS JOIN cases c ON c.rowid = p.key
             WHERE p.lat0 <= ?4 + ?6 AND p.lat1 >= ?4 - ?6
               AND p.lon0 <= ?5 + ?7 AND p.lon1 >= ?5 - ?7
               AND p.h0 <= ?9 + ?10 AND p.h1 >= ?9 - ?10
               AND c.category = ?1 AND c.reported_at BETWEEN ?2 - ?3 AND ?2 + ?3
               AND c.status NOT IN ('rejected', 'closed') AND c.rectification IS NULL
               AND c.lat BETWEEN ?4 - ?6 AND ?4 + ?6 AND c.lon BETWEEN ?5 - ?7 AND ?5 + ?7
               AND (?8 IS NULL OR c.shop_id IS NULL OR c.shop_id = ?8)
             ORDER BY c.reported_at, c.id",
        )?;
        let mut rows = stmt.query(params![
            category,
            ms,
            window,
            at.lat,
            at.lon,
            dlat,
            dlon,
            shop,
            hours,
            f64::from(rule.window_hours) + 0.01
        ])?;
        let mut best: Option<(f64, String)> = None;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let reported_at: i64 = r.get(3)?;
            if reported_before.is_some_and(|(t, b)| (reported_at, id.as_str()) >= (t, b)) {
                continue;
            }
            let d = crate::model::place::distance_m(at, GeoPoint::new(r.get(1)?, r.get(2)?));
            if d <= rule.radius_m && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
                best = Some((d, id));
            }
        }
        Ok(best.map(|(_, id)| id))
    }

    /// The open shop nearest to `at`, within `radius_m`.
    pub fn nearest_shop(&self, at: GeoPoint, radius_m: f64) -> Result<Option<String>> {
        at.validate("at")?;
        const M_PER_DEG: f64 = 111_320.0;
        let lon_scale = at.lat.to_radians().cos().max(0.01);
        let (dlat, dlon) = (radius_m / M_PER_DEG, radius_m / (M_PER_DEG * lon_scale));
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM shops
                 WHERE status = 'active'
                   AND lat BETWEEN ?1 - ?3 AND ?1 + ?3 AND lon BETWEEN ?2 - ?4 AND ?2 + ?4
                 ORDER BY (lat - ?1) * (lat - ?1) + (lon - ?2) * (lon - ?2) * ?5 * ?5, id
                 LIMIT 1",
            )?
            .query_row(params![at.lat, at.lon, dlat, dlon, lon_scale], |r| r.get(0))
            .optional()?)
    }

    /// The subdistrict and lane of the shop nearest to `at` (searched within
    /// 200 m, then 2 km): where a report made away from any shop is filed, so
    /// the officers of that area receive it.
    fn area_near(&self, at: GeoPoint) -> Result<(Option<String>, Option<String>)> {
        const M_PER_DEG: f64 = 111_320.0;
        let lon_scale = at.lat.to_radians().cos().max(0.01);
        for radius_m in [200.0, 2_000.0] {
            let (dlat, dlon) = (radius_m / M_PER_DEG, radius_m / (M_PER_DEG * lon_scale));
            let found = self
                .conn
                .prepare_cached(
                    "SELECT subdistrict, lane FROM shops
                     WHERE lat BETWEEN ?1 - ?3 AND ?1 + ?3 AND lon BETWEEN ?2 - ?4 AND ?2 + ?4
                     ORDER BY (lat - ?1) * (lat - ?1) + (lon - ?2) * (lon - ?2) * ?5 * ?5, id
                     LIMIT 1",
                )?
                .query_row(params![at.lat, at.lon, dlat, dlon, lon_scale], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some(area) = found {
                return Ok(area);
            }
        }
        Ok((None, None))
    }

    /// Moves a case along the workflow. The move must be one the role may make
    /// from the case's current status here; made offline, it may still be
    /// overtaken by someone else's concurrent move (see [`crate::model::case::replay`]).
    pub fn move_case(&mut self, id: &str, m: CaseMove) -> Result<()> {
        let step = StatusChange {
            status: m.to,
            at: m.at,
            by: user_id("by", &m.by)?,
            note: multiline_text("note", m.note.as_deref(), MAX_NOTE_CHARS)?,
            role: Some(m.role),
            department: optional_text("department", m.department.as_deref(), 32)?,
            whistle: m.whistle,
        };
        if m.to == CaseStatus::Dispatched {
            let Some(dept) = &step.department else {
                return Err(Error::invalid(
                    "department",
                    "a dispatch names a department",
                ));
            };
            if step.whistle.is_none() {
                return Err(Error::invalid(
                    "whistle",
                    "a dispatch blows an urgent or a routine whistle (紧急哨 / 常规哨)",
                ));
            }
            if !self.rules()?.departments.iter().any(|d| &d.code == dept) {
                return Err(Error::invalid(
                    "department",
                    format!("{dept} is not a department in the district's rules"),
                ));
            }
        }
        let case = self.case(id)?;
        let from = case.status();
        if !crate::model::case::step_allowed(from, &step) {
            return Err(Error::NotAllowed {
                reason: format!(
                    "a {} may not move a case from {} to {}",
                    m.role.label_zh(),
                    from.label_zh(),
                    m.to.label_zh()
                ),
            });
        }
        self.mutate(id, false, |_, d| doc::append(d, "history", &step))
    }

    /// Appends a step with no checks at all: what a modified client could push.
    /// Only for tests of the sync server's checks.
    #[doc(hidden)]
    pub fn append_case_step_unchecked(&mut self, id: &str, step: StatusChange) -> Result<()> {
        self.mutate(id, false, |_, d| doc::append(d, "history", &step))
    }

    /// A case with its whole history and linked reports.
    pub fn case(&self, id: &str) -> Result<Case> {
        if !id.starts_with("case/") {
            return Err(Error::not_found("case", id));
        }
        let d = super::load_doc(&self.conn, id, &self.actor)?
            .ok_or_else(|| Error::not_found("case", id))?;
        let mut case: Case = doc::read(&d, id)?;
        case.id = id.to_string();
        Ok(case)
    }

    /// A case with its history, if the reader may see it (`None` otherwise,
    /// as for a case that does not exist).
    pub fn visible_case(
        &self,
        id: &str,
        reader: &crate::access::Visibility,
    ) -> Result<Option<Case>> {
        if !id.starts_with("case/") {
            return Ok(None);
        }
        if self
            .visible_documents(&[id.to_string()], reader)?
            .is_empty()
        {
            return Ok(None);
        }
        self.case(id).map(Some)
    }

    /// Cases in a status (all when `None`), newest report first.
    pub fn cases(&self, status: Option<CaseStatus>, limit: u32) -> Result<Vec<CaseSummary>> {
        let (urgent, routine) = whistle_ms(&self.rules()?);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM cases
             WHERE :status IS NULL OR status = :status ORDER BY reported_at DESC, id LIMIT :limit"
        ))?;
        let rows = stmt.query(rusqlite::named_params! {
            ":status": status.map(|s| s.as_str()),
            ":limit": limit,
            ":urgent": urgent,
            ":routine": routine,
        })?;
        self.summaries(rows)
    }

    /// One case's summary, as lists show it.
    pub fn case_summary(&self, id: &str) -> Result<Option<CaseSummary>> {
        let (urgent, routine) = whistle_ms(&self.rules()?);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM cases WHERE id = :id"
        ))?;
        let rows = stmt.query(rusqlite::named_params! {
            ":id": id,
            ":urgent": urgent,
            ":routine": routine,
        })?;
        Ok(self.summaries(rows)?.into_iter().next())
    }

    /// The cases a reader may see that pass `filter`, in its order:
    /// `limit` of them after `offset`, and how many pass in all.
    pub fn case_list(
        &self,
        filter: &CaseFilter,
        reader: &crate::access::Visibility,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<CaseSummary>, u64)> {
        self.case_query(filter, reader, Some((offset, limit)), true)
    }

    /// [`Store::case_list`]'s page alone (no count).
    pub fn case_page(
        &self,
        filter: &CaseFilter,
        reader: &crate::access::Visibility,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<CaseSummary>> {
        Ok(self
            .case_query(filter, reader, Some((offset, limit)), false)?
            .0)
    }

    /// [`Store::case_list`]'s count alone.
    pub fn case_count(
        &self,
        filter: &CaseFilter,
        reader: &crate::access::Visibility,
    ) -> Result<u64> {
        Ok(self.case_query(filter, reader, None, true)?.1)
    }

    fn case_query(
        &self,
        filter: &CaseFilter,
        reader: &crate::access::Visibility,
        page: Option<(u32, u32)>,
        count: bool,
    ) -> Result<(Vec<CaseSummary>, u64)> {
        let (offset, limit) = page.unwrap_or((0, 0));
        let status = filter.status.map(|s| s.as_str());
        let source = filter.source.map(|s| s.as_str());
        let from = filter.from.map(|t| t.timestamp_millis());
        let to = filter.to.map(|t| t.timestamp_millis());
        let text = filter.text.as_deref().filter(|t| !t.is_empty()).map(|t| {
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        });
        let overdue = filter.overdue_at.map(|t| t.timestamp_millis());
        // Only the filters set, so that SQLite picks its index by them.
        let mut conditions = vec![reader.cases_sql().to_string()];
        let mut set = |on: bool, sql: &str| {
            if on {
                conditions.push(sql.to_string());
            }
        };
        set(status.is_some(), "status = :status");
        set(filter.category.is_some(), "category = :category");
        set(source.is_some(), "source = :source");
        set(from.is_some(), "reported_at >= :from");
        set(to.is_some(), "reported_at < :to");
        set(
            text.is_some(),
            "description LIKE '%' || :text || '%' ESCAPE '\\'",
        );
        set(filter.shop_id.is_some(), "shop_id = :shop");
        set(filter.subdistrict.is_some(), "area_sub = :in_sub");
        set(filter.lane.is_some(), "area_lane = :in_lane");
        set(
            filter.open == Some(true),
            "status NOT IN ('closed', 'rejected')",
        );
        set(
            filter.open == Some(false),
            "status IN ('closed', 'rejected')",
        );
        set(
            overdue.is_some(),
            &format!("status NOT IN ('closed', 'rejected') AND {DUE_SQL} < :overdue"),
        );
        let conditions = conditions.join(" AND ");
        let bind = reader.bindings();
        let (offset, limit) = (i64::from(offset), i64::from(limit));
        let (urgent, routine) = whistle_ms(&self.rules()?);
        let params: [(&str, &dyn rusqlite::ToSql); 14] = [
            (":status", &status),
            (":category", &filter.category),
            (":source", &source),
            (":from", &from),
            (":to", &to),
            (":text", &text),
            (":shop", &filter.shop_id),
            (":in_sub", &filter.subdistrict),
            (":in_lane", &filter.lane),
            (":overdue", &overdue),
            (":urgent", &urgent),
            (":routine", &routine),
            (":limit", &limit),
            (":offset", &offset),
        ];
        let total: i64 = if count {
            let mut stmt = self
                .conn
                .prepare_cached(&format!("SELECT count(*) FROM cases WHERE {conditions}"))?;
            let bound = bind.for_statement(&stmt, &params);
            stmt.query_row(bound.as_slice(), |r| r.get(0))?
        } else {
            0
        };
        if page.is_none() {
            return Ok((Vec::new(), total.unsigned_abs()));
        }
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM cases
             WHERE {conditions} ORDER BY {} LIMIT :limit OFFSET :offset",
            filter.order.sql()
        ))?;
        let bound = bind.for_statement(&stmt, &params);
        let rows = stmt.query(bound.as_slice())?;
        Ok((self.summaries(rows)?, total.unsigned_abs()))
    }

    /// Summaries from rows of [`SUMMARY_COLUMNS`].
    fn summaries(&self, mut rows: rusqlite::Rows<'_>) -> Result<Vec<CaseSummary>> {
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let status: String = r.get(2)?;
            let time = |ms: i64| time_from_ms(&id, ms);
            let dispatch = match (
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<i64>>(10)?,
            ) {
                (Some(dept), Some(w), Some(at)) => {
                    Some((dept, parse_enum::<Whistle>(&id, &w)?, time(at)?))
                }
                _ => None,
            };
            let deadline = r.get::<_, Option<i64>>(7)?.map(time).transpose()?;
            out.push(CaseSummary {
                status: parse_enum(&id, &status)?,
                category: r.get(1)?,
                location: GeoPoint::new(r.get(3)?, r.get(4)?),
                shop_id: r.get(5)?,
                reported_at: time(r.get(6)?)?,
                deadline,
                dispatched_to: dispatch.map(|(d, w, _)| (d, w)),
                updated_at: time(r.get(11)?)?,
                id: id.clone(),
            });
        }
        Ok(out)
    }
}

/// The columns [`Store::summaries`] reads; `:urgent` and `:routine` bound.
const SUMMARY_COLUMNS: &str = concat!(
    "id, category, status, lat, lon, shop_id, reported_at, ",
    due_sql!(),
    ", department, whistle, dispatched_at, status_at"
);

/// Parses a snake_case enum name stored in the index.
pub(crate) fn parse_enum<T: serde::de::DeserializeOwned>(id: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| Error::corrupt(id, e))
}
