//! A case's page: what was reported, by whom and where, its photos and its
//! history with steps that took no effect marked, and the moves the signed-in
//! user may make from its status. Users who may not see the case get 404, as
//! for a case that does not exist; a move is written by the core's
//! `move_case`, as a phone writes it, and reaches phones at their next sync.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use menqian_core::model::case::{move_label_zh, moves_from};
use menqian_core::{Case, CaseMove, CaseStatus, Whistle};
use serde::Deserialize;

use super::beijing;
use super::web::{error_page, member, render, signed_form};
use crate::store::{StoreError, User};
use crate::sync::{ApiError, Station};

struct Step {
    at: String,
    status: &'static str,
    effective: bool,
    by: String,
    role: &'static str,
    note: String,
}

struct Action {
    to: &'static str,
    label: &'static str,
}

struct Photo {
    hash: String,
    thumb: String,
    taken: String,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage<'a> {
    me: &'a str,
    csrf: &'a str,
    key: &'a str,
    id: String,
    short: String,
    status: &'static str,
    category: String,
    source: &'static str,
    reported_by: String,
    reported_at: String,
    description: String,
    shop: String,
    shop_name: String,
    lat: f64,
    lon: f64,
    area: String,
    photos: Vec<Photo>,
    history: Vec<Step>,
    linked: Vec<String>,
    actions: Vec<Action>,
    /// Departments to dispatch to, when a dispatch is among the actions.
    departments: Vec<(String, String)>,
    error: Option<String>,
    /// Phone numbers citizens left with their reports (staff only).
    phones: Vec<String>,
}

fn not_found() -> Response {
    error_page(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "没有这个案件，或您无权查看",
    ))
}

/// `case/<key>` for a key the core's id grammar accepts (a report's random
/// key, or an escalation's `rect-<inspection>-<item>`).
fn case_id(key: &str) -> Option<String> {
    let id = format!("case/{key}");
    (key.len() <= 120 && menqian_core::ids::check_doc_id(&id).is_ok()).then_some(id)
}

fn anyone(_: &User) -> bool {
    true
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let (user, csrf) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    show(&station, &user, &csrf, &key, StatusCode::OK, None).await
}

/// The case's page as `user` may see it (404 when they may not).
async fn show(
    station: &Arc<Station>,
    user: &User,
    csrf: &str,
    key: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let Some(id) = case_id(key) else {
        return not_found();
    };
    let reader = user.visibility();
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let Some(case) = docs.visible_case(&id, &reader).map_err(StoreError::from)? else {
                return Ok(None);
            };
            let rules = docs.rules().map_err(StoreError::from)?;
            let category = docs
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .find(|c| c.code == case.category);
            // The department the rules name for this category comes first.
            let suggested = rules
                .department_for(
                    Some(&case.category),
                    category.as_ref().map(|c| c.group.as_str()),
                )
                .code
                .clone();
            let mut departments: Vec<(String, String)> = rules
                .departments
                .into_iter()
                .map(|d| (d.code, d.name))
                .collect();
            departments.sort_by_key(|(code, _)| *code != suggested);
            let shop = match &case.shop_id {
                Some(id) => docs
                    .visible_shop(id, &reader)
                    .map_err(StoreError::from)?
                    .map(|s| format!("{}（{}）", s.name, s.code)),
                None => None,
            };
            let category = category.map_or_else(|| case.category.clone(), |c| c.name);
            let phones = r.accounts().receipt_phones(&case.id)?;
            Ok(Some((case, departments, category, shop, phones)))
        })
        .await;
    let (case, departments, category, shop, phones) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return error_page(&e),
    };
    let mut page = page_of(user, csrf, key, case, departments, error);
    page.category = category;
    page.shop_name = shop.unwrap_or_default();
    page.phones = phones;
    render(status, &page)
}

