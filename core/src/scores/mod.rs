//! Scores, rankings, the red flag, the black list, stars and credit grades,
//! computed from facts the store gathers (inspections, valid reports,
//! rectification items). Pure functions of their input and the district's
//! rules: every device holding the same documents computes the same tables.

pub mod planner;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::model::period::{Period, PeriodKind};
use crate::model::rules::{DistrictRules, Grade, ScoringRules};

/// What one shop's score is computed from. Times are ms since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShopFacts {
    pub shop_id: String,
    pub code: String,
    pub name: String,
    pub street: String,
    /// Submitted inspections: (end time, score).
    pub inspections: Vec<(i64, u32)>,
    /// Valid reports about the shop (citizen, steward, camera, hotline; not
    /// rejected): report times.
    pub reports: Vec<i64>,
    pub rectifications: Vec<RectFact>,
}

/// A rectification item as scores see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RectFact {
    pub opened_at: i64,
    pub deadline: i64,
    pub closed_at: Option<i64>,
    pub escalated_at: Option<i64>,
}

impl RectFact {
    fn open_at(&self, t: i64) -> bool {
        self.opened_at < t && self.closed_at.is_none_or(|c| c >= t)
    }
}

/// One shop's score for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodScore {
    pub shop_id: String,
    pub code: String,
    pub name: String,
    pub street: String,
    /// 0–100.
    pub score: u32,
    pub inspections: u32,
    /// The mean inspection score, rounded half up (None: not inspected).
    pub inspection_mean: Option<u32>,
    pub reports: u32,
    /// Items put right after their deadline within the period.
    pub late: u32,
    /// Items past their deadline and still open at the period's end.
    pub overdue: u32,
    /// Items open at the period's end (overdue or not).
    pub open_at_end: u32,
}

/// Mean rounded half up; `None` for no values.
fn mean(values: impl Iterator<Item = u32>) -> Option<u32> {
    let (sum, n) = values.fold((0u64, 0u64), |(s, n), v| (s + u64::from(v), n + 1));
    (n > 0).then(|| ((sum * 2 + n) / (n * 2)) as u32)
}

/// What a shop's score for `[start, end)` is made of.
struct Tally {
    inspections: u32,
    mean: Option<u32>,
    reports: u32,
    late: u32,
    overdue: u32,
    open_at_end: u32,
    score: u32,
}

fn tally(f: &ShopFacts, rules: &ScoringRules, start: i64, end: i64) -> Tally {
    let within = |t: i64| start <= t && t < end;
    let scored = || {
        f.inspections
            .iter()
            .filter(|(t, _)| within(*t))
            .map(|(_, s)| *s)
    };
    let inspections = scored().count() as u32;
    let mean = mean(scored());
    let reports = f.reports.iter().filter(|t| within(**t)).count() as u32;
    let late = f
        .rectifications
        .iter()
        .filter(|r| r.closed_at.is_some_and(|c| within(c) && c > r.deadline))
        .count() as u32;
    let overdue = f
        .rectifications
        .iter()
        .filter(|r| r.deadline < end && r.open_at(end))
        .count() as u32;
    let open_at_end = f.rectifications.iter().filter(|r| r.open_at(end)).count() as u32;
    let base = mean.unwrap_or(rules.uninspected_base).min(100);
    let penalty = (reports * rules.report_penalty).min(rules.report_penalty_cap)
        + late * rules.late_penalty
        + overdue * rules.overdue_penalty;
    Tally {
        inspections,
        mean,
        reports,
        late,
        overdue,
        open_at_end,
        score: base.saturating_sub(penalty),
    }
}

