//! 案件: the cases the signed-in user may see (the same `Visibility` as their
//! phones), filtered by status, source, category, 街道/街巷, shop, overdue,
//! report date and text, sorted, a page at a time, and exported (exactly the
//! filtered set) as CSV and XLSX, read and sent a slice at a time.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Duration, NaiveDate, Utc};
use menqian_core::model::case::{CaseSource, CaseStatus};
use menqian_core::{CaseFilter, CaseOrder, CaseSummary};
use serde::Deserialize;

use super::beijing;
use futures_util::StreamExt as _;

use super::web::{error_page, member, render};
use crate::store::{StoreError, User};
use crate::sync::Station;

/// A filter's count is reused for this long whatever moves, and at most
/// this long while the feed stands still.
const COUNT_FRESH: std::time::Duration = std::time::Duration::from_secs(5);
const COUNT_KEEP: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// 街道
    #[serde(default)]
    street: String,
    /// 街巷
    #[serde(default)]
    lane: String,
    #[serde(default)]
    shop: String,
    /// `1`: open and past the deadline only.
    #[serde(default)]
    overdue: String,
    /// `newest` (default), `oldest`, `due`.
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: Option<u32>,
}

fn text_param(s: &str, max: usize) -> Option<String> {
    Some(s.trim().chars().take(max).collect::<String>()).filter(|t| !t.is_empty())
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
            text: text_param(&self.q, 100),
            subdistrict: text_param(&self.street, 50),
            lane: text_param(&self.lane, 50),
            shop_id: text_param(&self.shop, 64),
            overdue_at: (self.overdue == "1").then(Utc::now),
            open: None,
            order: match self.sort.as_str() {
                "oldest" => CaseOrder::Oldest,
                "due" => CaseOrder::Due,
                _ => CaseOrder::Newest,
            },
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
                ("street", &self.street),
                ("lane", &self.lane),
                ("shop", &self.shop),
                ("overdue", &self.overdue),
                ("sort", &self.sort),
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
    street: &'a str,
    lane: &'a str,
    shop: &'a str,
    overdue: bool,
    sort: &'a str,
    categories: Vec<(String, String)>,
    streets: Vec<String>,
    lanes: Vec<String>,
    query: String,
    total: u64,
    page: u32,
    pages: u32,
    rows: Vec<Row>,
}

/// Names by code.
type Names = std::collections::HashMap<String, String>;

/// What a case row names: categories and departments, by code.
struct Labels {
    categories: Names,
    departments: Names,
}

impl Labels {
    fn read(docs: &menqian_core::Store) -> menqian_core::Result<Labels> {
        Ok(Labels {
            categories: docs
                .categories()?
                .into_iter()
                .map(|c| (c.code, c.name))
                .collect(),
            departments: docs
                .rules()?
                .departments
                .into_iter()
                .map(|d| (d.code, d.name))
                .collect(),
        })
    }
}

fn row(c: CaseSummary, labels: &Labels) -> Row {
    Row {
        reported: beijing(c.reported_at),
        status: c.status.label_zh(),
        category: labels
            .categories
            .get(&c.category)
            .cloned()
            .unwrap_or(c.category),
        dispatched: c
            .dispatched_to
            .map(|(dept, w)| {
                let name = labels.departments.get(&dept).unwrap_or(&dept);
                format!("{name} · {}", w.label_zh())
            })
            .unwrap_or_default(),
        deadline: c.deadline.map(beijing).unwrap_or_default(),
        key: c.id.trim_start_matches("case/").to_string(),
        id: c.id,
    }
}

/// What the page's selects offer: categories, subdistricts, lanes.
struct Choices {
    labels: Labels,
    categories: Vec<(String, String)>,
    streets: Vec<String>,
    lanes: Vec<String>,
}

fn choices(docs: &menqian_core::Store, area: &menqian_core::Area) -> menqian_core::Result<Choices> {
    let categories: Vec<(String, String)> = docs
        .categories()?
        .into_iter()
        .map(|c| (c.code, c.name))
        .collect();
    let (streets, lanes) = docs.places_in(area)?;
    Ok(Choices {
        labels: Labels::read(docs)?,
        categories,
        streets,
        lanes,
    })
}

fn anyone(_: &User) -> bool {
    true
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = params.page.unwrap_or(1).clamp(1, 100_000);
    let offset = (page - 1).saturating_mul(PAGE);
    let (filter, reader, area) = (params.filter(), user.visibility(), user.area.clone());
    let key = format!("{}/{}", user.id, params.query());
    let shared = station.clone();
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let cases = docs
                .case_page(&filter, &reader, offset, PAGE)
                .map_err(StoreError::from)?;
            // The count (a pass over every case the reader may see) is kept
            // a few seconds per user and filter, like the overview.
            let head = docs.feed_head().map_err(StoreError::from)?;
            let (_, total) =
                shared
                    .case_counts
                    .get_or(key, head, COUNT_FRESH, COUNT_KEEP, || {
                        docs.case_count(&filter, &reader)
                            .map_err(|e| crate::sync::ApiError::from(StoreError::from(e)))
                    })?;
            Ok((
                (cases, *total),
                choices(docs, &area).map_err(StoreError::from)?,
            ))
        })
        .await;
    let ((cases, total), choices) = match found {
        Ok(found) => found,
        Err(e) => return error_page(&e),
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
            street: &params.street,
            lane: &params.lane,
            shop: &params.shop,
            overdue: params.overdue == "1",
            sort: &params.sort,
            query: params.query(),
            total,
            page,
            pages,
            rows: cases.into_iter().map(|c| row(c, &choices.labels)).collect(),
            categories: choices.categories,
            streets: choices.streets,
            lanes: choices.lanes,
        },
    )
}

