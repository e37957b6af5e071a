//! The public face: what anyone reaches by scanning a signboard, without an
//! account. `/s/<code>` is a shop's page (码上评定, 自查自纠): small HTML for a
//! phone browser (WeChat's), no script, the shop's zone drawn as inline SVG.
//! Rate-limited per client address; nothing personal is ever on it.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use menqian_core::model::place::LocalFrame;
use menqian_core::{PublicLookup, PublicShop, Zone};

use crate::store::StoreError;
use crate::sync::Station;

/// A citizen's report form, at most.
pub const MAX_REPORT_BYTES: usize = crate::photos::MAX_PHOTO_BYTES + MAX_FORM_BYTES;
/// A form without a photo (a steward's sign-up), at most.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The cookie a signboard page sets and its report form repeats: a form
/// posted from elsewhere has not got it (`SameSite=Strict`).
const FORM_COOKIE: &str = "menqian_form";

/// What a citizen picks from, in plain words: a category code each (offered
/// when the district's table has it).
pub const REPORT_CHOICES: [(&str, &str); 7] = [
    ("0504", "店外经营、占道经营"),
    ("0107", "乱堆物料"),
    ("0102", "垃圾、污水"),
    ("0202", "乱贴广告、牌匾问题"),
    ("0507", "车辆乱停放"),
    ("0110", "露天烧烤"),
    ("L-02", "没有扫雪铲冰"),
];

pub fn routes() -> Router<Arc<Station>> {
    Router::new()
        .route("/s/{code}", get(shop))
        .route(
            "/s/{code}/report",
            axum::routing::post(report).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)),
        )
        .route("/r/{token}", get(receipt))
        .route("/l/{lane}", get(lane))
        .route(
            "/l/{lane}/report",
            axum::routing::post(lane_report).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)),
        )
        .route("/l/{lane}/steward", axum::routing::post(steward_request))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(public_headers))
}

/// Public pages: no script at all, styles inline, no framing.
async fn public_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Template)]
#[template(path = "public/missing.html")]
struct Missing<'a> {
    title: &'a str,
    message: String,
}

fn missing(status: StatusCode, title: &str, message: String) -> Response {
    html(status, &Missing { title, message })
}

/// The store could not be read: try later.
fn unavailable() -> Response {
    missing(
        StatusCode::SERVICE_UNAVAILABLE,
        "暂时无法显示",
        "请稍后再试。".into(),
    )
}

/// The form token a page's forms repeat: the visitor's, or a new one.
fn form_token(headers: &HeaderMap) -> String {
    cookie(headers, FORM_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(crate::store::new_token)
}

/// Sets the form cookie (for a day) on a page's response.
fn with_form_cookie(mut response: Response, form: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{FORM_COOKIE}={form}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

struct Row {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "public/shop.html")]
struct ShopPage<'a> {
    s: &'a PublicShop,
    /// Camera and sensor reminders: what, when seen, by when.
    reminders: Vec<(String, String, String)>,
    form: String,
    choices: Vec<(&'static str, &'static str)>,
    zone_svg: String,
    stars: String,
    grade: &'static str,
    red_flag: bool,
    letter: String,
    week: Option<Row>,
    month: Option<Row>,
    inspections: Vec<Row>,
    items: Vec<(String, String, bool)>,
}

