//! 概况: the figures a supervisor's first page shows for today, this week
//! and this month, over what the reader may see (the same `Visibility` as
//! sync): cases by source, close rates, open cases by status, rectification
//! items, inspections against shops due, and the top problem categories.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::cases::parse_enum;
use crate::access::{Area, Visibility};
use crate::error::Result;
use crate::model::case::{CaseSource, CaseStatus};
use crate::model::period::{Period, beijing_date, beijing_midnight};
use crate::store::ledger::LedgerState;

/// The figures of one span of time.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanFigures {
    /// 今日, 本周 or 本月.
    pub label: &'static str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Cases reported in the span, per source (every source, zero included).
    pub by_source: Vec<(CaseSource, u64)>,
    pub cases: u64,
    /// Of those, closed (结案) by now …
    pub closed: u64,
    /// … and closed by their deadline (按期结案): the dispatch's whistle
    /// deadline once dispatched, the report's own before (as
    /// [`super::CaseSummary::deadline`]); a case without one is on time.
    pub closed_on_time: u64,
    /// Inspections submitted in the span.
    pub inspections: u64,
    /// The most reported categories: (code, name, cases), at most three.
    pub top_categories: Vec<(String, String, u64)>,
}

impl SpanFigures {
    /// 结案率 in per cent, when any case was reported.
    pub fn close_rate(&self) -> Option<f64> {
        (self.cases > 0).then(|| 100.0 * self.closed as f64 / self.cases as f64)
    }

    /// 按期结案率 in per cent of the closed cases.
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.closed > 0).then(|| 100.0 * self.closed_on_time as f64 / self.closed as f64)
    }
}

/// What the overview shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// Today, this week, this month (Beijing time).
    pub spans: Vec<SpanFigures>,
    /// Cases still being handled, per status (workflow order, zero included).
    pub open_by_status: Vec<(CaseStatus, u64)>,
    pub open_items: u64,
    /// Open rectification items past their deadline (逾期 or 已升级).
    pub overdue_items: u64,
    /// Shops due for an inspection today (the planner's candidates before
    /// the day's limit), for a district or subdistrict reader.
    pub shops_due: Option<u64>,
}

const SOURCES: [CaseSource; 6] = [
    CaseSource::Inspection,
    CaseSource::Steward,
    CaseSource::Citizen,
    CaseSource::Camera,
    CaseSource::Hotline,
    CaseSource::Rectification,
];

const OPEN: [CaseStatus; 5] = [
    CaseStatus::Reported,
    CaseStatus::Accepted,
    CaseStatus::Dispatched,
    CaseStatus::InProgress,
    CaseStatus::AwaitingVerification,
];