/// A shop's score for `[start, end)`: the mean of its inspection scores there
/// (or the rules' base when it was not inspected), less a penalty per valid
/// report (capped), per item put right late and per item overdue at the end.
pub fn period_score(f: &ShopFacts, rules: &ScoringRules, start: i64, end: i64) -> PeriodScore {
    let t = tally(f, rules, start, end);
    PeriodScore {
        shop_id: f.shop_id.clone(),
        code: f.code.clone(),
        name: f.name.clone(),
        street: f.street.clone(),
        score: t.score,
        inspections: t.inspections,
        inspection_mean: t.mean,
        reports: t.reports,
        late: t.late,
        overdue: t.overdue,
        open_at_end: t.open_at_end,
    }
}

/// A score with its place in its street.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    #[serde(flatten)]
    pub score: PeriodScore,
    /// Competition ranking (1, 2, 2, 4): equal scores share a rank.
    pub rank: u32,
    /// Shops ranked in the street.
    pub of: u32,
}

/// Ranks scores within each street: highest score first, equal scores share
/// a rank; listed by street, then rank, then shop code.
pub fn rank_by_street(mut scores: Vec<PeriodScore>) -> Vec<Ranked> {
    scores.sort_by(|a, b| {
        a.street
            .cmp(&b.street)
            .then(b.score.cmp(&a.score))
            .then(a.code.cmp(&b.code))
    });
    let mut out: Vec<Ranked> = Vec::with_capacity(scores.len());
    let mut i = 0;
    while i < scores.len() {
        let street_len = scores[i..]
            .iter()
            .take_while(|s| s.street == scores[i].street)
            .count();
        let mut rank = 1;
        for (k, s) in scores[i..i + street_len].iter().enumerate() {
            if k > 0 && s.score != scores[i + k - 1].score {
                rank = k as u32 + 1;
            }
            out.push(Ranked {
                score: s.clone(),
                rank,
                of: street_len as u32,
            });
        }
        i += street_len;
    }
    out
}

/// The week's red-flag winners (流动红旗): per street, the best `per_street`
/// shops that were inspected, had no valid report, no item open at the week's
/// end and scored at least `min_score`. Ties at the cut go to the lower code.
pub fn red_flags<'a>(ranked: &'a [Ranked], rules: &DistrictRules) -> Vec<&'a Ranked> {
    let rule = rules.red_flag;
    let mut taken: BTreeMap<&str, u32> = BTreeMap::new();
    ranked
        .iter()
        .filter(|r| {
            let s = &r.score;
            s.inspections > 0 && s.reports == 0 && s.open_at_end == 0 && s.score >= rule.min_score
        })
        .filter(|r| {
            let n = taken.entry(r.score.street.as_str()).or_default();
            *n += 1;
            *n <= rule.per_street
        })
        .collect()
}

/// The black list (黑榜): per street, the worst `per_street` shops scoring
/// below the bound, worst first.
pub fn black_list<'a>(ranked: &'a [Ranked], rules: &DistrictRules) -> Vec<&'a Ranked> {
    let rule = rules.black_list;
    let mut below: Vec<&Ranked> = ranked
        .iter()
        .filter(|r| r.score.score < rule.below)
        .collect();
    below.sort_by(|a, b| {
        a.score
            .street
            .cmp(&b.score.street)
            .then(a.score.score.cmp(&b.score.score))
            .then(a.score.code.cmp(&b.score.code))
    });
    let mut taken: BTreeMap<&str, u32> = BTreeMap::new();
    below
        .into_iter()
        .filter(|r| {
            let n = taken.entry(r.score.street.as_str()).or_default();
            *n += 1;
            *n <= rule.per_street
        })
        .collect()
}

/// A shop's credit profile (商户信用画像) at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Credit {
    /// The mean of the weekly scores over the rules' window of whole weeks.
    pub score: u32,
    pub grade: Grade,
    /// 1–5.
    pub stars: u8,
    /// A rectification item of the shop was escalated within the window.
    pub escalated: bool,
}