fn day(t: DateTime<Utc>) -> String {
    crate::console::beijing(t)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The zone as a small SVG: its outline in a 240 × 120 box, north up, with
/// a scale bar. Only numbers go into it.
pub fn zone_svg(zone: &Zone) -> String {
    let frame = LocalFrame::new(zone.centroid());
    let pts: Vec<(f64, f64)> = zone
        .points()
        .iter()
        .map(|p| {
            let c = frame.project(*p);
            (c.x, c.y)
        })
        .collect();
    let (min_x, max_x) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (min_y, max_y) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (w, h, pad) = (240.0, 120.0, 14.0);
    let span = (max_x - min_x).max(max_y - min_y).max(1.0);
    let scale = ((w - 2.0 * pad) / span).min((h - 2.0 * pad) / span);
    let (cx, cy) = ((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                w / 2.0 + (x - cx) * scale,
                h / 2.0 - (y - cy) * scale
            )
        })
        .collect();
    // A scale bar of a round length near a quarter of the width.
    let metres = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        .into_iter()
        .rfind(|m| m * scale <= w / 4.0)
        .unwrap_or(1.0);
    format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"责任区示意图\">\
<rect width=\"{w}\" height=\"{h}\" fill=\"#f4f1ea\"/>\
<polygon points=\"{}\" fill=\"#f2c94c\" fill-opacity=\".55\" stroke=\"#b01820\" stroke-width=\"2\"/>\
<line x1=\"8\" y1=\"{y}\" x2=\"{x2:.1}\" y2=\"{y}\" stroke=\"#333\" stroke-width=\"2\"/>\
<text x=\"8\" y=\"{ty}\" font-size=\"10\" fill=\"#333\">{metres} 米</text>\
<text x=\"{nx}\" y=\"14\" font-size=\"10\" fill=\"#333\">北↑</text></svg>",
        path.join(" "),
        y = h - 8.0,
        x2 = 8.0 + metres * scale,
        ty = h - 12.0,
        nx = w - 26.0,
    )
}

