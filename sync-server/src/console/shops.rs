//! 商户: search the registry of the user's area (the core's Chinese bigram
//! search), a shop's page (its fields, standing, inspections, open items and
//! cases, its zone on the map) and editing it. An edit is a `ShopPatch`
//! through the core's `update_shop`, as a phone writes one, so it reaches
//! phones at their next sync; roles that may not change the registry on a
//! phone may not here either.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use menqian_core::access::may_edit_registry;
use menqian_core::model::shop::{Contact, ShopCategory, ShopPatch, ShopStatus};
use menqian_core::{CaseFilter, Shop};
use serde::Deserialize;

use super::beijing;
use super::web::{error_page, member, render, signed_form};
use crate::store::{StoreError, User};
use crate::sync::{ApiError, Station};

/// Search results shown at most.
const RESULTS: u32 = 100;

fn anyone(_: &User) -> bool {
    true
}

fn editor(user: &User) -> bool {
    may_edit_registry(user.role)
}

/// Who may confirm a camera's reminder on the spot: supervisors and
/// administrators.
fn confirmer(user: &User) -> bool {
    matches!(
        user.role,
        menqian_core::Role::Supervisor | menqian_core::Role::Admin
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmReminder {
    shop: String,
    /// A number, read as text (a flattened form gives every field as text).
    reminder: String,
}

/// 确认仍存在: a supervisor confirms a camera's or sensor's reminder, and it
/// becomes a case dispatched by the rules, as a repeat alert past the
/// deadline would make it.
pub(super) async fn confirm_reminder(
    State(station): State<Arc<Station>>,
    request: Request,
) -> Response {
    let (user, _, form) = match signed_form::<ConfirmReminder>(&station, request, confirmer).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Ok(reminder_id) = form.reminder.parse::<i64>() else {
        return not_found();
    };
    if form.shop.len() > 80 {
        return not_found();
    }
    let (reader, by) = (user.visibility(), user.id.clone());
    let done = station
        .write(move |w| {
            let now = Utc::now();
            let docs = w.documents();
            let Some(shop) = docs
                .visible_shop(&form.shop, &reader)
                .map_err(StoreError::from)?
            else {
                return Ok(None);
            };
            let Some(reminder) = w
                .accounts_read()
                .reminders_of(&form.shop, now - chrono::Duration::days(7))?
                .into_iter()
                .find(|m| m.id == reminder_id)
            else {
                return Ok(None);
            };
            let description = format!("督查员确认摄像头提醒的问题仍存在（{}）", shop.name);
            let photos = w.accounts().reminder_photos(reminder.id)?;
            let case_id = w
                .documents()
                .escalate_reminder(
                    &form.shop,
                    &reminder.category,
                    &description,
                    photos,
                    now,
                    &by,
                )
                .map_err(StoreError::from)?;
            w.accounts().set_reminder_case(reminder.id, &case_id)?;
            Ok(Some(case_id))
        })
        .await;
    match done {
        Ok(Some(case_id)) => Redirect::to(&format!(
            "/console/case/{}",
            case_id.trim_start_matches("case/")
        ))
        .into_response(),
        Ok(None) => not_found(),
        Err(e) => error_page(&e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

struct Found {
    id: String,
    code: String,
    name: String,
    address: String,
    lane: String,
}

#[derive(Template)]
#[template(path = "console/shops.html")]
struct SearchPage<'a> {
    me: &'a str,
    area: String,
    q: &'a str,
    searched: bool,
    found: Vec<Found>,
}

pub(super) async fn search(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let text: String = q.q.trim().chars().take(50).collect();
    let (asked, area) = (text.clone(), user.area.clone());
    let found = station
        .read(move |r| {
            Ok(r.documents()
                .search_shops_in(&asked, &area, RESULTS)
                .map_err(StoreError::from)?)
        })
        .await;
    let found = match found {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    render(
        StatusCode::OK,
        &SearchPage {
            me: &user.name,
            area: user.area.label_zh(),
            searched: !text.is_empty(),
            q: &text,
            found: found
                .into_iter()
                .map(|s| Found {
                    id: s.id,
                    code: s.code,
                    name: s.name,
                    address: s.address,
                    lane: s.lane.unwrap_or_default(),
                })
                .collect(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShopQuery {
    #[serde(default)]
    id: String,
    /// `1` after an edit was saved.
    #[serde(default)]
    saved: String,
}

struct InspectionRow {
    at: String,
    inspector: String,
    score: String,
    verdict: &'static str,
    failed: String,
    /// (photo, thumbnail) of the failed items.
    photos: Vec<(String, String)>,
}

struct ItemRow {
    item: String,
    deadline: String,
    state: &'static str,
}

struct CaseRow {
    key: String,
    reported: String,
    status: &'static str,
    category: String,
}

#[derive(Template)]
#[template(path = "console/shop.html")]
struct ShopPage<'a> {
    me: &'a str,
    csrf: &'a str,
    editable: bool,
    shop: Shop,
    id: String,
    category: &'static str,
    status: &'static str,
    letter: String,
    categories: Vec<(&'static str, &'static str)>,
    credit: String,
    grade: String,
    stars: String,
    red_flag: Option<&'static str>,
    last_week: String,
    last_inspected: String,
    next_due: String,
    inspections: Vec<InspectionRow>,
    items: Vec<ItemRow>,
    cases: Vec<CaseRow>,
    /// Camera and sensor reminders not yet cases: (id, what, seen, by when).
    reminders: Vec<(i64, String, String, String)>,
    /// May confirm a reminder (supervisors and administrators).
    confirmer: bool,
    notice: Option<String>,
    error: Option<String>,
}

/// Everything the shop's page shows, read on one connection.
struct ShopView {
    shop: Shop,
    standing: Option<menqian_core::Standing>,
    inspections: Vec<menqian_core::store::InspectionSheet>,
    items: Vec<menqian_core::store::ledger::RectificationItem>,
    cases: Vec<menqian_core::CaseSummary>,
    names: std::collections::HashMap<String, String>,
    reminders: Vec<crate::store::Reminder>,
}

fn not_found() -> Response {
    error_page(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "没有这个商户，或您无权查看",
    ))
}

/// Inspections shown on a shop's page at most (newest first).
const INSPECTIONS: usize = 20;

async fn view(
    station: &Arc<Station>,
    user: &User,
    id: String,
) -> Result<Option<ShopView>, ApiError> {
    let reader = user.visibility();
    station
        .read(move |r| {
            let docs = r.documents();
            let now = Utc::now();
            let Some(shop) = docs.visible_shop(&id, &reader).map_err(StoreError::from)? else {
                return Ok(None);
            };
            // A shop never inspected and unscored still has a page.
            let standing = docs.standing(&id, now).ok();
            let mut refs = docs.inspections_of_shop(&id).map_err(StoreError::from)?;
            refs.sort_by_key(|i| std::cmp::Reverse(i.started_at));
            let inspections = refs
                .iter()
                .take(INSPECTIONS)
                .map(|i| docs.inspection_sheet(&i.id))
                .collect::<menqian_core::Result<Vec<_>>>()
                .map_err(StoreError::from)?;
            let items = docs
                .rectification_ledger(menqian_core::store::ledger::Scope::Shop(&id), now)
                .map_err(StoreError::from)?
                .into_iter()
                .filter(|i| i.state != menqian_core::store::ledger::LedgerState::Closed)
                .collect();
            let filter = CaseFilter {
                shop_id: Some(id.clone()),
                ..Default::default()
            };
            let (cases, _) = docs
                .case_list(&filter, &reader, 0, 50)
                .map_err(StoreError::from)?;
            let names = docs
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .map(|c| (c.code, c.name))
                .collect();
            let reminders = r
                .accounts()
                .reminders_of(&id, now - chrono::Duration::hours(24))?;
            Ok(Some(ShopView {
                shop,
                standing,
                inspections,
                items,
                cases,
                names,
                reminders,
            }))
        })
        .await
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<ShopQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, csrf) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let notice = (q.saved == "1").then(|| "已保存；手机下次同步时收到".to_string());
    show(&station, &user, &csrf, q.id, StatusCode::OK, notice, None).await
}

async fn show(
    station: &Arc<Station>,
    user: &User,
    csrf: &str,
    id: String,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    if id.len() > 80 {
        return not_found();
    }
    let v = match view(station, user, id.clone()).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(),
        Err(e) => return error_page(&e),
    };
    let standing = v.standing.as_ref();
    let page = ShopPage {
        me: &user.name,
        csrf,
        reminders: v
            .reminders
            .iter()
            .map(|m| {
                (
                    m.id,
                    v.names
                        .get(&m.category)
                        .cloned()
                        .unwrap_or(m.category.clone()),
                    beijing(m.first_at),
                    beijing(m.deadline),
                )
            })
            .collect(),
        confirmer: confirmer(user),
        editable: may_edit_registry(user.role),
        category: v.shop.category.label_zh(),
        status: match v.shop.status {
            ShopStatus::Active => "在营",
            ShopStatus::Closed => "已关闭",
        },
        letter: v.shop.letter.as_ref().map_or_else(
            || "未签订".to_string(),
            |l| format!("{}（{} 签订）", l.version, l.signed_on),
        ),
        categories: ShopCategory::ALL
            .iter()
            .map(|c| (c.as_str(), c.label_zh()))
            .collect(),
        credit: standing.map_or_else(String::new, |s| s.credit.score.to_string()),
        grade: standing.map_or_else(String::new, |s| s.credit.grade.label_zh().to_string()),
        stars: standing.map_or_else(String::new, |s| "★".repeat(usize::from(s.credit.stars))),
        red_flag: standing.and_then(|s| s.badge_zh()),
        last_week: standing
            .and_then(|s| s.last_week.as_ref())
            .map_or_else(String::new, |r| {
                format!("{} 分，街内第 {} / {} 名", r.score.score, r.rank, r.of)
            }),
        last_inspected: standing
            .and_then(|s| s.last_inspected)
            .map_or_else(String::new, beijing),
        next_due: standing
            .and_then(|s| s.next_due)
            .map_or_else(String::new, beijing),
        inspections: v
            .inspections
            .iter()
            .map(|sheet| {
                let i = &sheet.inspection;
                InspectionRow {
                    at: beijing(i.started_at),
                    inspector: i.inspector.clone(),
                    score: i.score.map_or_else(String::new, |s| s.to_string()),
                    verdict: i.verdict.map_or("进行中", |v| v.label_zh()),
                    failed: sheet
                        .failed()
                        .map(|l| l.text.clone())
                        .collect::<Vec<_>>()
                        .join("；"),
                    photos: sheet
                        .failed()
                        .filter_map(|l| l.result.as_ref())
                        .flat_map(|r| r.photos.iter())
                        .map(|hash| {
                            let thumb = i
                                .evidence
                                .get(hash)
                                .map_or_else(|| hash.clone(), |m| m.thumb.clone());
                            (hash.clone(), thumb)
                        })
                        .collect(),
                }
            })
            .collect(),
        items: v
            .items
            .iter()
            .map(|i| ItemRow {
                item: i.item_text.clone(),
                deadline: beijing(i.deadline),
                state: i.state.label_zh(),
            })
            .collect(),
        cases: v
            .cases
            .into_iter()
            .map(|c| CaseRow {
                key: c.id.trim_start_matches("case/").to_string(),
                reported: beijing(c.reported_at),
                status: c.status.label_zh(),
                category: v.names.get(&c.category).cloned().unwrap_or(c.category),
            })
            .collect(),
        notice,
        error,
        id,
        shop: v.shop,
    };
    render(status, &page)
}

#[derive(Debug, Deserialize)]
pub(super) struct EditForm {
    id: String,
    name: String,
    address: String,
    category: String,
    person: String,
    phone: String,
    status: String,
}

/// Saves an edit: the session, the role and the CSRF token first, then
/// whether the user may see the shop (404 otherwise), then the core's
/// `update_shop` with only the fields that changed.
pub(super) async fn edit(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (user, csrf, form) = match signed_form::<EditForm>(&station, request, editor).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = form.id.clone();
    if id.len() > 80 {
        return not_found();
    }
    let (Some(category), Some(status)) = (
        ShopCategory::parse(&form.category),
        ShopStatus::parse(&form.status),
    ) else {
        let error = Some("类别或状态无效".to_string());
        return show(
            &station,
            &user,
            &csrf,
            id,
            StatusCode::BAD_REQUEST,
            None,
            error,
        )
        .await;
    };
    let reader = user.visibility();
    let shop_id = id.clone();
    let saved = station
        .write(move |s| {
            let docs = s.documents();
            let Some(old) = docs
                .visible_shop(&shop_id, &reader)
                .map_err(StoreError::from)?
            else {
                return Ok(None);
            };
            let mut new = old.clone();
            new.name = form.name.trim().to_string();
            new.address = form.address.trim().to_string();
            new.category = category;
            new.contact = Contact {
                person: form.person.trim().to_string(),
                phone: form.phone.trim().to_string(),
            };
            new.status = status;
            let patch = ShopPatch::between(&old, &new);
            Ok(Some(docs.update_shop(&shop_id, patch)))
        })
        .await;
    match saved {
        Err(e) => error_page(&e),
        Ok(None) => not_found(),
        Ok(Some(Err(e))) => {
            let error = Some(format!("未能保存：{e}"));
            show(
                &station,
                &user,
                &csrf,
                id,
                StatusCode::BAD_REQUEST,
                None,
                error,
            )
            .await
        }
        Ok(Some(Ok(()))) => {
            tracing::info!(by = %user.id, shop = %id, "shop edited in the console");
            let to = url::form_urlencoded::Serializer::new("/console/shop?".to_string())
                .append_pair("id", &id)
                .append_pair("saved", "1")
                .finish();
            let mut response = Redirect::to(&to).into_response();
            *response.status_mut() = StatusCode::SEE_OTHER;
            response
        }
    }
}
