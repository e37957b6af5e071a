//! Gathers what scores are computed from and runs `crate::scores` over it:
//! scoreboards, a shop's standing, the officer's plan for the day, stewards'
//! points and lane chiefs' weekly assessment.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rusqlite::params;
use serde::Serialize;

use super::Store;
use super::ledger::{LedgerState, Scope};
use crate::error::Result;
use crate::model::geo::GeoPoint;
use crate::model::period::{Period, PeriodKind, beijing_date, beijing_midnight};
use crate::model::rules::{DistrictRules, Grade};
use crate::model::track::TrackRules;
use crate::scores::planner::{self, Candidate, Reason};
use crate::scores::{self, Credit, Scoreboard, ShopFacts};

/// A shop's standing today: what its list entry and its page show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub shop_id: String,
    pub credit: Credit,
    /// Won last week's red flag: not inspected this week (免检一周).
    pub exempt: bool,
    /// Last week's score and place in its street.
    pub last_week: Option<scores::Ranked>,
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub last_inspected: Option<DateTime<Utc>>,
    /// When its grade next calls for an inspection.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub next_due: Option<DateTime<Utc>>,
    /// Rectification items open now.
    pub open_items: u32,
}

/// What a red-flag holder is shown with, on the officer's list and a
/// shop's page.
pub const RED_FLAG_BADGE_ZH: &str = "流动红旗 · 免检一周";

impl Standing {
    /// The red flag's badge while the shop holds it (免检一周), else `None`.
    pub fn badge_zh(&self) -> Option<&'static str> {
        self.exempt.then_some(RED_FLAG_BADGE_ZH)
    }
}

/// One stop of today's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStop {
    pub shop_id: String,
    pub code: String,
    pub name: String,
    pub address: String,
    pub location: GeoPoint,
    pub reason: Reason,
    pub grade: Grade,
    pub stars: u8,
    /// Walking distance from the previous stop (or the officer), metres.
    pub leg_m: f64,
}

/// An officer's list for a day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayPlan {
    /// Beijing date, e.g. 2026-11-23.
    pub date: String,
    pub stops: Vec<PlanStop>,
    /// Shops that would be due but hold the red flag (流动红旗 · 免检一周).
    pub exempt: Vec<(String, String)>,
    /// Shops due today beyond the day's capacity.
    pub left_for_later: u32,
    pub walk_m: f64,
    /// The nearest-neighbour route's length, for comparison.
    pub nearest_neighbour_m: f64,
}

/// A steward's points (积分) for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StewardScore {
    pub user: String,
    pub reports: u32,
    /// Accepted (ever) and not later rejected.
    pub valid: u32,
    pub closed: u32,
    /// Reports that joined a case already open.
    pub linked: u32,
    pub rejected: u32,
    /// Still waiting for a decision.
    pub pending: u32,
    pub points: u32,
}

/// A lane chief's week (街巷长考核).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneChiefWeek {
    pub user: String,
    pub week: String,
    /// Each lane and the largest share of it a patrol that week came near.
    pub lanes: Vec<(String, f64)>,
    pub lanes_covered: u32,
    pub patrols: u32,
    pub patrol_m: f64,
    /// Problems the chief reported that week.
    pub found: u32,
    /// Cases in the chief's lanes closed that week.
    pub handled: u32,
    /// Cases in the chief's lanes still open at the week's end.
    pub open: u32,
}

/// Report sources that count against a shop (an officer's own finding is in
/// the inspection score already).
const REPORT_SOURCES: &str = "('citizen', 'steward', 'camera', 'hotline')";