async fn shop(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(code): UrlPath<String>,
) -> Response {
    let address = station.client_address(peer, &headers);
    if let Err(busy) = station.traffic.admit_public(address) {
        return too_many(busy, "访问");
    }
    let code: String = code.chars().take(32).collect();
    let host = station.signboard_host.clone();
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let known: Vec<String> = docs
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .map(|c| c.code)
                .collect();
            let found = docs
                .public_shop(&code, &host, Utc::now())
                .map_err(StoreError::from)?;
            // Reminders from cameras and sensors of the last day, not yet cases.
            let reminders = match &found {
                PublicLookup::Found(s) => {
                    let names = docs.categories().map_err(StoreError::from)?;
                    r.accounts()
                        .reminders_of(
                            &format!("shop/{}", s.code),
                            Utc::now() - chrono::Duration::hours(24),
                        )?
                        .into_iter()
                        .map(|m| {
                            let name = names
                                .iter()
                                .find(|c| c.code == m.category)
                                .map_or(m.category.clone(), |c| c.name.clone());
                            (name, m.first_at, m.deadline)
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            Ok((found, known, reminders))
        })
        .await;
    let (found, known, reminders) = match found {
        Ok((f, k, m)) => (Ok(f), k, m),
        Err(e) => (Err(e), Vec::new(), Vec::new()),
    };
    let s = match found {
        Ok(PublicLookup::Found(s)) => s,
        Ok(PublicLookup::Unknown) => {
            return missing(
                StatusCode::NOT_FOUND,
                "没有这家商户",
                "本区登记册中没有这个编码的商户。若公示牌是新挂的，请稍后再扫。".into(),
            );
        }
        Ok(PublicLookup::Malformed(why)) => {
            return missing(
                StatusCode::NOT_FOUND,
                "无法识别的编码",
                format!("{why}。请对准公示牌上的二维码重新扫描。"),
            );
        }
        Ok(PublicLookup::Foreign(district)) => {
            return missing(
                StatusCode::NOT_FOUND,
                "其他区的公示牌",
                format!("这是区划代码 {district} 的公示牌，不在本区。请联系该区的城市管理部门。"),
            );
        }
        Err(_) => return unavailable(),
    };
    let place = |label: &str, p: Option<(u32, u32, u32)>| {
        p.map(|(score, rank, of)| Row {
            label: label.to_string(),
            value: format!("{score} 分，本街第 {rank} 名（共 {of} 家）"),
        })
    };
    let credit = &s.standing.credit;
    let form = form_token(&headers);
    let page = ShopPage {
        choices: REPORT_CHOICES
            .into_iter()
            .filter(|(c, _)| known.iter().any(|k| k == c))
            .collect(),
        form: form.clone(),
        reminders: reminders
            .into_iter()
            .map(|(what, at, deadline)| {
                (
                    what,
                    crate::console::beijing(at),
                    crate::console::beijing(deadline),
                )
            })
            .collect(),
        zone_svg: zone_svg(&s.zone),
        stars: "★".repeat(credit.stars as usize) + &"☆".repeat(5 - credit.stars.min(5) as usize),
        grade: credit.grade.label_zh(),
        red_flag: s.standing.exempt,
        letter: s
            .letter
            .map_or("未签订".to_string(), |d| format!("已签订（{d}）")),
        week: place("本周", s.week),
        month: place("本月", s.month),
        inspections: s
            .inspections
            .iter()
            .map(|(t, passed)| Row {
                label: day(*t),
                value: if *passed { "合格" } else { "需整改" }.to_string(),
            })
            .collect(),
        items: s
            .open_items
            .iter()
            .map(|(what, deadline, overdue)| {
                (what.clone(), crate::console::beijing(*deadline), *overdue)
            })
            .collect(),
        s: &s,
    };
    with_form_cookie(html(StatusCode::OK, &page), &form)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[derive(Debug, serde::Deserialize)]
struct ReportForm {
    category: String,
    description: String,
    #[serde(default)]
    phone: String,
}

fn refused(status: StatusCode, message: &str) -> Response {
    missing(status, "未能提交", message.to_string())
}

/// Where a citizen's report is about.
enum Target {
    Shop(menqian_core::ShopCode),
    Lane(String),
}

impl Target {
    fn key(&self) -> String {
        match self {
            Target::Shop(c) => c.to_string(),
            Target::Lane(l) => format!("lane:{l}"),
        }
    }
}

/// Past a public limit: a page saying when to come back, and `Retry-After`.
fn too_many(busy: crate::guard::Busy, what: &str) -> Response {
    let secs = busy.retry_after.as_secs().max(1);
    let mut r = missing(
        StatusCode::TOO_MANY_REQUESTS,
        "请稍候",
        format!("{what}太频繁，请 {secs} 秒后再试。"),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A public form's text fields, at most.
const MAX_FIELDS: usize = 8;
/// A public form's text field, at most (bytes).
const MAX_FIELD_BYTES: usize = 4 * 1024;

/// A photo as posted, and its place among the bodies held in memory.
struct Photo {
    bytes: Vec<u8>,
    _place: tokio::sync::OwnedSemaphorePermit,
}

/// A multipart part, at most `max` bytes (`too_large` past that), read as it
/// arrives.
async fn read_part(
    mut part: axum::extract::multipart::Field<'_>,
    max: usize,
    too_large: impl Fn() -> Response,
) -> Result<Vec<u8>, Response> {
    let mut bytes = Vec::new();
    loop {
        match part.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > max {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(bytes),
            Err(e) => return Err(cut_off(&e)),
        }
    }
}

/// A multipart body that ended early or ran past its limit.
fn cut_off(e: &axum::extract::multipart::MultipartError) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "照片过大（上限 {} MB）。",
                crate::photos::MAX_PHOTO_BYTES >> 20
            ),
        )
    } else {
        refused(StatusCode::BAD_REQUEST, "提交中断，请重试。")
    }
}

/// Reads a public form once the limits allowed it, checking its token
/// against the cookie the page set: URL-encoded, or multipart with a photo
/// (`photo`, after the token, which is checked before the photo is read).
/// Returns the fields and the photo's bytes, if one was chosen.
async fn public_form<T: serde::de::DeserializeOwned>(
    station: &Station,
    headers: &HeaderMap,
    request: axum::extract::Request,
) -> Result<(T, Option<Photo>), Response> {
    let invalid = || refused(StatusCode::BAD_REQUEST, "表单无效，请返回重填。");
    let expected = cookie(headers, FORM_COOKIE).unwrap_or_default();
    let token_ok = |fields: &serde_json::Map<String, serde_json::Value>| {
        let given = fields.get("form").and_then(|v| v.as_str()).unwrap_or("");
        !expected.is_empty() && crate::console::web::same(&expected, given)
    };
    let expired = || {
        refused(
            StatusCode::FORBIDDEN,
            "请从公示牌页面提交（页面已过期时请重新扫码）。",
        )
    };
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut fields = serde_json::Map::new();
    let mut photo = None;
    if multipart {
        let Ok(mut parts) =
            <axum::extract::Multipart as axum::extract::FromRequest<()>>::from_request(
                request,
                &(),
            )
            .await
        else {
            return Err(invalid());
        };
        loop {
            let part = match parts.next_field().await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(cut_off(&e)),
            };
            let name = part.name().unwrap_or("").to_string();
            if name == "photo" {
                if !token_ok(&fields) {
                    return Err(expired());
                }
                // Held until the photo is processed or refused.
                let place = crate::photos::hold_body(station)
                    .await
                    .map_err(|_| unavailable())?;
                let too_large = || {
                    refused(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "照片过大（上限 {} MB）。",
                            crate::photos::MAX_PHOTO_BYTES >> 20
                        ),
                    )
                };
                let bytes = read_part(part, crate::photos::MAX_PHOTO_BYTES, too_large).await?;
                // A file input left empty still sends its part, with no bytes.
                if !bytes.is_empty() {
                    photo = Some(Photo {
                        bytes,
                        _place: place,
                    });
                }
                continue;
            }
            if fields.len() >= MAX_FIELDS {
                return Err(invalid());
            }
            let text = read_part(part, MAX_FIELD_BYTES, invalid).await?;
            let Ok(text) = String::from_utf8(text) else {
                return Err(invalid());
            };
            fields.insert(name, serde_json::Value::String(text));
        }
    } else {
        let Ok(axum::Form(pairs)) =
            <axum::Form<Vec<(String, String)>> as axum::extract::FromRequest<()>>::from_request(
                request,
                &(),
            )
            .await
        else {
            return Err(invalid());
        };
        if pairs.len() > MAX_FIELDS {
            return Err(invalid());
        }
        for (k, v) in pairs {
            fields.insert(k, serde_json::Value::String(v));
        }
    }
    if !token_ok(&fields) {
        return Err(expired());
    }
    let form = serde_json::from_value(serde_json::Value::Object(fields)).map_err(|_| invalid())?;
    Ok((form, photo))
}

