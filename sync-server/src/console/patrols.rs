//! 巡查: each lane chief's week the signed-in user may follow (their lanes'
//! coverage, problems found, cases handled and open: the core's
//! `lane_chief_week`), the week's patrols, and a patrol's track on the map
//! with the lanes it covered. A lane chief sees their own; a district
//! supervisor or administrator every lane chief; patrols are visible as sync
//! decides (the whole district, or one's own).

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDate, Utc};
use menqian_core::model::period::{Period, beijing_midnight};
use menqian_core::model::track::{TrackRules, to_geojson};
use menqian_core::{Area, Role};
use serde::Deserialize;

use super::beijing;
use super::web::{error_page, member, render};
use crate::store::{StoreError, User};
use crate::sync::{ApiError, Station};

fn anyone(_: &User) -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WeekQuery {
    /// Any day of the week, `YYYY-MM-DD` (Beijing); this week by default.
    #[serde(default)]
    week: String,
}

struct PatrolRow {
    id: String,
    started: String,
    minutes: i64,
    points: u32,
}

struct ChiefWeek {
    user: String,
    name: String,
    lanes: Vec<(String, String)>,
    lanes_covered: u32,
    patrols: u32,
    km: String,
    found: u32,
    handled: u32,
    open: u32,
    rows: Vec<PatrolRow>,
}

#[derive(Template)]
#[template(path = "console/patrols.html")]
struct PatrolsPage<'a> {
    me: &'a str,
    week: String,
    date: String,
    previous: String,
    next: String,
    chiefs: Vec<ChiefWeek>,
}

/// The lane chiefs `viewer` may follow: themself, or for a reader of the
/// whole district every lane chief (patrols reach only district readers).
fn followed(viewer: &User, users: Vec<User>) -> Vec<(User, Vec<String>)> {
    users
        .into_iter()
        .filter(|u| u.role == Role::LaneChief)
        .filter(|u| u.id == viewer.id || viewer.area == Area::District)
        .filter_map(|u| match u.area.clone() {
            Area::Lanes(lanes) => Some((u, lanes)),
            _ => None,
        })
        .collect()
}

pub(super) async fn page(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<WeekQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let at = NaiveDate::parse_from_str(q.week.trim(), "%Y-%m-%d")
        .map(|d| beijing_midnight(d) + Duration::hours(12))
        .unwrap_or_else(|_| Utc::now());
    let week = Period::week_of(at);
    let users = match station.read(|r| Ok(r.accounts().users()?)).await {
        Ok(users) => users,
        Err(e) => return error_page(&e),
    };
    let chiefs = followed(&user, users);
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let mut out = Vec::new();
            for (chief, lanes) in chiefs {
                let w = docs
                    .lane_chief_week(&chief.id, &lanes, at)
                    .map_err(StoreError::from)?;
                let patrols = docs
                    .patrols_between(&chief.id, week.start, week.end)
                    .map_err(StoreError::from)?;
                out.push((chief, w, patrols));
            }
            Ok(out)
        })
        .await;
    let weeks = match found {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let day = |t: chrono::DateTime<Utc>| {
        menqian_core::model::period::beijing_date(t)
            .format("%Y-%m-%d")
            .to_string()
    };
    let chiefs = weeks
        .into_iter()
        .map(|(chief, w, patrols)| ChiefWeek {
            lanes: w
                .lanes
                .iter()
                .map(|(lane, share)| (lane.clone(), format!("{:.0}%", share * 100.0)))
                .collect(),
            lanes_covered: w.lanes_covered,
            patrols: w.patrols,
            km: format!("{:.1}", w.patrol_m / 1000.0),
            found: w.found,
            handled: w.handled,
            open: w.open,
            rows: patrols
                .into_iter()
                .map(|p| PatrolRow {
                    minutes: p.ended_at.map_or(0, |e| (e - p.started_at).num_minutes()),
                    started: beijing(p.started_at),
                    points: p.points,
                    id: p.id,
                })
                .collect(),
            user: chief.id,
            name: chief.name,
        })
        .collect();
    render(
        StatusCode::OK,
        &PatrolsPage {
            me: &user.name,
            week: week.label(),
            date: day(at),
            previous: day(week.start - Duration::days(1)),
            next: day(week.end + Duration::hours(12)),
            chiefs,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PatrolQuery {
    #[serde(default)]
    id: String,
}

#[derive(Template)]
#[template(path = "console/patrol.html")]
struct PatrolPage<'a> {
    me: &'a str,
    id: String,
    user: String,
    started: String,
    km: String,
    minutes: i64,
    lanes: Vec<(String, String, String)>,
}

/// A patrol's report, its lanes, its id and who walked it.
type Walked = (
    menqian_core::model::track::TrackReport,
    Vec<menqian_core::model::track::LaneLine>,
    String,
    String,
);

/// A patrol the user may see, with its report and lanes (`None`: 404).
async fn report(
    station: &Arc<Station>,
    user: &User,
    id: String,
) -> Result<Option<Walked>, ApiError> {
    if !id.starts_with("patrol/") || id.len() > 80 {
        return Ok(None);
    }
    let reader = user.visibility();
    station
        .read(move |r| {
            let docs = r.documents();
            if docs
                .visible_documents(std::slice::from_ref(&id), &reader)
                .map_err(StoreError::from)?
                .is_empty()
            {
                return Ok(None);
            }
            let (report, lanes) = docs
                .patrol_report_near(&id, &TrackRules::default())
                .map_err(StoreError::from)?;
            let owner = docs.patrol_user(&id).map_err(StoreError::from)?;
            Ok(Some((report, lanes, id, owner)))
        })
        .await
}

fn not_found() -> Response {
    error_page(&ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "没有这次巡查，或您无权查看",
    ))
}

pub(super) async fn patrol(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<PatrolQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (report, _, id, owner) = match report(&station, &user, q.id).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => return error_page(&e),
    };
    render(
        StatusCode::OK,
        &PatrolPage {
            me: &user.name,
            started: report
                .track
                .first()
                .map(|p| beijing(p.at))
                .unwrap_or_default(),
            km: format!("{:.2}", report.distance_m / 1000.0),
            minutes: report.duration_s / 60,
            lanes: report
                .lanes
                .iter()
                .map(|l| {
                    (
                        l.name.clone(),
                        format!("{:.0} 米", l.length_m),
                        format!("{:.0}%", l.covered * 100.0),
                    )
                })
                .collect(),
            user: owner,
            id,
        },
    )
}

/// The patrol's cleaned track and its lanes as GeoJSON, for the map.
pub(super) async fn geojson(
    State(station): State<Arc<Station>>,
    headers: HeaderMap,
    query: Result<Query<PatrolQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let (user, _) = match member(&station, &headers, anyone).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match report(&station, &user, q.id).await {
        Ok(Some((report, lanes, id, _))) => Json(to_geojson(&report, &lanes, &id)).into_response(),
        Ok(None) => not_found(),
        Err(e) => error_page(&e),
    }
}
