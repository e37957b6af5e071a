//! 概况: the signed-in user's first page. Today's, this week's and this
//! month's figures over what they may see (the core's `Store::overview`),
//! devices that have not synced for a day, and live updates: the page
//! listens to `/console/events` (server-sent events, one whenever the change
//! feed moves) and fetches its figures again. Without JavaScript it is the
//! same page, as of its loading.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use menqian_core::{Overview, Role};

use super::beijing;
use super::web::{error_page, member, render};
use crate::store::{StoreError, User};
use crate::sync::Station;

struct Span {
    label: &'static str,
    cases: u64,
    by_source: Vec<(&'static str, u64)>,
    close_rate: String,
    on_time_rate: String,
    inspections: u64,
    top: Vec<(String, u64)>,
}

struct Quiet {
    name: String,
    user: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage<'a> {
    me: &'a str,
    admin: bool,
    role: &'static str,
    area: String,
    csrf: &'a str,
    at: String,
    spans: Vec<Span>,
    open_by_status: Vec<(&'static str, u64)>,
    open_items: u64,
    overdue_items: u64,
    shops_due: Option<u64>,
    quiet: Vec<Quiet>,
    /// The change feed's head the figures were computed at.
    head: u64,
}

/// An overview is reused for this long whatever moves (a busy feed moves
/// every second) …
const FRESH: std::time::Duration = std::time::Duration::from_secs(5);
/// … and at most this long while the feed stands still.
const KEEP: std::time::Duration = std::time::Duration::from_secs(60);

fn anyone(_: &User) -> bool {
    true
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_string(), |r| format!("{r:.1}%"))
}

pub(super) async fn page(State(station): State<Arc<Station>>, headers: HeaderMap) -> Response {
    let (user, csrf) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = Utc::now();
    let (reader, area, reader_id) = (user.visibility(), user.area.clone(), user.id.clone());
    let cached = station.clone();
    let overview = station
        .read(move |r| {
            let docs = r.documents();
            let head = docs.feed_head().map_err(StoreError::from)?;
            // Per area and user (a reader also sees their own reports).
            cached
                .overviews
                .get_or(format!("{area}/{}", reader_id), head, FRESH, KEEP, || {
                    docs.overview(&reader, &area, now)
                        .map_err(|e| crate::sync::ApiError::from(StoreError::from(e)))
                })
        })
        .await;
    let (head, overview) = match overview {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let listed = station
        .read(|r| Ok((r.accounts().users()?, r.accounts().devices()?)))
        .await;
    let (users, devices) = match listed {
        Ok(listed) => listed,
        Err(e) => return error_page(&e),
    };
    // Not synced for a day: devices of users in the viewer's area.
    let recent = station.traffic.seen();
    let day_ago = (now - Duration::days(1)).timestamp_millis();
    let quiet = devices
        .into_iter()
        .filter(|d| !d.revoked)
        .filter(|d| {
            users
                .iter()
                .any(|u| u.id == d.user_id && user.area.covers(&u.area))
        })
        .filter_map(|d| {
            let seen = recent.get(&d.id).copied().or(d.last_seen_ms);
            (seen.is_none_or(|s| s < day_ago)).then(|| Quiet {
                last_seen: seen
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or_else(|| "从未同步".to_string(), beijing),
                name: d.name,
                user: d.user_id,
            })
        })
        .collect();
    render(
        StatusCode::OK,
        &home(&user, &csrf, &overview, quiet, beijing(now), head),
    )
}

fn home<'a>(
    user: &'a User,
    csrf: &'a str,
    o: &Overview,
    quiet: Vec<Quiet>,
    at: String,
    head: u64,
) -> HomePage<'a> {
    HomePage {
        head,
        me: &user.name,
        admin: user.role == Role::Admin,
        role: user.role.label_zh(),
        area: user.area.label_zh(),
        csrf,
        at,
        spans: o
            .spans
            .iter()
            .map(|s| Span {
                label: s.label,
                cases: s.cases,
                by_source: s
                    .by_source
                    .iter()
                    .map(|(source, n)| (source.label_zh(), *n))
                    .collect(),
                close_rate: percent(s.close_rate()),
                on_time_rate: percent(s.on_time_rate()),
                inspections: s.inspections,
                top: s
                    .top_categories
                    .iter()
                    .map(|(code, name, n)| {
                        (
                            if name.is_empty() {
                                code.clone()
                            } else {
                                name.clone()
                            },
                            *n,
                        )
                    })
                    .collect(),
            })
            .collect(),
        open_by_status: o
            .open_by_status
            .iter()
            .map(|(s, n)| (s.label_zh(), *n))
            .collect(),
        open_items: o.open_items,
        overdue_items: o.overdue_items,
        shops_due: o.shops_due,
        quiet,
    }
}

/// Server-sent events: one `feed` event whenever the change feed moves, a
/// comment every 15 s to keep proxies from closing the stream.
pub(super) async fn events(State(station): State<Arc<Station>>, headers: HeaderMap) -> Response {
    if let Err(response) = member(&station, &headers, anyone).await {
        return response;
    }
    let mut feed = station.feed.subscribe();
    feed.mark_unchanged();
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.changed().await.ok()?;
        let head = *feed.borrow_and_update();
        Some((
            Ok::<_, std::convert::Infallible>(Event::default().data(head.to_string())),
            feed,
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}