/// A phone number as digits, if it is one.
fn phone_digits(p: &str) -> Option<String> {
    let digits: String = p.chars().filter(|c| c.is_ascii_digit()).collect();
    let ok = p.chars().all(|c| c.is_ascii_digit() || " -+".contains(c));
    (ok && (7..=15).contains(&digits.len())).then_some(digits)
}

fn bad_phone() -> Response {
    refused(StatusCode::BAD_REQUEST, "电话号码无效。")
}

/// 随手拍: a citizen's report about a shop or a lane, as a case from
/// `citizen` (source 市民) through the same filing as a steward's report;
/// answered with the receipt page's address. Limited per address and per
/// shop or lane before the body is read.
async fn file_citizen_report(
    station: Arc<Station>,
    peer: std::net::SocketAddr,
    target: Target,
    request: axum::extract::Request,
) -> Response {
    let headers = request.headers().clone();
    let address = station.client_address(peer, &headers);
    if let Err(busy) = station.traffic.admit_report(address, &target.key()) {
        return too_many(busy, "提交");
    }
    let (form, photo): (ReportForm, _) = match public_form(&station, &headers, request).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let description = form.description.trim().to_string();
    if description.is_empty() || description.chars().count() > 500 {
        return refused(StatusCode::BAD_REQUEST, "请写下问题（500 字以内）。");
    }
    let Some((category, _)) = REPORT_CHOICES.iter().find(|(c, _)| *c == form.category) else {
        return refused(StatusCode::BAD_REQUEST, "请选择问题类型。");
    };
    let phone: Option<String> = match form.phone.trim() {
        "" => None,
        p => match phone_digits(p) {
            Some(d) => Some(d),
            None => return bad_phone(),
        },
    };
    let category = category.to_string();
    let photo = match photo {
        Some(photo) => match citizen_photo(&station, &target, photo).await {
            Ok(p) => {
                if station.keep_photo(&p).await.is_err() {
                    return unavailable();
                }
                Some(p)
            }
            Err(r) => return r,
        },
        None => None,
    };
    let filed = station
        .write(move |w| {
            let now = Utc::now();
            let docs = w.documents();
            let photos = match &photo {
                Some(p) => vec![
                    docs.register_received_photo(p, now)
                        .map_err(StoreError::from)?
                        .hash,
                ],
                None => Vec::new(),
            };
            let (location, shop_id, subdistrict, lane) = match &target {
                Target::Shop(code) => {
                    let shop = docs.shop_by_code(code.as_str()).map_err(StoreError::from)?;
                    (shop.zone.centroid(), Some(shop.id()), None, None)
                }
                Target::Lane(lane) => {
                    let shops = lane_shops(docs, lane)?;
                    let n = shops.len() as f64;
                    let at = menqian_core::GeoPoint::new(
                        shops.iter().map(|s| s.lat).sum::<f64>() / n,
                        shops.iter().map(|s| s.lon).sum::<f64>() / n,
                    );
                    let sub = docs
                        .shop(&shops[0].id)
                        .map_err(StoreError::from)?
                        .subdistrict;
                    (at, None, sub, Some(lane.clone()))
                }
            };
            let filed = docs
                .file_report(menqian_core::NewCase {
                    source: menqian_core::CaseSource::Citizen,
                    category,
                    location,
                    shop_id,
                    photos,
                    description,
                    deadline: None,
                    reported_by: CITIZEN.into(),
                    reported_at: now,
                    subdistrict,
                    lane,
                })
                .map_err(StoreError::from)?;
            Ok(w.accounts()
                .add_receipt(&filed.case_id, phone.as_deref(), now)?)
        })
        .await;
    match filed {
        Ok(token) => axum::response::Redirect::to(&format!("/r/{token}")).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            refused(StatusCode::NOT_FOUND, "没有这家商户或街巷。")
        }
        Err(_) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "暂时无法提交，请稍后再试。",
        ),
    }
}

