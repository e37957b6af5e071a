//! Signing in and out of the console, and its first page. A handler parses,
//! authorises, calls the store, renders; the session is checked from the
//! cookie before any body is read.

use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{Duration, Utc};
use serde::Deserialize;

use crate::store::User;
use crate::sync::{ApiError, Station};

/// The session cookie, and the one a sign-in form is bound to.
const SESSION_COOKIE: &str = "menqian_session";
const LOGIN_COOKIE: &str = "menqian_login";
/// How long a session lasts after signing in.
pub const SESSION_HOURS: i64 = 12;
/// The largest form the console reads.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

pub fn routes() -> Router<Arc<Station>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(super::overview::page))
        .route("/console/events", get(super::overview::events))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/cases", get(super::cases::page))
        .route("/console/case/{key}", get(super::case::page))
        .route("/console/case/{key}/move", post(super::case::make_move))
        .route("/console/photo/{hash}", get(super::case::photo))
        .route("/console/shops", get(super::shops::search))
        .route("/console/shop", get(super::shops::page))
        .route("/console/shop/edit", post(super::shops::edit))
        .route(
            "/console/shop/reminder",
            post(super::shops::confirm_reminder),
        )
        .route(
            "/console/rules",
            get(super::rules::page)
                .post(super::rules::save_rules)
                .layer(axum::extract::DefaultBodyLimit::max(
                    super::rules::MAX_EDIT_BYTES,
                )),
        )
        .route(
            "/console/rules/checklist",
            post(super::rules::publish_checklist).layer(axum::extract::DefaultBodyLimit::max(
                super::rules::MAX_EDIT_BYTES,
            )),
        )
        .route("/console/patrols", get(super::patrols::page))
        .route("/console/patrol", get(super::patrols::patrol))
        .route("/console/patrol.json", get(super::patrols::geojson))
        .route("/console/map", get(super::map::page))
        .route("/console/map/data.json", get(super::map::data))
        .route("/console/map/zones.json", get(super::map::zones))
        .route("/console/cases.csv", get(super::cases::csv))
        .route("/console/cases.xlsx", get(super::cases::xlsx))
        .route("/console/ledger", get(super::ledger::page))
        .route("/console/rankings", get(super::rankings::page))
        .route("/console/ledger.csv", get(super::ledger::csv))
        .route("/console/onboard", get(super::onboard::page))
        .route("/console/onboard/confirm", post(super::onboard::confirm))
        .route("/console/signboards", post(super::onboard::print))
        .route("/console/registry.xlsx", get(super::onboard::export))
        .route("/console/job/{id}", get(super::onboard::job))
        .route("/console/job/{id}/cancel", post(super::onboard::cancel))
        .route("/console/job/{id}/file", get(super::onboard::file))
        .route("/console/people", get(super::people::page))
        .route("/console/people/users", post(super::people::add_user))
        .route("/console/people/code", post(super::people::issue_code))
        .route("/console/people/revoke", post(super::people::revoke))
        .route(
            "/console/people/steward",
            post(super::people::approve_steward),
        )
        .route(
            "/console/people/password",
            post(super::people::set_password),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .route(
            "/console/onboard",
            post(super::onboard::preview).layer(axum::extract::DefaultBodyLimit::max(
                super::onboard::MAX_UPLOAD_BYTES + 64 * 1024,
            )),
        )
        .layer(axum::middleware::map_response(page_headers))
        .route("/console/assets/{name}", get(super::assets::file))
}

/// No console page is cached, framed or sniffed.
async fn page_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    user: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

/// A page, or the error page when a template fails.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

pub(super) fn error_page(e: &ApiError) -> Response {
    let mut response = render(
        e.status,
        &ErrorPage {
            status: e.status.as_u16(),
            message: &e.message,
        },
    );
    if let Some(secs) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A cookie's value from the request's `Cookie` headers.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(station: &Station, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if station.limits.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Equal strings, compared in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The signed-in user and the session's CSRF token, from the cookie alone.
pub(super) async fn signed_in(
    station: &Arc<Station>,
    headers: &HeaderMap,
) -> Result<Option<(User, String)>, ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if token.len() != 64 {
        return Ok(None);
    }
    let now = Utc::now();
    station
        .read(move |r| Ok(r.accounts().session(&token, now)?))
        .await
}

/// The signed-in user and the session's CSRF token, or the response to give
/// instead: the sign-in page, or a 404 for a user `allowed` refuses (a page
/// they may not use is one that does not exist for them).
pub(super) async fn member(
    station: &Arc<Station>,
    headers: &HeaderMap,
    allowed: fn(&User) -> bool,
) -> Result<(User, String), Response> {
    match signed_in(station, headers).await {
        Err(e) => Err(error_page(&e)),
        Ok(None) => Err(Redirect::to("/console/login").into_response()),
        Ok(Some((user, _))) if !allowed(&user) => Err(error_page(&ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这个页面",
        ))),
        Ok(Some(found)) => Ok(found),
    }
}

