//! 地图: every shop of the user's area (clustered when zoomed out, zones when
//! zoomed in), open cases and failed items coloured by status, and a heat
//! layer of the problems reported in a period. No tile server is reachable
//! from a station on an intranet: the map draws the station's own data.
//! The page is the one console page that needs JavaScript.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use menqian_core::{CaseFilter, CaseStatus};
use serde::{Deserialize, Serialize};

use super::web::{error_page, member, render};
use crate::store::{StoreError, User};
use crate::sync::{ApiError, Station};

/// The statuses of a case still being handled.
const OPEN: [CaseStatus; 5] = [
    CaseStatus::Reported,
    CaseStatus::Accepted,
    CaseStatus::Dispatched,
    CaseStatus::InProgress,
    CaseStatus::AwaitingVerification,
];
/// Open cases drawn at most, per status.
const OPEN_PER_STATUS: u32 = 5_000;
/// Reports the heat layer sums at most.
const HEAT_POINTS: u32 = 200_000;
/// The map's data is reused for this long whatever moves, and at most this
/// long while the feed stands still.
const FRESH: std::time::Duration = std::time::Duration::from_secs(5);
const KEEP: std::time::Duration = std::time::Duration::from_secs(60);
/// Zones sent for one view at most.
const ZONES: u32 = 3_000;

fn anyone(_: &User) -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct MapQuery {
    /// The heat layer's period: the last 7, 30 or 84 days.
    #[serde(default)]
    days: Option<i64>,
    /// A category code for the heat layer, or all.
    #[serde(default)]
    category: Option<String>,
    /// Where to centre (a case's or a shop's point).
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
}

impl MapQuery {
    fn days(&self) -> i64 {
        self.days.filter(|d| [7, 30, 84].contains(d)).unwrap_or(30)
    }

    fn category(&self) -> Option<String> {
        self.category
            .as_deref()
            .map(str::trim)
            // Codes such as `0504` or a district's own `L-01`.
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 16
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .map(String::from)
    }

    fn centre(&self) -> Option<(f64, f64)> {
        match (self.lat, self.lon) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Some((lat, lon))
            }
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "console/map.html")]
struct MapPage<'a> {
    me: &'a str,
    area: String,
    days: i64,
    category: String,
    categories: Vec<(String, String)>,
    data_url: String,
    centre: String,
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<MapQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let categories = station
        .read(|r| Ok(r.documents().categories().map_err(StoreError::from)?))
        .await;
    let categories = match categories {
        Ok(c) => c.into_iter().map(|c| (c.code, c.name)).collect(),
        Err(e) => return error_page(&e),
    };
    let category = q.category().unwrap_or_default();
    let data_url = url::form_urlencoded::Serializer::new("/console/map/data.json?".to_string())
        .append_pair("days", &q.days().to_string())
        .append_pair("category", &category)
        .finish();
    render(
        StatusCode::OK,
        &MapPage {
            me: &user.name,
            area: user.area.label_zh(),
            days: q.days(),
            category,
            categories,
            data_url,
            centre: q
                .centre()
                .map(|(lat, lon)| format!("{lat:.6},{lon:.6}"))
                .unwrap_or_default(),
        },
    )
}

/// What the map draws, in arrays to keep 21,728 shops small on the wire.
#[derive(Debug, Serialize)]
struct MapData {
    /// `[id, name, lat, lon]`
    shops: Vec<(String, String, f64, f64)>,
    /// Open cases: `[key, category, status, status label, lat, lon]`
    open: Vec<(String, String, &'static str, &'static str, f64, f64)>,
    /// Open rectification items: `[shop id, item, lat, lon, overdue]`
    items: Vec<(String, String, f64, f64, bool)>,
    /// Reports in the period: `[lat, lon]`
    heat: Vec<(f64, f64)>,
}

pub(super) async fn data(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<MapQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (days, category) = (q.days(), q.category());
    let shared = station.clone();
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let head = docs.feed_head().map_err(StoreError::from)?;
            let key = format!(
                "{}/{}/{days}/{}",
                user.area,
                user.id,
                category.as_deref().unwrap_or("")
            );
            let cache = shared.clone();
            cache.maps.get_or(key, head, FRESH, KEEP, || {
                let now = Utc::now();
                let reader = user.visibility();
                let shops = docs.shops_in(&user.area).map_err(StoreError::from)?;
                let at: HashMap<&str, (f64, f64)> = shops
                    .iter()
                    .map(|s| (s.id.as_str(), (s.lat, s.lon)))
                    .collect();
                let mut open = Vec::new();
                for status in OPEN {
                    let filter = CaseFilter {
                        status: Some(status),
                        ..Default::default()
                    };
                    let (cases, _) = docs
                        .case_list(&filter, &reader, 0, OPEN_PER_STATUS)
                        .map_err(StoreError::from)?;
                    open.extend(cases.into_iter().map(|c| {
                        (
                            c.id.trim_start_matches("case/").to_string(),
                            c.category,
                            status.as_str(),
                            status.label_zh(),
                            c.location.lat,
                            c.location.lon,
                        )
                    }));
                }
                let items = super::open_items(&shared, docs, &user.area)?
                    .iter()
                    .filter_map(|i| {
                        let (lat, lon) = *at.get(i.shop_id.as_str())?;
                        let overdue = i.deadline < now;
                        Some((i.shop_id.clone(), i.item_text.clone(), lat, lon, overdue))
                    })
                    .collect();
                let period = CaseFilter {
                    from: Some(now - Duration::days(days)),
                    category,
                    ..Default::default()
                };
                let (reports, _) = docs
                    .case_list(&period, &reader, 0, HEAT_POINTS)
                    .map_err(StoreError::from)?;
                let heat = reports
                    .into_iter()
                    .map(|c| (c.location.lat, c.location.lon))
                    .collect();
                let data = MapData {
                    shops: shops
                        .into_iter()
                        .map(|s| (s.id, s.name, s.lat, s.lon))
                        .collect(),
                    open,
                    items,
                    heat,
                };
                serde_json::to_vec(&data).map_err(|e| {
                    crate::sync::ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        e.to_string(),
                    )
                })
            })
        })
        .await;
    match found {
        Ok((_, json)) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json.as_ref().clone(),
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ZoneQuery {
    /// `south,west,north,east`
    bbox: String,
}

pub(super) async fn zones(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<ZoneQuery>, QueryRejection>,
) -> Response {
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let bad = || {
        error_page(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_bbox",
            "bbox 应为 south,west,north,east",
        ))
    };
    let Ok(Query(q)) = query else {
        return bad();
    };
    let parts: Vec<f64> = q
        .bbox
        .split(',')
        .filter_map(|p| p.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect();
    let [s, w, n, e] = parts[..] else {
        return bad();
    };
    let found = station
        .read(move |r| {
            Ok(r.documents()
                .zones_in(&user.area, (s, w, n, e), ZONES)
                .map_err(StoreError::from)?)
        })
        .await;
    match found {
        Ok(zones) => Json(
            zones
                .into_iter()
                .map(|(id, z)| {
                    let ring: Vec<(f64, f64)> = z.points().iter().map(|p| (p.lat, p.lon)).collect();
                    (id, ring)
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error_page(&e),
    }
}
