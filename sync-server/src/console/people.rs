//! 人员与设备: a district administrator's users, enrollment codes (text and
//! QR) and devices. Every request is checked for a session and the
//! administrator's role before its form is read.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use menqian_core::{Area, Role};
use serde::Deserialize;

use super::web::{error_page, member, render, signed_form};
use crate::store::User;
use crate::sync::Station;

/// How long a code issued in the console stays valid.
const CODE_HOURS: i64 = 24;

struct UserRow {
    id: String,
    name: String,
    role: &'static str,
    area: String,
    /// Whether the user may sign in to the console (and so have a password).
    console: bool,
}

struct DeviceRow {
    id: String,
    name: String,
    user: String,
    revoked: bool,
    /// When it last reached the station, Beijing time; empty: never.
    last_seen: String,
}

struct Enrollment {
    user: String,
    code: String,
    hours: i64,
    link: Option<String>,
    svg: String,
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct PeoplePage<'a> {
    me: &'a str,
    roles: Vec<(&'static str, &'static str)>,
    csrf: &'a str,
    users: Vec<UserRow>,
    devices: Vec<DeviceRow>,
    notice: Option<String>,
    error: Option<String>,
    enrollment: Option<Enrollment>,
    /// Residents' requests to become stewards, awaiting approval.
    requests: Vec<crate::store::StewardRequest>,
}

fn is_admin(user: &User) -> bool {
    user.role == Role::Admin
}

/// The page with what the store holds now.
async fn people(
    station: &Arc<Station>,
    me: &User,
    csrf: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    enrollment: Option<Enrollment>,
) -> Response {
    let listed = station
        .read(|r| {
            Ok((
                r.accounts().users()?,
                r.accounts().devices()?,
                r.accounts().steward_requests()?,
            ))
        })
        .await;
    let (users, devices, requests) = match listed {
        Ok(listed) => listed,
        Err(e) => return error_page(&e),
    };
    // What is not written down yet is newer than what is.
    let recent = station.traffic.seen();
    render(
        status,
        &PeoplePage {
            me: &me.name,
            roles: [
                Role::Officer,
                Role::LaneChief,
                Role::Steward,
                Role::Supervisor,
                Role::Admin,
            ]
            .into_iter()
            .map(|r| (r.as_str(), r.label_zh()))
            .collect(),
            csrf,
            requests: requests
                .into_iter()
                .filter(|r| r.user_id.is_none())
                .collect(),
            users: users
                .into_iter()
                .map(|u| UserRow {
                    console: super::may_sign_in(u.role),
                    role: u.role.label_zh(),
                    area: u.area.label_zh(),
                    id: u.id,
                    name: u.name,
                })
                .collect(),
            devices: devices
                .into_iter()
                .map(|d| DeviceRow {
                    last_seen: recent
                        .get(&d.id)
                        .copied()
                        .or(d.last_seen_ms)
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(super::beijing)
                        .unwrap_or_default(),
                    id: d.id,
                    name: d.name,
                    user: d.user_id,
                    revoked: d.revoked,
                })
                .collect(),
            notice,
            error,
            enrollment,
        },
    )
}