impl Store {
    /// The overview for a reader in `area` at `now`.
    pub fn overview(
        &self,
        reader: &Visibility,
        area: &Area,
        now: DateTime<Utc>,
    ) -> Result<Overview> {
        let today = beijing_midnight(beijing_date(now));
        let spans = [
            ("今日", today, today + Duration::days(1)),
            ("本周", Period::week_of(now).start, Period::week_of(now).end),
            (
                "本月",
                Period::month_of(now).start,
                Period::month_of(now).end,
            ),
        ]
        .into_iter()
        .map(|(label, from, to)| self.span_figures(reader, label, from, to))
        .collect::<Result<Vec<_>>>()?;
        let bind = reader.bindings();
        let mut open_by_status: Vec<(CaseStatus, u64)> = OPEN.iter().map(|s| (*s, 0)).collect();
        {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT status, count(*) FROM cases
                 WHERE status NOT IN ('closed', 'rejected') AND {} GROUP BY status",
                reader.cases_sql()
            ))?;
            let bound = bind.for_statement(&stmt, &[]);
            let mut rows = stmt.query(bound.as_slice())?;
            while let Some(r) = rows.next()? {
                let status: CaseStatus = parse_enum("cases", &r.get::<_, String>(0)?)?;
                let n: i64 = r.get(1)?;
                if let Some(slot) = open_by_status.iter_mut().find(|(s, _)| *s == status) {
                    slot.1 = n.unsigned_abs();
                }
            }
        }
        let items = self.open_rectifications_in(area, now)?;
        let overdue_items = items
            .iter()
            .filter(|i| matches!(i.state, LedgerState::Overdue | LedgerState::Escalated))
            .count() as u64;
        let shops_due = match area {
            Area::District => Some(None),
            Area::Subdistrict(s) => Some(Some(s.as_str())),
            Area::Lanes(_) => None,
        };
        let shops_due = match shops_due {
            Some(sub) => {
                let origin = self.any_shop_point()?;
                match origin {
                    Some(at) => {
                        let plan = self.plan_day(sub, at, now)?;
                        Some(plan.stops.len() as u64 + u64::from(plan.left_for_later))
                    }
                    None => Some(0),
                }
            }
            None => None,
        };
        Ok(Overview {
            spans,
            open_by_status,
            open_items: items.len() as u64,
            overdue_items,
            shops_due,
        })
    }

    fn span_figures(
        &self,
        reader: &Visibility,
        label: &'static str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<SpanFigures> {
        let (urgent_ms, routine_ms) = super::cases::whistle_ms(&self.rules()?);
        let bind = reader.bindings();
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let params: [(&str, &dyn rusqlite::ToSql); 4] = [
            (":from", &from_ms),
            (":to", &to_ms),
            (":urgent", &urgent_ms),
            (":routine", &routine_ms),
        ];
        let mut by_source: Vec<(CaseSource, u64)> = SOURCES.iter().map(|s| (*s, 0)).collect();
        let (mut cases, mut closed, mut closed_on_time) = (0, 0, 0);
        {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT source, count(*),
                        sum(status = 'closed'),
                        sum(status = 'closed' AND closed_at <= coalesce({}, closed_at))
                 FROM cases WHERE reported_at >= :from AND reported_at < :to AND {}
                 GROUP BY source",
                super::cases::DUE_SQL,
                reader.cases_sql()
            ))?;
            let bound = bind.for_statement(&stmt, &params);
            let mut rows = stmt.query(bound.as_slice())?;
            while let Some(r) = rows.next()? {
                let source: CaseSource = parse_enum("cases", &r.get::<_, String>(0)?)?;
                let n = r.get::<_, i64>(1)?.unsigned_abs();
                if let Some(slot) = by_source.iter_mut().find(|(s, _)| *s == source) {
                    slot.1 = n;
                }
                cases += n;
                closed += r.get::<_, Option<i64>>(2)?.unwrap_or(0).unsigned_abs();
                closed_on_time += r.get::<_, Option<i64>>(3)?.unwrap_or(0).unsigned_abs();
            }
        }
        let names: std::collections::HashMap<String, String> = self
            .categories()?
            .into_iter()
            .map(|c| (c.code, c.name))
            .collect();
        let top_categories = {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT category, count(*) AS n FROM cases
                 WHERE reported_at >= :from AND reported_at < :to AND {}
                 GROUP BY category ORDER BY n DESC, category LIMIT 3",
                reader.cases_sql()
            ))?;
            let bound = bind.for_statement(&stmt, &params[..2]);
            let rows = stmt.query_map(bound.as_slice(), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            rows.map(|r| {
                let (code, n) = r?;
                let name = names.get(&code).cloned().unwrap_or_default();
                Ok((code, name, n.unsigned_abs()))
            })
            .collect::<Result<Vec<_>>>()?
        };
        let inspections: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM inspections
                 WHERE verdict IS NOT NULL AND ended_at >= :from AND ended_at < :to AND {}",
                crate::access::visible_doc("id")
            ))?
            .query_row(bind.with(&params[..2]).as_slice(), |r| r.get(0))?;
        Ok(SpanFigures {
            label,
            from,
            to,
            by_source,
            cases,
            closed,
            closed_on_time,
            inspections: inspections.unsigned_abs(),
            top_categories,
        })
    }

    /// Some shop's point (the planner's walk starts somewhere; the count of
    /// shops due does not depend on where).
    fn any_shop_point(&self) -> Result<Option<crate::model::geo::GeoPoint>> {
        use rusqlite::OptionalExtension as _;
        Ok(self
            .conn
            .prepare_cached("SELECT lat, lon FROM shops ORDER BY code LIMIT 1")?
            .query_row([], |r| {
                Ok(crate::model::geo::GeoPoint::new(r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }
}
