//! 考评: the week's or the month's scores per street for the signed-in
//! user's area, with each score's parts, the red flag and the black list:
//! the core's scoreboard, the same numbers `report week` and `report month`
//! print.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, NaiveDate, Utc};
use menqian_core::PeriodKind;
use serde::Deserialize;

use super::web::{error_page, render, signed_in};
use crate::sync::Station;

struct Row {
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
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Choice {
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    choice: Result<Query<Choice>, QueryRejection>,
) -> Response {
    let choice = choice.map(|Query(c)| c).unwrap_or_default();
    let user = match signed_in(&station, &headers).await {
        Err(e) => return error_page(&e),
        Ok(None) => return Redirect::to("/console/login").into_response(),
        Ok(Some((user, _))) => user,
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
    let board = station
        .read(move |r| {
            Ok(r.documents()
                .scoreboard_in(kind, at, &area, Utc::now())
                .map_err(crate::store::StoreError::from)?)
        })
        .await;
    let board = match board {
        Ok(board) => board,
        Err(e) => return error_page(&e),
    };
    let name_of = |id: &String| board.shop_label(id);
    let red_flag = board.red_flag.iter().map(name_of).collect();
    let black_list = board.black_list.iter().map(name_of).collect();
    let mut streets: Vec<Street> = Vec::new();
    for r in &board.ranked {
        let s = &r.score;
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
            street.rows.push(Row {
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
            me: &user.name,
            area: user.area.label_zh(),
            label: board.label.clone(),
            week,
            date: date.format("%Y-%m-%d").to_string(),
            streets,
            red_flag,
            black_list,
        },
    )
}