pub(super) async fn page(State(station): State<Arc<Station>>, request: Request) -> Response {
    match member(&station, request.headers(), is_admin).await {
        Err(response) => response,
        Ok((me, csrf)) => people(&station, &me, &csrf, StatusCode::OK, None, None, None).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NewUser {
    id: String,
    name: String,
    role: String,
    area: String,
}

pub(super) async fn add_user(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (me, csrf, form) = match signed_form::<NewUser>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let parsed = Role::parse(&form.role)
        .ok_or_else(|| "角色无效".to_string())
        .and_then(|role| Area::parse(form.area.trim()).map(|area| (role, area)));
    let (role, area) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => {
            let error = Some(format!("范围或角色无效：{why}"));
            return people(
                &station,
                &me,
                &csrf,
                StatusCode::BAD_REQUEST,
                None,
                error,
                None,
            )
            .await;
        }
    };
    let user = User::new(form.id.trim(), form.name.trim(), role, area);
    let id = user.id.clone();
    match station
        .write(move |s| Ok(s.accounts().add_user(&user)?))
        .await
    {
        Ok(()) => {
            tracing::info!(by = %me.id, user = %id, "user added in the console");
            let notice = Some(format!("已新建人员 {id}"));
            people(&station, &me, &csrf, StatusCode::OK, notice, None, None).await
        }
        Err(e) => {
            let error = Some(format!("未能新建：{}", e.message));
            people(&station, &me, &csrf, e.status, None, error, None).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct IssueCode {
    user: String,
}

pub(super) async fn issue_code(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (me, csrf, form) = match signed_form::<IssueCode>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let user = form.user.clone();
    let issued = station
        .write(move |s| {
            Ok(s.accounts()
                .issue_enrollment(&user, Utc::now(), Duration::hours(CODE_HOURS))?)
        })
        .await;
    let code = match issued {
        Ok(code) => code,
        Err(e) => return error_page(&e),
    };
    tracing::info!(by = %me.id, user = %form.user, "enrollment code issued in the console");
    let link = station
        .public_url
        .as_deref()
        .and_then(|url| crate::enrollment_link(url, &code, station.ca.as_ref()).ok());
    let svg = link.as_deref().map(qr_svg).unwrap_or_default();
    let enrollment = Enrollment {
        user: form.user,
        code,
        hours: CODE_HOURS,
        link,
        svg,
    };
    people(
        &station,
        &me,
        &csrf,
        StatusCode::OK,
        None,
        None,
        Some(enrollment),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct ApproveSteward {
    /// A number, read as text (a flattened form gives every field as text).
    request: String,
    id: String,
}

/// Approves a resident's request to become a lane's steward: the user is
/// made, and their phone's enrollment code shown as for any user.
pub(super) async fn approve_steward(
    State(station): State<Arc<Station>>,
    request: Request,
) -> Response {
    let (me, csrf, form) = match signed_form::<ApproveSteward>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = form.id.trim().to_string();
    let Ok(request_id) = form.request.trim().parse::<i64>() else {
        return people(
            &station,
            &me,
            &csrf,
            StatusCode::BAD_REQUEST,
            None,
            Some("报名编号无效".into()),
            None,
        )
        .await;
    };
    let approved = station
        .write(move |s| {
            let user = s.accounts().approve_steward(request_id, &id)?;
            let code =
                s.accounts()
                    .issue_enrollment(&user.id, Utc::now(), Duration::hours(CODE_HOURS))?;
            Ok((user, code))
        })
        .await;
    let (user, code) = match approved {
        Ok(found) => found,
        Err(e) => {
            return people(
                &station,
                &me,
                &csrf,
                e.status,
                None,
                Some(e.message.clone()),
                None,
            )
            .await;
        }
    };
    tracing::info!(by = %me.id, user = %user.id, "steward request approved in the console");
    let link = station
        .public_url
        .as_deref()
        .and_then(|url| crate::enrollment_link(url, &code, station.ca.as_ref()).ok());
    let svg = link.as_deref().map(qr_svg).unwrap_or_default();
    people(
        &station,
        &me,
        &csrf,
        StatusCode::OK,
        Some(format!(
            "{} 已成为 {} 的小巷管家",
            user.name,
            user.area.label_zh()
        )),
        None,
        Some(Enrollment {
            user: user.id,
            code,
            hours: CODE_HOURS,
            link,
            svg,
        }),
    )
    .await
}

/// The link as an SVG QR code (what the phone app scans).
fn qr_svg(link: &str) -> String {
    match qrcode::QrCode::new(link.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .build(),
        Err(e) => {
            tracing::warn!(error = %e, "an enrollment link too long for a QR code");
            String::new()
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Revoke {
    device: String,
}

pub(super) async fn revoke(State(station): State<Arc<Station>>, request: Request) -> Response {
    let (me, csrf, form) = match signed_form::<Revoke>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let device = form.device.clone();
    match station
        .write(move |s| Ok(s.accounts().revoke_device(&device, Utc::now())?))
        .await
    {
        Ok(()) => {
            tracing::info!(by = %me.id, device = %form.device, "device revoked in the console");
            let notice = Some(format!("已停用设备 {}", form.device));
            people(&station, &me, &csrf, StatusCode::OK, notice, None, None).await
        }
        Err(e) => error_page(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SetPassword {
    user: String,
    password: String,
}

pub(super) async fn set_password(
    State(station): State<Arc<Station>>,
    request: Request,
) -> Response {
    let (me, csrf, form) = match signed_form::<SetPassword>(&station, request, is_admin).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = form.user.clone();
    let found = station
        .write(move |s| Ok(s.accounts().password_hash(&id)?.0))
        .await;
    let user = match found {
        Ok(user) => user,
        Err(e) => return error_page(&e),
    };
    if !super::may_sign_in(user.role) {
        let error = Some(format!(
            "{} 是{}，不能登录控制台",
            user.id,
            user.role.label_zh()
        ));
        return people(
            &station,
            &me,
            &csrf,
            StatusCode::BAD_REQUEST,
            None,
            error,
            None,
        )
        .await;
    }
    let password = form.password;
    let hashed = tokio::task::spawn_blocking(move || super::password::hash(&password))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let phc = match hashed {
        Ok(phc) => phc,
        Err(why) => {
            let error = Some(format!("密码无效：{why}"));
            return people(
                &station,
                &me,
                &csrf,
                StatusCode::BAD_REQUEST,
                None,
                error,
                None,
            )
            .await;
        }
    };
    let id = user.id.clone();
    if let Err(e) = station
        .write(move |s| Ok(s.accounts().set_password_hash(&id, Some(&phc))?))
        .await
    {
        return error_page(&e);
    }
    tracing::info!(by = %me.id, user = %user.id, "console password set");
    // Setting one's own password ends one's own session too.
    let notice = Some(format!("已为 {} 设置新密码，其登录会话已全部退出", user.id));
    people(&station, &me, &csrf, StatusCode::OK, notice, None, None).await
}