/// A form with the session's CSRF token beside its fields.
#[derive(Debug, Deserialize)]
struct Signed<T> {
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// A console form: the session and the user's right checked first (from the
/// cookie alone), then the body read, then its CSRF token compared.
pub(super) async fn signed_form<T: serde::de::DeserializeOwned>(
    station: &Arc<Station>,
    request: Request,
    allowed: fn(&User) -> bool,
) -> Result<(User, String, T), Response> {
    let (me, csrf) = member(station, request.headers(), allowed).await?;
    let Ok(Form(signed)) = Form::<Signed<T>>::from_request(request, &()).await else {
        return Err(error_page(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_form",
            "表单无效",
        )));
    };
    if !same(&signed.csrf, &csrf) {
        return Err(error_page(&ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_csrf",
            "表单已过期，请返回重试",
        )));
    }
    Ok((me, csrf, signed.form))
}

async fn login_page(State(station): State<Arc<Station>>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = signed_in(&station, &headers).await {
        return Redirect::to("/console").into_response();
    }
    login_form(&station, StatusCode::OK, "", None)
}

/// The sign-in form, bound to a fresh cookie (a form posted from elsewhere
/// carries no matching value).
fn login_form(station: &Station, status: StatusCode, user: &str, error: Option<&str>) -> Response {
    let csrf = crate::store::new_token();
    let mut response = render(
        status,
        &LoginPage {
            csrf: &csrf,
            user,
            error,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(station, LOGIN_COOKIE, &csrf, "/console", 3600),
    );
    response
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    csrf: String,
}

async fn login(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let address = station.client_address(peer, &headers);
    if let Err(busy) = station.traffic.admit_sign_in(address) {
        return error_page(&crate::sync::busy(busy));
    }
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &()).await else {
        return login_form(
            &station,
            StatusCode::BAD_REQUEST,
            "",
            Some("表单无效，请重新填写"),
        );
    };
    let user_id = form.user.trim().to_string();
    let shown_user: String = user_id.chars().take(64).collect();
    let bound = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same(&c, &form.csrf));
    if !bound {
        return login_form(
            &station,
            StatusCode::FORBIDDEN,
            &shown_user,
            Some("登录表单已过期，请重新登录"),
        );
    }
    if user_id.len() > 64 || form.password.chars().count() > crate::console::password::MAX_CHARS {
        return login_form(
            &station,
            StatusCode::UNAUTHORIZED,
            &shown_user,
            Some("账号或密码错误"),
        );
    }
    if let Err(busy) = station.traffic.user_may_sign_in(&user_id) {
        return error_page(&crate::sync::busy(busy));
    }
    // The stored hash is read under the writer, the password checked
    // without it (Argon2 takes tens of milliseconds).
    let id = user_id.clone();
    let found = station
        .write(move |s| match s.accounts().password_hash(&id) {
            Ok(found) => Ok(Some(found)),
            Err(crate::store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        })
        .await;
    let found = match found {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let password = form.password;
    let (user, stored) = match found {
        Some((user, stored)) => (Some(user), stored),
        None => (None, None),
    };
    let matches = tokio::task::spawn_blocking(move || {
        crate::console::password::verify(stored.as_deref(), &password)
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        station.traffic.sign_in_failed(&user_id);
        tracing::info!(user = %shown_user.escape_default(), "console sign-in refused");
        return login_form(
            &station,
            StatusCode::UNAUTHORIZED,
            &shown_user,
            Some("账号或密码错误"),
        );
    };
    if !crate::console::may_sign_in(user.role) {
        return login_form(
            &station,
            StatusCode::FORBIDDEN,
            &shown_user,
            Some("执法队员与小巷管家请使用手机应用"),
        );
    }
    let id = user.id.clone();
    let opened = station
        .write(move |s| {
            Ok(s.accounts()
                .open_session(&id, Utc::now(), Duration::hours(SESSION_HOURS))?)
        })
        .await;
    let session = match opened {
        Ok(session) => session,
        Err(e) => return error_page(&e),
    };
    tracing::info!(user = %user.id, "console sign-in");
    let mut response = Redirect::to("/console").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            &station,
            SESSION_COOKIE,
            &session.token,
            "/",
            SESSION_HOURS * 3600,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&station, LOGIN_COOKIE, "", "/console", 0),
    );
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(station): State<Arc<Station>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let (_, csrf) = match signed_in(&station, &headers).await {
        Err(e) => return error_page(&e),
        Ok(None) => return Redirect::to("/console/login").into_response(),
        Ok(Some(found)) => found,
    };
    let Ok(Form(form)) = Form::<CsrfForm>::from_request(request, &()).await else {
        return error_page(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_form",
            "表单无效",
        ));
    };
    if !same(&form.csrf, &csrf) {
        return error_page(&ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_csrf",
            "表单已过期，请返回控制台重试",
        ));
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = station
            .write(move |s| Ok(s.accounts().close_session(&token)?))
            .await
    {
        return error_page(&e);
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&station, SESSION_COOKIE, "", "/", 0),
    );
    response
}