fn page_of<'a>(
    user: &'a User,
    csrf: &'a str,
    key: &'a str,
    case: Case,
    departments: Vec<(String, String)>,
    error: Option<String>,
) -> CasePage<'a> {
    let replay = case.replay();
    let history = case
        .history
        .iter()
        .zip(
            replay
                .effective
                .iter()
                .copied()
                .chain(std::iter::repeat(false)),
        )
        .map(|(h, effective)| Step {
            at: beijing(h.at),
            status: h.status.label_zh(),
            effective,
            by: h.by.clone(),
            role: h.role.map_or("", |r| r.label_zh()),
            note: match (&h.department, h.whistle) {
                (Some(d), Some(w)) => format!(
                    "{}（{}）{}",
                    departments
                        .iter()
                        .find(|(code, _)| code == d)
                        .map_or(d, |(_, name)| name),
                    w.label_zh(),
                    h.note
                        .as_deref()
                        .map(|n| format!("：{n}"))
                        .unwrap_or_default()
                ),
                _ => h.note.clone().unwrap_or_default(),
            },
        })
        .collect();
    let linked = case
        .linked
        .iter()
        .map(|l| {
            format!(
                "{}，{}（{}）：{}",
                beijing(l.reported_at),
                l.reported_by,
                l.source.label_zh(),
                l.description
            )
        })
        .collect();
    let actions: Vec<Action> = moves_from(replay.status, user.role)
        .into_iter()
        .map(|to| Action {
            to: to.as_str(),
            label: move_label_zh(replay.status, to),
        })
        .collect();
    let dispatching = actions
        .iter()
        .any(|a| a.to == CaseStatus::Dispatched.as_str());
    let photos = case
        .photos
        .iter()
        .map(|hash| {
            let meta = case.evidence.get(hash);
            Photo {
                thumb: meta.map_or_else(|| hash.clone(), |m| m.thumb.clone()),
                taken: meta
                    .and_then(|m| m.taken_at)
                    .map(beijing)
                    .unwrap_or_default(),
                hash: hash.clone(),
            }
        })
        .collect();
    CasePage {
        me: &user.name,
        csrf,
        key,
        short: key.chars().take(8).collect(),
        status: replay.status.label_zh(),
        category: case.category.clone(),
        source: case.source.label_zh(),
        reported_by: case.reported_by.clone(),
        reported_at: beijing(case.reported_at),
        description: case.description.clone(),
        shop: case.shop_id.clone().unwrap_or_default(),
        shop_name: String::new(),
        lat: case.location.lat,
        lon: case.location.lon,
        area: [case.subdistrict.clone(), case.lane.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / "),
        photos,
        history,
        linked,
        actions,
        departments: if dispatching { departments } else { Vec::new() },
        error,
        phones: Vec::new(),
        id: case.id,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MoveForm {
    to: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    whistle: String,
}

fn parse_status(s: &str) -> Option<CaseStatus> {
    use CaseStatus::*;
    [
        Reported,
        Accepted,
        Rejected,
        Dispatched,
        InProgress,
        AwaitingVerification,
        Closed,
    ]
    .into_iter()
    .find(|c| c.as_str() == s)
}

/// Moves a case: session and CSRF token first, then whether the user may see
/// the case (404 otherwise), then the core's `move_case` as the user in
/// their role, with the writer held so the status it checks is current.
pub(super) async fn make_move(
    State(station): State<Arc<Station>>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    let (user, csrf, form) = match signed_form::<MoveForm>(&station, request, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(id) = case_id(&key) else {
        return not_found();
    };
    let Some(to) = parse_status(&form.to) else {
        let error = Some("没有这个操作".to_string());
        return show(&station, &user, &csrf, &key, StatusCode::BAD_REQUEST, error).await;
    };
    let whistle = match form.whistle.as_str() {
        "urgent" => Some(Whistle::Urgent),
        "routine" => Some(Whistle::Routine),
        _ => None,
    };
    let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let step = CaseMove {
        to,
        by: user.id.clone(),
        role: user.role,
        at: Utc::now(),
        note: non_empty(&form.note),
        department: non_empty(&form.department).filter(|_| to == CaseStatus::Dispatched),
        whistle: whistle.filter(|_| to == CaseStatus::Dispatched),
    };
    let reader = user.visibility();
    let moved = station
        .write(move |s| {
            let docs = s.documents();
            if docs
                .visible_case(&id, &reader)
                .map_err(StoreError::from)?
                .is_none()
            {
                return Ok(None);
            }
            Ok(Some(docs.move_case(&id, step)))
        })
        .await;
    match moved {
        Err(e) => error_page(&e),
        Ok(None) => not_found(),
        Ok(Some(Err(e))) => {
            let error = Some(format!("未能{}：{e}", form.to_label()));
            show(&station, &user, &csrf, &key, StatusCode::CONFLICT, error).await
        }
        Ok(Some(Ok(()))) => {
            tracing::info!(by = %user.id, case = %key, to = %form.to, "case moved in the console");
            let mut response = Redirect::to(&format!("/console/case/{key}")).into_response();
            *response.status_mut() = StatusCode::SEE_OTHER;
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
    }
}

impl MoveForm {
    fn to_label(&self) -> &'static str {
        parse_status(&self.to).map_or("操作", |s| s.label_zh())
    }
}

/// A photo or its thumbnail, for a user who may see a record it belongs to.
pub(super) async fn photo(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    crate::sync::visible_photo(&station, hash, user)
        .await
        .unwrap_or_else(|e| error_page(&e))
}