/// The whole weeks the credit window covers before the week holding `now`,
/// as `[start, end)` in ms: computed once for any number of shops.
pub fn credit_weeks(rules: &DistrictRules, now: DateTime<Utc>) -> Vec<(i64, i64)> {
    let this_week = Period::week_of(now);
    let start = this_week.start - Duration::weeks(i64::from(rules.grades.window_weeks));
    let mut week = Period::week_of(start);
    let mut out = Vec::with_capacity(rules.grades.window_weeks as usize);
    while week.start < this_week.start {
        out.push((week.start.timestamp_millis(), week.end.timestamp_millis()));
        week = week.next();
    }
    out
}

/// The first instant the credit window covers.
pub fn credit_window_start(rules: &DistrictRules, now: DateTime<Utc>) -> DateTime<Utc> {
    Period::week_of(now).start - Duration::weeks(i64::from(rules.grades.window_weeks))
}

/// The credit profile as of `now` over `weeks` (from [`credit_weeks`]): the
/// weekly scores averaged, graded by the rules (an escalation in the window
/// caps the grade), and starred.
pub fn credit(
    f: &ShopFacts,
    rules: &DistrictRules,
    weeks: &[(i64, i64)],
    now: DateTime<Utc>,
) -> Credit {
    let weekly = weeks
        .iter()
        .map(|(start, end)| tally(f, &rules.scoring, *start, *end).score);
    let score = mean(weekly).unwrap_or(rules.scoring.uninspected_base);
    let lo = weeks.first().map_or(i64::MAX, |w| w.0);
    let hi = now.timestamp_millis();
    let escalated = f
        .rectifications
        .iter()
        .any(|r| r.escalated_at.is_some_and(|t| lo <= t && t < hi));
    Credit {
        score,
        grade: rules.grade_for(score, escalated),
        stars: rules.stars_for(score),
        escalated,
    }
}

/// Scores for one period, ranked per street, with its red flag and black list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scoreboard {
    pub kind: PeriodKind,
    /// e.g. `2026-W48`.
    pub label: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub start: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub end: DateTime<Utc>,
    /// By street, then rank.
    pub ranked: Vec<Ranked>,
    /// 红榜 / 流动红旗 (weeks only; empty for months): shop ids, by street and rank.
    pub red_flag: Vec<String>,
    /// 黑榜: shop ids, by street, worst first.
    pub black_list: Vec<String>,
}

impl Scoreboard {
    /// A ranked shop as lists name it: `name（street）`, or its id if the
    /// board does not hold it.
    pub fn shop_label(&self, shop_id: &str) -> String {
        self.ranked
            .iter()
            .find(|r| r.score.shop_id == shop_id)
            .map_or(shop_id.to_string(), label)
    }

    /// [`Scoreboard::shop_label`] of every ranked shop, by id: for lists of
    /// hundreds (a district's red flag).
    pub fn shop_labels(&self) -> std::collections::HashMap<&str, String> {
        self.ranked
            .iter()
            .map(|r| (r.score.shop_id.as_str(), label(r)))
            .collect()
    }
}

/// A ranked shop as lists name it: `name（street）`.
fn label(r: &Ranked) -> String {
    format!("{}（{}）", r.score.name, r.score.street)
}

/// Scores every shop of `facts` for `period`, ranks them per street and picks
/// the red flag (for a week) and the black list.
pub fn scoreboard(facts: &[ShopFacts], rules: &DistrictRules, period: &Period) -> Scoreboard {
    let (start, end) = (
        period.start.timestamp_millis(),
        period.end.timestamp_millis(),
    );
    let ranked = rank_by_street(
        facts
            .iter()
            .map(|f| period_score(f, &rules.scoring, start, end))
            .collect(),
    );
    let red_flag = match period.kind {
        PeriodKind::Week => red_flags(&ranked, rules)
            .into_iter()
            .map(|r| r.score.shop_id.clone())
            .collect(),
        PeriodKind::Month => Vec::new(),
    };
    let black_list = black_list(&ranked, rules)
        .into_iter()
        .map(|r| r.score.shop_id.clone())
        .collect();
    Scoreboard {
        kind: period.kind,
        label: period.label(),
        start: period.start,
        end: period.end,
        ranked,
        red_flag,
        black_list,
    }
}
