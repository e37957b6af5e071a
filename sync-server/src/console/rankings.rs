//! 考评: the week's or the month's scores per street for the signed-in
//! user's area, with each score's parts, the red flag and the black list
//! (the core's scoreboard, the same numbers `report week` and `report month`
//! print), each shop's credit grade and stars, and stewards' points. A board
//! is computed once per period and area and kept while the change feed does
//! not move (and at most a minute, as deadlines pass without it moving).

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Duration, NaiveDate, Utc};
use menqian_core::PeriodKind;
use serde::Deserialize;

use super::web::{error_page, member, render};
use crate::store::{StoreError, User};
use crate::sync::Station;

/// What one rankings page shows, as computed from the store.
pub(crate) struct Rankings {
    board: menqian_core::scores::Scoreboard,
    credits: std::collections::HashMap<String, menqian_core::scores::Credit>,
    stewards: Vec<menqian_core::StewardScore>,
}

/// How long a board is kept while the feed stands still.
const KEEP: std::time::Duration = std::time::Duration::from_secs(60);

fn anyone(_: &User) -> bool {
    true
}

struct Row {
    grade: String,
    stars: String,
    rank: u32,
    score: u32,
    mean: String,
    inspections: u32,
    reports: u32,
    overdue: u32,
    late: u32,
    code: String,
    name: String,
    flag: &'static str,
}

struct Street {
    name: String,
    of: u32,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "console/rankings.html")]
struct RankingsPage<'a> {
    me: &'a str,
    area: String,
    label: String,
    week: bool,
    date: String,
    streets: Vec<Street>,
    red_flag: Vec<String>,
    black_list: Vec<String>,
    /// Every street, when only one is shown (a district has hundreds).
    street_names: Vec<String>,
    street: String,
    /// (steward, reports, valid, closed, points)
    stewards: Vec<(String, u32, u32, u32, u32)>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Choice {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    date: Option<String>,
    /// With many shops, the one street shown.
    #[serde(default)]
    street: Option<String>,
}

/// Rows shown at most on one page: beyond, one street at a time.
const ROWS: usize = 2_000;

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    choice: Result<Query<Choice>, QueryRejection>,
) -> Response {
    let choice = choice.map(|Query(c)| c).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let week = choice.period.as_deref() != Some("month");
    let kind = if week {
        PeriodKind::Week
    } else {
        PeriodKind::Month
    };
    // A day as `report week --date` takes it: noon, Beijing time.
    let date = choice
        .date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .unwrap_or_else(|| {
            Utc::now()
                .with_timezone(&menqian_core::model::template::BEIJING)
                .date_naive()
        });
    let at = menqian_core::model::period::beijing_midnight(date) + Duration::hours(12);
    let area = user.area.clone();
    let found = station
        .clone()
        .read(move |r| {
            let docs = r.documents();
            let head = docs.feed_head().map_err(StoreError::from)?;
            let period = menqian_core::Period::of(kind, at);
            let key = format!("{kind:?}/{}/{area}", period.start.timestamp_millis());
            station
                .rankings
                .get_or(key, head, std::time::Duration::ZERO, KEEP, || {
                    let now = Utc::now();
                    Ok::<_, crate::sync::ApiError>(Rankings {
                        board: docs
                            .scoreboard_in(kind, at, &area, now)
                            .map_err(StoreError::from)?,
                        credits: docs.credits_in(&area, now).map_err(StoreError::from)?,
                        stewards: if area == menqian_core::Area::District {
                            docs.steward_points(kind, at).map_err(StoreError::from)?
                        } else {
                            Vec::new()
                        },
                    })
                })
        })
        .await;
    let data = match found {
        Ok((_, data)) => data,
        Err(e) => return error_page(&e),
    };
    let board = &data.board;
    // Labels by shop id, once (a district's red flag names hundreds).
    let labels = board.shop_labels();
    let name_of = |id: &String| {
        labels
            .get(id.as_str())
            .cloned()
            .unwrap_or_else(|| board.shop_label(id))
    };
    let red_flag = board.red_flag.iter().map(name_of).collect();
    let black_list = board.black_list.iter().map(name_of).collect();
    // Beyond ROWS shops, one street at a time (rows are built for it alone).
    let (street_names, street) = if board.ranked.len() > ROWS {
        let mut names: Vec<String> = Vec::new();
        for r in &board.ranked {
            if names.last() != Some(&r.score.street) {
                names.push(r.score.street.clone());
            }
        }
        let chosen = choice
            .street
            .clone()
            .filter(|c| names.contains(c))
            .or_else(|| names.first().cloned())
            .unwrap_or_default();
        (names, chosen)
    } else {
        (Vec::new(), String::new())
    };
    let mut streets: Vec<Street> = Vec::new();
    for r in &board.ranked {
        let s = &r.score;
        if !street_names.is_empty() && s.street != street {
            continue;
        }
        if streets.last().is_none_or(|last| last.name != s.street) {
            streets.push(Street {
                name: s.street.clone(),
                of: r.of,
                rows: Vec::new(),
            });
        }
        let flag = if board.red_flag.contains(&s.shop_id) {
            "流动红旗"
        } else if board.black_list.contains(&s.shop_id) {
            "黑榜"
        } else {
            ""
        };
        if let Some(street) = streets.last_mut() {
            let credit = data.credits.get(&s.shop_id);
            street.rows.push(Row {
                grade: credit.map_or_else(String::new, |c| c.grade.as_str().to_string()),
                stars: credit.map_or_else(String::new, |c| "★".repeat(usize::from(c.stars))),
                rank: r.rank,
                score: s.score,
                mean: s.inspection_mean.map_or("—".into(), |m| m.to_string()),
                inspections: s.inspections,
                reports: s.reports,
                overdue: s.overdue,
                late: s.late,
                code: s.code.clone(),
                name: s.name.clone(),
                flag,
            });
        }
    }
    render(
        StatusCode::OK,
        &RankingsPage {
            street_names,
            street,
            me: &user.name,
            area: user.area.label_zh(),
            label: board.label.clone(),
            week,
            date: date.format("%Y-%m-%d").to_string(),
            streets,
            red_flag,
            black_list,
            stewards: data
                .stewards
                .iter()
                .map(|s| (s.user.clone(), s.reports, s.valid, s.closed, s.points))
                .collect(),
        },
    )
}
