//! 案件: the cases the signed-in user may see (the same `Visibility` as their
//! phones), filtered by status, source, category, report date and text,
//! newest first, a page at a time, and exported as CSV.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, NaiveDate};
use menqian_core::model::case::{CaseSource, CaseStatus};
use menqian_core::{CaseFilter, CaseSummary};
use serde::Deserialize;

use super::beijing;
use super::web::{error_page, render, signed_in};
use crate::store::User;
use crate::sync::Station;

/// Cases on one page, and the most one export holds.
const PAGE: u32 = 50;
const MAX_EXPORT: u32 = 100_000;

const STATUSES: [CaseStatus; 7] = [
    CaseStatus::Reported,
    CaseStatus::Accepted,
    CaseStatus::Rejected,
    CaseStatus::Dispatched,
    CaseStatus::InProgress,
    CaseStatus::AwaitingVerification,
    CaseStatus::Closed,
];
const SOURCES: [CaseSource; 6] = [
    CaseSource::Inspection,
    CaseSource::Steward,
    CaseSource::Citizen,
    CaseSource::Camera,
    CaseSource::Hotline,
    CaseSource::Rectification,
];

#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
    #[serde(default)]
    status: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<u32>,
}

impl Params {
    /// The core's filter; what does not parse is left out.
    fn filter(&self) -> CaseFilter {
        let day = |d: &str| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .map(menqian_core::model::period::beijing_midnight)
        };
        CaseFilter {
            status: STATUSES.into_iter().find(|s| s.as_str() == self.status),
            source: SOURCES.into_iter().find(|s| s.as_str() == self.source),
            category: Some(self.category.trim().to_string()).filter(|c| !c.is_empty()),
            from: day(&self.from),
            // Through the whole of the last day.
            to: day(&self.to).map(|t| t + Duration::days(1)),
            text: Some(self.q.trim().chars().take(100).collect::<String>())
                .filter(|t| !t.is_empty()),
        }
    }

    /// The filter as a query string (for paging and the export link).
    fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("status", &self.status),
                ("source", &self.source),
                ("category", &self.category),
                ("from", &self.from),
                ("to", &self.to),
                ("q", &self.q),
            ])
            .finish()
    }
}

struct Row {
    id: String,
    /// The id without its `case/` prefix, for the case's page.
    key: String,
    reported: String,
    status: &'static str,
    category: String,
    dispatched: String,
    deadline: String,
}

#[derive(Template)]
#[template(path = "console/cases.html")]
struct CasesPage<'a> {
    me: &'a str,
    area: String,
    statuses: Vec<(&'static str, &'static str)>,
    sources: Vec<(&'static str, &'static str)>,
    status: &'a str,
    source: &'a str,
    category: &'a str,
    from: &'a str,
    to: &'a str,
    q: &'a str,
    query: String,
    total: u64,
    page: u32,
    pages: u32,
    rows: Vec<Row>,
}

fn row(c: CaseSummary) -> Row {
    Row {
        reported: beijing(c.reported_at),
        status: c.status.label_zh(),
        category: c.category,
        dispatched: c
            .dispatched_to
            .map(|(dept, w)| format!("{dept} · {}", w.label_zh()))
            .unwrap_or_default(),
        deadline: c.deadline.map(beijing).unwrap_or_default(),
        key: c.id.trim_start_matches("case/").to_string(),
        id: c.id,
    }
}

/// The signed-in user's cases passing the filter: a page, and the total.
async fn list(
    station: &Arc<Station>,
    headers: &HeaderMap,
    filter: CaseFilter,
    offset: u32,
    limit: u32,
) -> Result<(User, Vec<CaseSummary>, u64), Response> {
    let user = match signed_in(station, headers).await {
        Err(e) => return Err(error_page(&e)),
        Ok(None) => return Err(Redirect::to("/console/login").into_response()),
        Ok(Some((user, _))) => user,
    };
    let reader = user.visibility();
    let found = station
        .read(move |r| {
            Ok(r.documents()
                .case_list(&filter, &reader, offset, limit)
                .map_err(crate::store::StoreError::from)?)
        })
        .await;
    match found {
        Ok((cases, total)) => Ok((user, cases, total)),
        Err(e) => Err(error_page(&e)),
    }
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let page = params.page.unwrap_or(1).clamp(1, 100_000);
    let offset = (page - 1).saturating_mul(PAGE);
    let (user, cases, total) = match list(&station, &headers, params.filter(), offset, PAGE).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let pages = u32::try_from(total.div_ceil(u64::from(PAGE)))
        .unwrap_or(u32::MAX)
        .max(1);
    render(
        StatusCode::OK,
        &CasesPage {
            me: &user.name,
            area: user.area.label_zh(),
            statuses: STATUSES
                .iter()
                .map(|s| (s.as_str(), s.label_zh()))
                .collect(),
            sources: SOURCES.iter().map(|s| (s.as_str(), s.label_zh())).collect(),
            status: &params.status,
            source: &params.source,
            category: &params.category,
            from: &params.from,
            to: &params.to,
            q: &params.q,
            query: params.query(),
            total,
            page,
            pages,
            rows: cases.into_iter().map(row).collect(),
        },
    )
}

pub(super) async fn csv(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let (_, cases, _) = match list(&station, &headers, params.filter(), 0, MAX_EXPORT).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    super::csv_download(
        "cases.csv",
        "上报时间,状态,类别,派遣,期限,案件",
        cases.into_iter().map(row).map(|r| {
            [
                r.reported,
                r.status.to_string(),
                r.category,
                r.dispatched,
                r.deadline,
                r.id,
            ]
        }),
    )
}
