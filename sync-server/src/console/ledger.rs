//! 整改台账: the open rectification items of the signed-in user's area,
//! soonest deadline first, overdue marked; filtered, and exported as CSV
//! (UTF-8 with a BOM, so Excel reads the Chinese).

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use menqian_core::store::ledger::{LedgerState, RectificationItem};
use serde::Deserialize;

use super::beijing;
use super::web::{error_page, render, signed_in};
use crate::store::User;
use crate::sync::Station;

struct Row {
    deadline: String,
    state: &'static str,
    overdue: bool,
    shop: String,
    item: String,
    opened: String,
    case: String,
}

#[derive(Template)]
#[template(path = "console/ledger.html")]
struct LedgerPage<'a> {
    me: &'a str,
    area: String,
    overdue_only: bool,
    rows: Vec<Row>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    #[serde(default)]
    overdue: Option<String>,
}

impl Filter {
    fn overdue_only(&self) -> bool {
        self.overdue.as_deref() == Some("1")
    }
}

fn is_overdue(item: &RectificationItem) -> bool {
    matches!(item.state, LedgerState::Overdue | LedgerState::Escalated)
}

/// The signed-in user's open items, as the filter keeps them.
async fn items(
    station: &Arc<Station>,
    headers: &HeaderMap,
    filter: &Filter,
) -> Result<(User, Vec<RectificationItem>), Response> {
    let user = match signed_in(station, headers).await {
        Err(e) => return Err(error_page(&e)),
        Ok(None) => return Err(Redirect::to("/console/login").into_response()),
        Ok(Some((user, _))) => user,
    };
    let area = user.area.clone();
    let shared = station.clone();
    let found = station
        .read(move |r| super::open_items(&shared, r.documents(), &area))
        .await;
    match found {
        Ok(items) => {
            let mut items = items.as_ref().clone();
            if filter.overdue_only() {
                items.retain(is_overdue);
            }
            Ok((user, items))
        }
        Err(e) => Err(error_page(&e)),
    }
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let filter = filter.map(|Query(f)| f).unwrap_or_default();
    let (user, items) = match items(&station, &headers, &filter).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let rows = items
        .into_iter()
        .map(|i| Row {
            deadline: beijing(i.deadline),
            state: i.state.label_zh(),
            overdue: is_overdue(&i),
            shop: i.shop_name,
            item: i.item_text,
            opened: beijing(i.opened_at),
            case: i.case_id.unwrap_or_default(),
        })
        .collect();
    render(
        StatusCode::OK,
        &LedgerPage {
            me: &user.name,
            area: user.area.label_zh(),
            overdue_only: filter.overdue_only(),
            rows,
        },
    )
}

pub(super) async fn csv(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let filter = filter.map(|Query(f)| f).unwrap_or_default();
    let (_, items) = match items(&station, &headers, &filter).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    super::csv_download(
        "ledger.csv",
        "整改期限,状态,商户,检查项,发现时间,发现人,案件",
        items.into_iter().map(|i| {
            [
                beijing(i.deadline),
                i.state.label_zh().to_string(),
                i.shop_name,
                i.item_text,
                beijing(i.opened_at),
                i.opened_by,
                i.case_id.unwrap_or_default(),
            ]
        }),
    )
}