impl Store {
    /// What the scores of the shops in `scope` are computed from, for times
    /// from `since` on, with the ledger as of `now`. Closed shops are left
    /// out.
    pub fn shop_facts(
        &self,
        rules: &DistrictRules,
        scope: Scope<'_>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ShopFacts>, HashMap<String, ShopExtra>)> {
        let mut facts: Vec<ShopFacts> = Vec::new();
        let mut extra: HashMap<String, ShopExtra> = HashMap::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        let shops = scope.shops_sql();
        let (p1, p2) = scope.params();
        {
            let sql = format!(
                "SELECT id, code, name, street, lat, lon, address FROM shops s
                 WHERE status = 'active' AND {shops} ORDER BY id"
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![p1, p2])?;
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                at.insert(id.clone(), facts.len());
                extra.insert(
                    id.clone(),
                    ShopExtra {
                        location: GeoPoint::new(r.get(4)?, r.get(5)?),
                        address: r.get(6)?,
                        last_inspected: None,
                    },
                );
                facts.push(ShopFacts {
                    shop_id: id,
                    code: r.get(1)?,
                    name: r.get(2)?,
                    street: r.get(3)?,
                    ..ShopFacts::default()
                });
            }
        }
        let since_ms = since.timestamp_millis();
        {
            // Driven from the area's shops when there is one (each shop's
            // inspections by index), else one pass over the period's inspections.
            let sql = if scope == Scope::All {
                "SELECT i.shop_id, i.ended_at, i.score FROM inspections i
                 WHERE ?1 IS NULL AND ?2 IS NULL AND i.verdict IS NOT NULL AND i.ended_at >= ?3
                 ORDER BY 1, 2"
                    .to_string()
            } else {
                format!(
                    "SELECT i.shop_id, i.ended_at, i.score
                     FROM shops s JOIN inspections i ON i.shop_id = s.id
                     WHERE {shops} AND i.verdict IS NOT NULL AND i.ended_at >= ?3
                     ORDER BY 1, 2"
                )
            };
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![p1, p2, since_ms])?;
            while let Some(r) = rows.next()? {
                let shop: String = r.get(0)?;
                if let Some(&k) = at.get(&shop) {
                    facts[k]
                        .inspections
                        .push((r.get(1)?, r.get::<_, Option<u32>>(2)?.unwrap_or(0)));
                }
            }
        }
        // The last inspection: the window's latest, else one index seek per
        // shop not inspected within it.
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT max(ended_at) FROM inspections WHERE shop_id = ?1 AND verdict IS NOT NULL",
            )?;
            for f in &facts {
                let Some(e) = extra.get_mut(&f.shop_id) else {
                    continue;
                };
                let last = match f.inspections.last() {
                    Some((t, _)) => Some(*t),
                    None => stmt.query_row([&f.shop_id], |r| r.get::<_, Option<i64>>(0))?,
                };
                e.last_inspected = last.and_then(DateTime::from_timestamp_millis);
            }
        }
        {
            let from = if scope == Scope::All {
                "FROM cases c WHERE ?1 IS NULL AND ?2 IS NULL AND c.shop_id IS NOT NULL".to_string()
            } else {
                format!("FROM shops s CROSS JOIN cases c WHERE {shops} AND c.shop_id = s.id")
            };
            let sql = format!(
                "SELECT c.shop_id, c.reported_at {from}
                   AND c.status != 'rejected' AND c.source IN {REPORT_SOURCES}
                   AND c.reported_at >= ?3
                 ORDER BY 1, 2"
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![p1, p2, since_ms])?;
            while let Some(r) = rows.next()? {
                let shop: String = r.get(0)?;
                if let Some(&k) = at.get(&shop) {
                    facts[k].reports.push(r.get(1)?);
                }
            }
        }
        for item in self.ledger_with(rules, scope, now)? {
            if let Some(&k) = at.get(&item.shop_id) {
                facts[k].rectifications.push(item.fact());
            }
        }
        Ok((facts, extra))
    }

    /// Scores for the week or month holding `at`, ranked per street, with the
    /// red flag (weeks) and the black list; `subdistrict` limits it to one.
    pub fn scoreboard(
        &self,
        kind: PeriodKind,
        at: DateTime<Utc>,
        subdistrict: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Scoreboard> {
        let rules = self.rules()?;
        let period = Period::of(kind, at);
        let (facts, _) = self.shop_facts(
            &rules,
            Scope::of_subdistrict(subdistrict),
            period.start,
            now,
        )?;
        Ok(scores::scoreboard(&facts, &rules, &period))
    }

    /// [`Store::scoreboard`] for a user's area: the district, a subdistrict,
    /// or a lane chief's lanes (their shops' rows, ranked within their
    /// streets as for everyone).
    pub fn scoreboard_in(
        &self,
        kind: PeriodKind,
        at: DateTime<Utc>,
        area: &crate::access::Area,
        now: DateTime<Utc>,
    ) -> Result<Scoreboard> {
        use crate::access::Area;
        match area {
            Area::District => self.scoreboard(kind, at, None, now),
            Area::Subdistrict(name) => self.scoreboard(kind, at, Some(name), now),
            Area::Lanes(lanes) => {
                let mut board = self.scoreboard(kind, at, None, now)?;
                let in_lanes = self.shop_ids_in_lanes(lanes)?;
                board.ranked.retain(|r| in_lanes.contains(&r.score.shop_id));
                board.red_flag.retain(|id| in_lanes.contains(id));
                board.black_list.retain(|id| in_lanes.contains(id));
                Ok(board)
            }
        }
    }

    /// Every active shop's credit (score, grade, stars) in `area` as of
    /// `now`: the same computation as [`Store::standing`], for a whole list.
    pub fn credits_in(
        &self,
        area: &crate::access::Area,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, scores::Credit>> {
        use crate::access::Area;
        let rules = self.rules()?;
        let since = scores::credit_window_start(&rules, now);
        let weeks = scores::credit_weeks(&rules, now);
        let sub = match area {
            Area::Subdistrict(s) => Some(s.as_str()),
            _ => None,
        };
        let (facts, _) = self.shop_facts(&rules, Scope::of_subdistrict(sub), since, now)?;
        let in_lanes = match area {
            Area::Lanes(lanes) => Some(self.shop_ids_in_lanes(lanes)?),
            _ => None,
        };
        Ok(facts
            .iter()
            .filter(|f| in_lanes.as_ref().is_none_or(|l| l.contains(&f.shop_id)))
            .map(|f| (f.shop_id.clone(), scores::credit(f, &rules, &weeks, now)))
            .collect())
    }

    /// A shop's standing as of `now`: credit grade and stars, the red flag,
    /// last week's rank, when it is next due.
    pub fn standing(&self, shop_id: &str, now: DateTime<Utc>) -> Result<Standing> {
        let shop = self.shop(shop_id)?;
        let rules = self.rules()?;
        let since = scores::credit_window_start(&rules, now);
        let weeks = scores::credit_weeks(&rules, now);
        // The street's shops: last week's rank is within the street.
        let scope = Scope::Street {
            street: &shop.street,
            subdistrict: shop.subdistrict.as_deref(),
        };
        let (street, extra) = self.shop_facts(&rules, scope, since, now)?;
        let last_week = Period::week_of(now).previous();
        let board = scores::scoreboard(&street, &rules, &last_week);
        let mine = street.iter().find(|f| f.shop_id == shop_id);
        let credit = match mine {
            Some(f) => scores::credit(f, &rules, &weeks, now),
            None => scores::credit(&ShopFacts::default(), &rules, &weeks, now),
        };
        let last_inspected = extra.get(shop_id).and_then(|e| e.last_inspected);
        let interval = Duration::days(i64::from(rules.grades.interval_days[credit.grade.index()]));
        Ok(Standing {
            shop_id: shop_id.to_string(),
            credit,
            exempt: board.red_flag.iter().any(|s| s == shop_id),
            last_week: board
                .ranked
                .into_iter()
                .find(|r| r.score.shop_id == shop_id),
            last_inspected,
            next_due: last_inspected.map(|t| t + interval),
            open_items: mine.map_or(0, |f| {
                f.rectifications
                    .iter()
                    .filter(|r| r.closed_at.is_none())
                    .count() as u32
            }),
        })
    }

    /// An officer's list for the day of `now`, standing at `position`: the
    /// shops of `subdistrict` (all the store holds when `None`) whose
    /// re-check has come or whose grade's interval has passed, less last
    /// week's red-flag holders (免检一周) unless a re-check is due, the most
    /// urgent `daily_stops` of them in walking order.
    pub fn plan_day(
        &self,
        subdistrict: Option<&str>,
        position: GeoPoint,
        now: DateTime<Utc>,
    ) -> Result<DayPlan> {
        position.validate("position")?;
        let rules = self.rules()?;
        let since = scores::credit_window_start(&rules, now);
        let weeks = scores::credit_weeks(&rules, now);
        let (facts, extra) =
            self.shop_facts(&rules, Scope::of_subdistrict(subdistrict), since, now)?;
        let last_week = Period::week_of(now).previous();
        let exempt_ids = scores::scoreboard(&facts, &rules, &last_week).red_flag;
        let today = beijing_date(now);
        let end_of_today = beijing_midnight(today + Duration::days(1)).timestamp_millis();
        let mut candidates = Vec::new();
        let mut exempt = Vec::new();
        let mut info: HashMap<&str, (&ShopFacts, &ShopExtra, u8)> = HashMap::new();
        for f in &facts {
            let Some(x) = extra.get(&f.shop_id) else {
                continue;
            };
            let credit = scores::credit(f, &rules, &weeks, now);
            info.insert(f.shop_id.as_str(), (f, x, credit.stars));
            let recheck = f
                .rectifications
                .iter()
                .filter(|r| r.closed_at.is_none() && r.deadline <= end_of_today)
                .map(|r| r.deadline)
                .min();
            let days_since = |ms: i64| (end_of_today - ms).div_euclid(86_400_000);
            let candidate = |reason, days_overdue| Candidate {
                shop_id: f.shop_id.clone(),
                code: f.code.clone(),
                location: x.location,
                reason,
                grade: credit.grade,
                days_overdue,
            };
            if let Some(deadline) = recheck {
                candidates.push(candidate(Reason::Recheck, days_since(deadline)));
                continue;
            }
            let due = match x.last_inspected {
                None => Some(candidate(Reason::NeverInspected, 0)),
                Some(last) => {
                    let interval = i64::from(rules.grades.interval_days[credit.grade.index()]);
                    let due_at = beijing_midnight(beijing_date(last) + Duration::days(interval));
                    (due_at.timestamp_millis() < end_of_today)
                        .then(|| candidate(Reason::Due, days_since(due_at.timestamp_millis())))
                }
            };
            if let Some(c) = due {
                if exempt_ids.contains(&f.shop_id) {
                    exempt.push((f.shop_id.clone(), f.name.clone()));
                } else {
                    candidates.push(c);
                }
            }
        }
        let all = candidates.len();
        let chosen = planner::choose(candidates, rules.planner.daily_stops as usize);
        let points: Vec<GeoPoint> = chosen.iter().map(|c| c.location).collect();
        let route = planner::route(position, &points);
        let mut stops = Vec::with_capacity(chosen.len());
        let mut here = position;
        for &k in &route.order {
            let c = &chosen[k];
            let Some((f, x, stars)) = info.get(c.shop_id.as_str()) else {
                continue;
            };
            stops.push(PlanStop {
                shop_id: c.shop_id.clone(),
                code: c.code.clone(),
                name: f.name.clone(),
                address: x.address.clone(),
                location: c.location,
                reason: c.reason,
                grade: c.grade,
                stars: *stars,
                leg_m: crate::model::place::distance_m(here, c.location),
            });
            here = c.location;
        }
        Ok(DayPlan {
            date: today.to_string(),
            stops,
            exempt,
            left_for_later: (all - chosen.len()) as u32,
            walk_m: route.length_m,
            nearest_neighbour_m: route.nearest_neighbour_m,
        })
    }

    /// Stewards' points (积分) for reports filed in the week or month holding
    /// `at`, most points first.
    pub fn steward_points(&self, kind: PeriodKind, at: DateTime<Utc>) -> Result<Vec<StewardScore>> {
        let rules = self.rules()?.stewards;
        let period = Period::of(kind, at);
        let (start, end) = (
            period.start.timestamp_millis(),
            period.end.timestamp_millis(),
        );
        let mut by: BTreeMap<String, StewardScore> = BTreeMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT reported_by, status, accepted FROM cases
             WHERE source = 'steward' AND reported_at >= ?1 AND reported_at < ?2",
        )?;
        let mut rows = stmt.query(params![start, end])?;
        while let Some(r) = rows.next()? {
            let user: String = r.get(0)?;
            let status: String = r.get(1)?;
            let accepted: bool = r.get(2)?;
            let s = steward_entry(&mut by, user);
            s.reports += 1;
            match status.as_str() {
                "rejected" => s.rejected += 1,
                "reported" => s.pending += 1,
                _ if accepted => {
                    s.valid += 1;
                    s.points += rules.valid_report;
                    if status == "closed" {
                        s.closed += 1;
                        s.points += rules.closed_bonus;
                    }
                }
                _ => s.pending += 1,
            }
        }
        drop(rows);
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.reported_by FROM case_links l JOIN cases c ON c.id = l.case_id
             WHERE l.source = 'steward' AND l.reported_at >= ?1 AND l.reported_at < ?2
               AND c.status != 'rejected'",
        )?;
        let mut rows = stmt.query(params![start, end])?;
        while let Some(r) = rows.next()? {
            let user: String = r.get(0)?;
            let s = steward_entry(&mut by, user);
            s.reports += 1;
            s.linked += 1;
            s.points += rules.linked_report;
        }
        let mut out: Vec<StewardScore> = by.into_values().collect();
        out.sort_by(|a, b| b.points.cmp(&a.points).then(a.user.cmp(&b.user)));
        Ok(out)
    }

    /// A lane chief's week (the week holding `at`): how much of each of their
    /// lanes their patrols came near, problems they found, and cases in their
    /// lanes closed or still open.
    pub fn lane_chief_week(
        &self,
        user: &str,
        lanes: &[String],
        at: DateTime<Utc>,
    ) -> Result<LaneChiefWeek> {
        let rules = self.rules()?;
        let week = Period::week_of(at);
        let (start, end) = (week.start.timestamp_millis(), week.end.timestamp_millis());
        let patrols: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT id FROM patrols WHERE user = ?1 AND started_at >= ?2 AND started_at < ?3
                 ORDER BY started_at, id",
            )?
            .query_map(params![user, start, end], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut share: BTreeMap<String, f64> = lanes.iter().map(|l| (l.clone(), 0.0)).collect();
        let mut patrol_m = 0.0;
        for id in &patrols {
            let (report, _) = self.patrol_report_near(id, &TrackRules::default())?;
            patrol_m += report.distance_m;
            for lane in report.lanes {
                if let Some(s) = share.get_mut(&lane.name) {
                    *s = s.max(lane.covered);
                }
            }
        }
        let lanes_json = serde_json::to_string(lanes).unwrap_or_else(|_| "[]".into());
        let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u32> {
            Ok(self.conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))?)
        };
        let found = count(
            "SELECT (SELECT count(*) FROM cases WHERE reported_by = ?1
                       AND reported_at >= ?2 AND reported_at < ?3)
                  + (SELECT count(*) FROM case_links WHERE reported_by = ?1
                       AND reported_at >= ?2 AND reported_at < ?3)",
            &[&user, &start, &end],
        )?;
        let handled = count(
            "SELECT count(*) FROM cases WHERE lane IN (SELECT value FROM json_each(?1))
               AND closed_at >= ?2 AND closed_at < ?3",
            &[&lanes_json, &start, &end],
        )?;
        let open = count(
            "SELECT count(*) FROM cases WHERE lane IN (SELECT value FROM json_each(?1))
               AND reported_at < ?2 AND (closed_at IS NULL OR closed_at >= ?2)
               AND status != 'rejected'",
            &[&lanes_json, &end],
        )?;
        let threshold = rules.lane_chiefs.lane_covered_share;
        Ok(LaneChiefWeek {
            user: user.to_string(),
            week: week.label(),
            lanes_covered: share.values().filter(|s| **s >= threshold).count() as u32,
            lanes: share.into_iter().collect(),
            patrols: patrols.len() as u32,
            patrol_m,
            found,
            handled,
            open,
        })
    }

    /// Open rectification items of `subdistrict`, soonest deadline first.
    pub fn open_rectifications(
        &self,
        subdistrict: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::ledger::RectificationItem>> {
        let scope = Scope::of_subdistrict(subdistrict);
        let mut items: Vec<_> = self
            .rectification_ledger(scope, now)?
            .into_iter()
            .filter(|i| i.state != LedgerState::Closed)
            .collect();
        items.sort_by(|a, b| a.deadline.cmp(&b.deadline).then(a.id.cmp(&b.id)));
        Ok(items)
    }

    /// Open rectification items of the shops in `area` (a user's area: the
    /// district, a subdistrict, or a lane chief's lanes), soonest deadline
    /// first.
    pub fn open_rectifications_in(
        &self,
        area: &crate::access::Area,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::ledger::RectificationItem>> {
        use crate::access::Area;
        match area {
            Area::District => self.open_rectifications(None, now),
            Area::Subdistrict(name) => self.open_rectifications(Some(name), now),
            Area::Lanes(lanes) => {
                let in_lanes = self.shop_ids_in_lanes(lanes)?;
                let mut items = self.open_rectifications(None, now)?;
                items.retain(|i| in_lanes.contains(&i.shop_id));
                Ok(items)
            }
        }
    }
}

/// A steward's running tally, created at zero on first use.
fn steward_entry(by: &mut BTreeMap<String, StewardScore>, user: String) -> &mut StewardScore {
    by.entry(user.clone()).or_insert_with(|| StewardScore {
        user,
        reports: 0,
        valid: 0,
        closed: 0,
        linked: 0,
        rejected: 0,
        pending: 0,
        points: 0,
    })
}

/// What the planner needs of a shop beyond its score facts.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopExtra {
    pub location: GeoPoint,
    pub address: String,
    pub last_inspected: Option<DateTime<Utc>>,
}