/// Who a citizen's photo is watermarked as taken by.
const CITIZEN_PHOTO: &str = "市民随手拍";

/// A citizen's photo through the pipeline, watermarked with the shop or lane.
async fn citizen_photo(
    station: &Arc<Station>,
    target: &Target,
    photo: Photo,
) -> Result<menqian_core::evidence::photo::ProcessedPhoto, Response> {
    let now = Utc::now();
    let (code, lane) = match target {
        Target::Shop(c) => (Some(c.to_string()), None),
        Target::Lane(l) => (None, Some(l.clone())),
    };
    let stamp = station
        .read(move |r| {
            let docs = r.documents();
            let shop = match &code {
                Some(code) => Some(docs.shop_by_code(code).map_err(StoreError::from)?.id()),
                None => None,
            };
            Ok(docs
                .photo_stamp(shop.as_deref(), lane.as_deref(), now, None, CITIZEN_PHOTO)
                .map_err(StoreError::from)?)
        })
        .await;
    let stamp = match stamp {
        Ok(s) => s,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return Err(refused(StatusCode::NOT_FOUND, "没有这家商户或街巷。"));
        }
        Err(_) => return Err(unavailable()),
    };
    let Photo { bytes, _place } = photo;
    match crate::photos::process(station, bytes, stamp).await {
        Ok(p) => Ok(p),
        Err(crate::photos::Refused::Bad(e)) => Err(refused(
            StatusCode::BAD_REQUEST,
            &format!("照片无法使用：{e}。请拍一张 JPEG 照片再试。"),
        )),
        Err(crate::photos::Refused::Busy | crate::photos::Refused::Failed) => Err(unavailable()),
    }
}