/// Cases an export reads at a time.
const EXPORT_SLICE: u32 = 5_000;

const HEADER: [&str; 8] = [
    "上报时间",
    "状态",
    "类别",
    "来源站点",
    "派遣",
    "期限",
    "商户",
    "案件",
];

fn fields(c: CaseSummary, labels: &Labels) -> [String; 8] {
    let shop = c.shop_id.clone().unwrap_or_default();
    let place = format!("{:.6},{:.6}", c.location.lat, c.location.lon);
    let r = row(c, labels);
    [
        r.reported,
        r.status.to_string(),
        r.category,
        place,
        r.dispatched,
        r.deadline,
        shop,
        r.id,
    ]
}

/// The export's cases, a slice at a time: `(rows, more to come)`.
async fn slice(
    station: &Arc<Station>,
    user: &User,
    filter: &CaseFilter,
    offset: u32,
) -> Result<(Vec<[String; 8]>, bool), crate::sync::ApiError> {
    let (filter, reader) = (filter.clone(), user.visibility());
    station
        .read(move |r| {
            let docs = r.documents();
            let labels = Labels::read(docs).map_err(StoreError::from)?;
            // A page without a count: the export ends at a short slice.
            let cases = docs
                .case_page(&filter, &reader, offset, EXPORT_SLICE)
                .map_err(StoreError::from)?;
            let more = cases.len() == EXPORT_SLICE as usize
                && u64::from(offset) + (cases.len() as u64) < u64::from(MAX_EXPORT);
            Ok((
                cases.into_iter().map(|c| fields(c, &labels)).collect(),
                more,
            ))
        })
        .await
}

/// The filtered cases as CSV (UTF-8 with a BOM), sent slice by slice: the
/// station holds one slice, not the whole export.
pub(super) async fn csv(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let filter = params.filter();
    // The first slice before the answer: an error is still a proper page.
    let first = match slice(&station, &user, &filter, 0).await {
        Ok(first) => first,
        Err(e) => return error_page(&e),
    };
    let head = format!("\u{feff}{}\r\n", HEADER.join(","));
    let state = (station, user, filter, 0u32, Some(first));
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(
        futures_util::stream::unfold(state, |(station, user, filter, offset, ready)| async move {
            let (rows, more) = match ready {
                Some(ready) => ready,
                None => match slice(&station, &user, &filter, offset).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e.message, "a case export failed midway");
                        return Some((
                            Err(std::io::Error::other(e.message)),
                            (station, user, filter, offset, None),
                        ));
                    }
                },
            };
            if rows.is_empty() {
                return None;
            }
            let n = rows.len() as u32;
            let mut out = String::with_capacity(rows.len() * 160);
            for fields in rows {
                let line: Vec<String> = fields.iter().map(|f| super::csv_field(f)).collect();
                out.push_str(&line.join(","));
                out.push_str("\r\n");
            }
            let next = if more { offset + n } else { u32::MAX };
            Some((Ok(out), (station, user, filter, next, None)))
        })
        .take_while(|chunk| futures_util::future::ready(!matches!(chunk, Ok(s) if s.is_empty()))),
    );
    super::download(
        "cases.csv",
        "text/csv; charset=utf-8",
        axum::body::Body::from_stream(body),
    )
}

/// The filtered cases as an XLSX workbook: rows are written to the
/// workbook's temporary files slice by slice (constant-memory mode), then
/// the compressed file is sent.
pub(super) async fn xlsx(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let filter = params.filter();
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = match book.add_worksheet_with_constant_memory() {
        Ok(sheet) => sheet,
        Err(e) => return error_page(&export_error(&e)),
    };
    let written = (|| -> Result<(), rust_xlsxwriter::XlsxError> {
        sheet.set_name("案件")?;
        for (c, h) in HEADER.iter().enumerate() {
            sheet.write_string(0, c as u16, *h)?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        return error_page(&export_error(&e));
    }
    let (mut offset, mut row_at) = (0u32, 1u32);
    loop {
        let (rows, more) = match slice(&station, &user, &filter, offset).await {
            Ok(next) => next,
            Err(e) => return error_page(&e),
        };
        let n = rows.len() as u32;
        for fields in rows {
            for (c, f) in fields.iter().enumerate() {
                // Text cells: a leading `=` stays text, never a formula.
                if let Err(e) = sheet.write_string(row_at, c as u16, f) {
                    return error_page(&export_error(&e));
                }
            }
            row_at += 1;
        }
        if !more || n == 0 {
            break;
        }
        offset += n;
    }
    let bytes = match tokio::task::spawn_blocking(move || book.save_to_buffer()).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return error_page(&export_error(&e)),
        Err(e) => {
            tracing::error!(error = %e, "the XLSX export panicked");
            return error_page(&crate::sync::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "export_failed",
                "导出失败",
            ));
        }
    };
    super::download(
        "cases.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        axum::body::Body::from(bytes),
    )
}

fn export_error(e: &rust_xlsxwriter::XlsxError) -> crate::sync::ApiError {
    tracing::error!(error = %e, "the XLSX export failed");
    crate::sync::ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "export_failed",
        "导出失败",
    )
}
