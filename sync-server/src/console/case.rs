//! A case's page: what was reported, by whom and where, and its history with
//! steps that took no effect marked, for users who may see the case (others
//! get 404, as for a case that does not exist).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::beijing;
use super::web::{error_page, render, signed_in};
use crate::sync::{ApiError, Station};

struct Step {
    at: String,
    status: &'static str,
    effective: bool,
    by: String,
    role: &'static str,
    note: String,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage<'a> {
    me: &'a str,
    id: String,
    short: String,
    status: &'static str,
    category: String,
    source: &'static str,
    reported_by: String,
    reported_at: String,
    description: String,
    shop: String,
    place: String,
    area: String,
    photos: usize,
    history: Vec<Step>,
    linked: Vec<String>,
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let user = match signed_in(&station, &headers).await {
        Err(e) => return error_page(&e),
        Ok(None) => return Redirect::to("/console/login").into_response(),
        Ok(Some((user, _))) => user,
    };
    let not_found = || {
        error_page(&ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这个案件，或您无权查看",
        ))
    };
    if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    let id = format!("case/{key}");
    let reader = user.visibility();
    let found = station
        .read(move |r| {
            Ok(r.documents()
                .visible_case(&id, &reader)
                .map_err(crate::store::StoreError::from)?)
        })
        .await;
    let case = match found {
        Ok(Some(case)) => case,
        Ok(None) => return not_found(),
        Err(e) => return error_page(&e),
    };
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
            note: h.note.clone().unwrap_or_default(),
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
    render(
        StatusCode::OK,
        &CasePage {
            me: &user.name,
            short: key.chars().take(8).collect(),
            status: replay.status.label_zh(),
            category: case.category.clone(),
            source: case.source.label_zh(),
            reported_by: case.reported_by.clone(),
            reported_at: beijing(case.reported_at),
            description: case.description.clone(),
            shop: case.shop_id.clone().unwrap_or_default(),
            place: format!("{:.6}, {:.6}", case.location.lat, case.location.lon),
            area: [case.subdistrict.clone(), case.lane.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / "),
            photos: case.photos.len(),
            history,
            linked,
            id: case.id,
        },
    )
}