async fn report(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    UrlPath(code): UrlPath<String>,
    request: axum::extract::Request,
) -> Response {
    let Ok(code) = menqian_core::ShopCode::parse(&code) else {
        return refused(StatusCode::NOT_FOUND, "没有这家商户。");
    };
    file_citizen_report(station, peer, Target::Shop(code), request).await
}

async fn lane_report(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    UrlPath(lane): UrlPath<String>,
    request: axum::extract::Request,
) -> Response {
    let lane: String = lane.chars().take(50).collect();
    file_citizen_report(station, peer, Target::Lane(lane), request).await
}

/// A lane's open shops (not found when it has none).
fn lane_shops(
    docs: &menqian_core::Store,
    lane: &str,
) -> Result<Vec<menqian_core::ShopSummary>, crate::sync::ApiError> {
    let shops: Vec<_> = docs
        .shops_in(&menqian_core::Area::Lanes(vec![lane.to_string()]))
        .map_err(StoreError::from)?
        .into_iter()
        .filter(|s| s.status == menqian_core::ShopStatus::Active)
        .collect();
    if shops.is_empty() {
        return Err(crate::sync::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such lane",
        ));
    }
    Ok(shops)
}

#[derive(Template)]
#[template(path = "public/lane.html")]
struct LanePage {
    lane: String,
    street: String,
    chiefs: Vec<String>,
    shops: Vec<(String, String, String)>,
    form: String,
    choices: Vec<(&'static str, &'static str)>,
    asked: bool,
}

/// The lane's page (its board's QR code): its shops and lane chiefs, a
/// report about the lane, a request to become its steward.
async fn lane(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(lane): UrlPath<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let address = station.client_address(peer, &headers);
    if let Err(busy) = station.traffic.admit_public(address) {
        return too_many(busy, "访问");
    }
    let lane: String = lane.chars().take(50).collect();
    let asked_lane = lane.clone();
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let shops = lane_shops(docs, &asked_lane)?;
            let street = docs
                .shop(&shops[0].id)
                .map(|s| match s.subdistrict {
                    Some(sub) => format!("{sub} · {}", s.street),
                    None => s.street,
                })
                .unwrap_or_default();
            let chiefs: Vec<String> = r
                .accounts()
                .users()?
                .into_iter()
                .filter(|u| u.role == menqian_core::Role::LaneChief)
                .filter(
                    |u| matches!(&u.area, menqian_core::Area::Lanes(l) if l.contains(&asked_lane)),
                )
                .map(|u| u.name)
                .collect();
            let known: Vec<String> = docs
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .map(|c| c.code)
                .collect();
            Ok((shops, street, chiefs, known))
        })
        .await;
    let (shops, street, chiefs, known) = match found {
        Ok(f) => f,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return missing(
                StatusCode::NOT_FOUND,
                "没有这条街巷",
                "本区没有这条街巷的商户登记。".into(),
            );
        }
        Err(_) => return unavailable(),
    };
    let form = form_token(&headers);
    let response = html(
        StatusCode::OK,
        &LanePage {
            lane,
            street,
            chiefs,
            shops: shops
                .into_iter()
                .map(|s| (s.code, s.name, s.address))
                .collect(),
            form: form.clone(),
            choices: REPORT_CHOICES
                .into_iter()
                .filter(|(c, _)| known.iter().any(|k| k == c))
                .collect(),
            asked: query.as_deref() == Some("asked=1"),
        },
    );
    with_form_cookie(response, &form)
}

#[derive(Debug, serde::Deserialize)]
struct StewardForm {
    name: String,
    phone: String,
}

