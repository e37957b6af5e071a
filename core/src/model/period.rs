//! Weeks and months in Beijing time: scores, rankings and the red flag are
//! per week (Monday to Sunday) and per month, and deadlines end with a day.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::template::BEIJING;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Week,
    Month,
}

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    pub kind: PeriodKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Midnight (Beijing) starting `date`, in UTC.
pub fn beijing_midnight(date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_time(NaiveTime::MIN);
    match BEIJING.from_local_datetime(&naive).single() {
        Some(t) => t.with_timezone(&Utc),
        // UTC+8 has no gaps or folds; keep a total function anyway.
        None => Utc.from_utc_datetime(&naive) - Duration::hours(8),
    }
}

/// The Beijing calendar date of `t`.
pub fn beijing_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&BEIJING).date_naive()
}

/// The end of the Beijing day `days` after the day of `t` (0: the same day).
pub fn end_of_day_after(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let date = beijing_date(t) + Duration::days(i64::from(days) + 1);
    beijing_midnight(date)
}

impl Period {
    /// The week (Monday 00:00 to Monday 00:00, Beijing) holding `t`.
    pub fn week_of(t: DateTime<Utc>) -> Period {
        let date = beijing_date(t);
        let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
        let start = beijing_midnight(monday);
        Period {
            kind: PeriodKind::Week,
            start,
            end: beijing_midnight(monday + Duration::days(7)),
        }
    }

    /// The calendar month (Beijing) holding `t`.
    pub fn month_of(t: DateTime<Utc>) -> Period {
        let date = beijing_date(t);
        let first = date.with_day(1).unwrap_or(date);
        let next = if first.month() == 12 {
            NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
        }
        .unwrap_or(first + Duration::days(31));
        Period {
            kind: PeriodKind::Month,
            start: beijing_midnight(first),
            end: beijing_midnight(next),
        }
    }

    pub fn of(kind: PeriodKind, t: DateTime<Utc>) -> Period {
        match kind {
            PeriodKind::Week => Period::week_of(t),
            PeriodKind::Month => Period::month_of(t),
        }
    }

    /// The period before this one.
    pub fn previous(&self) -> Period {
        Period::of(self.kind, self.start - Duration::milliseconds(1))
    }

    /// The period after this one.
    pub fn next(&self) -> Period {
        Period::of(self.kind, self.end)
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// e.g. `2026-W48` or `2026-11`.
    pub fn label(&self) -> String {
        let date = beijing_date(self.start);
        match self.kind {
            PeriodKind::Week => {
                let w = date.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            PeriodKind::Month => format!("{}-{:02}", date.year(), date.month()),
        }
    }
}