/// 报名小巷管家: the request waits for an administrator.
async fn steward_request(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    UrlPath(lane): UrlPath<String>,
    request: axum::extract::Request,
) -> Response {
    let headers = request.headers().clone();
    let address = station.client_address(peer, &headers);
    let lane: String = lane.chars().take(50).collect();
    if let Err(busy) = station
        .traffic
        .admit_report(address, &format!("steward:{lane}"))
    {
        return too_many(busy, "报名");
    }
    let form: StewardForm = match public_form(&station, &headers, request).await {
        Ok((f, None)) => f,
        Ok((_, Some(_))) => return refused(StatusCode::BAD_REQUEST, "报名不需要照片。"),
        Err(r) => return r,
    };
    let name = form.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 20 || name.chars().any(char::is_control) {
        return refused(StatusCode::BAD_REQUEST, "请填写姓名（20 字以内）。");
    }
    let Some(phone) = phone_digits(form.phone.trim()) else {
        return bad_phone();
    };
    let target = lane.clone();
    let saved = station
        .write(move |w| {
            lane_shops(w.documents(), &target)?;
            Ok(w.accounts()
                .add_steward_request(&target, &name, &phone, Utc::now())?)
        })
        .await;
    match saved {
        Ok(_) => {
            let lane: String = url::form_urlencoded::byte_serialize(lane.as_bytes()).collect();
            axum::response::Redirect::to(&format!("/l/{lane}?asked=1")).into_response()
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            refused(StatusCode::NOT_FOUND, "没有这条街巷。")
        }
        Err(_) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "暂时无法提交，请稍后再试。",
        ),
    }
}

/// Who a citizen's report is from, in the case's history.
pub const CITIZEN: &str = "citizen";

#[derive(Template)]
#[template(path = "public/receipt.html")]
struct ReceiptPage {
    key: String,
    shop: String,
    /// The lane of a report about a lane (its name is on the lane's board).
    lane: String,
    category: String,
    reported: String,
    status: &'static str,
    closed: bool,
    steps: Vec<(String, &'static str)>,
}

/// The receipt: the report's case and its steps, for whoever holds the
/// link; no names.
async fn receipt(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(token): UrlPath<String>,
) -> Response {
    let address = station.client_address(peer, &headers);
    if let Err(busy) = station.traffic.admit_public(address) {
        return too_many(busy, "访问");
    }
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return missing(
            StatusCode::NOT_FOUND,
            "没有这张回执",
            "回执链接不完整。".into(),
        );
    }
    let found = station
        .read(move |r| {
            let Some(case_id) = r.accounts().receipt(&token)? else {
                return Ok(None);
            };
            let docs = r.documents();
            let case = docs.case(&case_id).map_err(StoreError::from)?;
            let shop = match &case.shop_id {
                Some(id) => docs.shop(id).map(|s| s.name).unwrap_or_default(),
                None => String::new(),
            };
            let category = docs
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .find(|c| c.code == case.category)
                .map_or(case.category.clone(), |c| c.name);
            Ok(Some((case, shop, category)))
        })
        .await;
    let (case, shop, category) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return missing(
                StatusCode::NOT_FOUND,
                "没有这张回执",
                "请核对回执链接。".into(),
            );
        }
        Err(_) => return unavailable(),
    };
    let replay = case.replay();
    let steps = case
        .history
        .iter()
        .zip(&replay.effective)
        .filter(|(_, ok)| **ok)
        .map(|(s, _)| (crate::console::beijing(s.at), s.status.label_zh()))
        .collect();
    html(
        StatusCode::OK,
        &ReceiptPage {
            key: case
                .id
                .trim_start_matches("case/")
                .chars()
                .take(8)
                .collect(),
            lane: if shop.is_empty() {
                case.lane.clone().unwrap_or_default()
            } else {
                String::new()
            },
            shop,
            category,
            reported: crate::console::beijing(case.reported_at),
            status: replay.status.label_zh(),
            closed: matches!(
                replay.status,
                menqian_core::CaseStatus::Closed | menqian_core::CaseStatus::Rejected
            ),
            steps,
        },
    )
}
