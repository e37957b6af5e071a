//! Open311 GeoReport v2 at `/open311/v2/`: other city systems read the
//! district's service requests (cases) and post new ones, in JSON or XML as
//! the specification (wiki.open311.org/GeoReport_v2) defines them. A
//! service is a category of the district's table; a service request is a
//! case, its id the case's key. Nothing personal is exposed: no reporter,
//! no phone number, no officer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use menqian_core::{CaseFilter, CaseStatus, CaseSummary};

use crate::store::StoreError;
use crate::sync::{ApiError, Station};

/// Requests one GET returns at most, and the window it covers by default
/// (the specification's defaults).
pub const MAX_RESULTS: u32 = 1_000;
pub const DEFAULT_DAYS: i64 = 90;
/// A POST's form, at most.
pub const MAX_POST_BYTES: usize = 16 * 1024;

pub fn routes() -> Router<Arc<Station>> {
    Router::new()
        .route("/open311/v2/{file}", get(top).post(post_requests))
        .route("/open311/v2/services/{file}", get(service_definition))
        .route("/open311/v2/requests/{file}", get(one_request))
        .route("/open311/v2/tokens/{file}", get(token))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_POST_BYTES))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// `name.json` / `name.xml` → (name, format).
fn split(file: &str) -> Option<(&str, Format)> {
    let (name, ext) = file.rsplit_once('.')?;
    match ext {
        "json" => Some((name, Format::Json)),
        "xml" => Some((name, Format::Xml)),
        _ => None,
    }
}

/// A value in an answer: text, a number, a boolean, nothing, or a list.
#[derive(Debug, Clone)]
enum V {
    S(String),
    N(f64),
    B(bool),
    Null,
    List(&'static str, Vec<Vec<(&'static str, V)>>),
}

type Record = Vec<(&'static str, V)>;

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn json_of(v: &V) -> serde_json::Value {
    match v {
        V::S(s) => serde_json::Value::String(s.clone()),
        V::N(n) => serde_json::json!(n),
        V::B(b) => serde_json::Value::Bool(*b),
        V::Null => serde_json::Value::Null,
        V::List(_, items) => serde_json::Value::Array(
            items
                .iter()
                .map(|r| {
                    serde_json::Value::Object(
                        r.iter().map(|(k, v)| (k.to_string(), json_of(v))).collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn xml_of(out: &mut String, name: &str, v: &V) {
    match v {
        V::S(s) => out.push_str(&format!("<{name}>{}</{name}>", xml_escape(s))),
        V::N(n) => out.push_str(&format!("<{name}>{n}</{name}>")),
        V::B(b) => out.push_str(&format!("<{name}>{b}</{name}>")),
        V::Null => out.push_str(&format!("<{name}></{name}>")),
        V::List(item, items) => {
            out.push_str(&format!("<{name}>"));
            for r in items {
                out.push_str(&format!("<{item}>"));
                for (k, v) in r {
                    xml_of(out, k, v);
                }
                out.push_str(&format!("</{item}>"));
            }
            out.push_str(&format!("</{name}>"));
        }
    }
}

/// A list of records: a JSON array, or `<root><item>…</item>…</root>`.
fn answer(format: Format, root: &str, item: &'static str, records: Vec<Record>) -> Response {
    let body = match format {
        Format::Json => json_of(&V::List(item, records)).to_string(),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
            xml_of(&mut out, root, &V::List(item, records));
            out
        }
    };
    typed(StatusCode::OK, format, body)
}

fn typed(status: StatusCode, format: Format, body: String) -> Response {
    let kind = match format {
        Format::Json => "application/json; charset=utf-8",
        Format::Xml => "text/xml; charset=utf-8",
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// The specification's error answer: `[{"code", "description"}]` or
/// `<errors><error>…</error></errors>`, with the HTTP status as the code.
fn error(format: Format, status: StatusCode, description: &str) -> Response {
    let record = vec![
        ("code", V::N(f64::from(status.as_u16()))),
        ("description", V::S(description.to_string())),
    ];
    let mut r = answer(format, "errors", "error", vec![record]);
    *r.status_mut() = status;
    r
}

/// A W3C datetime in Beijing time, e.g. `2026-12-01T09:30:00+08:00`.
fn w3c(t: DateTime<Utc>) -> String {
    t.with_timezone(&menqian_core::model::template::BEIJING)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn query(raw: &Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A call refused before anything was read, in the call's format.
struct Refusal(Format, StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

/// The call's format from its file name (`.json`, `.xml`), once the client's
/// address is within its limit: every Open311 call starts here, before any
/// body is read.
fn admitted<'a>(
    station: &Station,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
    file: &'a str,
) -> Result<(&'a str, Format), Refusal> {
    let Some((name, format)) = split(file) else {
        return Err(Refusal(
            Format::Json,
            StatusCode::NOT_FOUND,
            "unknown resource: use .json or .xml",
        ));
    };
    admit(station, peer, headers, format)?;
    Ok((name, format))
}

fn admit(
    station: &Station,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
    format: Format,
) -> Result<(), Refusal> {
    station
        .traffic
        .admit_open311(station.client_address(peer, headers))
        .map_err(|_| {
            Refusal(
                format,
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this address",
            )
        })
}

async fn top(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (name, format) = match admitted(&station, peer, &headers, &file) {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    match name {
        "discovery" => discovery(&station, format),
        "services" => services(&station, format).await,
        "requests" => match requests(&station, format, query(&raw)).await {
            Ok(records) => answer(format, "service_requests", "request", records),
            Err(r) => r,
        },
        _ => error(format, StatusCode::NOT_FOUND, "unknown resource"),
    }
}

fn discovery(station: &Station, format: Format) -> Response {
    let base = station
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", station.signboard_host));
    let endpoint = vec![
        (
            "specification",
            V::S("http://wiki.open311.org/GeoReport_v2".into()),
        ),
        ("url", V::S(format!("{base}/open311/v2"))),
        ("changeset", V::S("2026-12-01T00:00:00+08:00".into())),
        ("type", V::S("production".into())),
        (
            "formats",
            V::List(
                "format",
                vec![
                    vec![("format", V::S("application/json".into()))],
                    vec![("format", V::S("text/xml".into()))],
                ],
            ),
        ),
    ];
    let record: Record = vec![
        ("changeset", V::S("2026-12-01T00:00:00+08:00".into())),
        ("contact", V::S("城市管理委员会 12345".into())),
        (
            "key_service",
            V::S("API keys are issued by the district's administrator".into()),
        ),
        ("endpoints", V::List("endpoint", vec![endpoint])),
    ];
    match format {
        Format::Json => typed(
            StatusCode::OK,
            format,
            serde_json::Value::Object(
                record
                    .iter()
                    .map(|(k, v)| (k.to_string(), json_of(v)))
                    .collect(),
            )
            .to_string(),
        ),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><discovery>");
            for (k, v) in &record {
                xml_of(&mut out, k, v);
            }
            out.push_str("</discovery>");
            typed(StatusCode::OK, format, out)
        }
    }
}

async fn services(station: &Arc<Station>, format: Format) -> Response {
    let found = station
        .read(|r| Ok(r.documents().categories().map_err(StoreError::from)?))
        .await;
    let categories = match found {
        Ok(c) => c,
        Err(_) => return error(format, StatusCode::SERVICE_UNAVAILABLE, "try again later"),
    };
    answer(
        format,
        "services",
        "service",
        categories
            .into_iter()
            .map(|c| {
                vec![
                    ("service_code", V::S(c.code.clone())),
                    ("service_name", V::S(c.name.clone())),
                    ("description", V::S(c.name)),
                    ("metadata", V::B(false)),
                    ("type", V::S("realtime".into())),
                    ("keywords", V::S(String::new())),
                    ("group", V::S(c.group)),
                ]
            })
            .collect(),
    )
}

async fn service_definition(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let (code, format) = match admitted(&station, peer, &headers, &file) {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let code = code.to_string();
    let asked = code.clone();
    let known = station
        .read(move |r| {
            Ok(r.documents()
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .any(|c| c.code == asked))
        })
        .await;
    match known {
        Ok(true) => {}
        Ok(false) => return error(format, StatusCode::NOT_FOUND, "no such service_code"),
        Err(_) => return error(format, StatusCode::SERVICE_UNAVAILABLE, "try again later"),
    }
    // No service takes attributes: the definition lists none.
    match format {
        Format::Json => typed(
            StatusCode::OK,
            format,
            serde_json::json!({"service_code": code, "attributes": []}).to_string(),
        ),
        Format::Xml => typed(
            StatusCode::OK,
            format,
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><service_definition><service_code>{}</service_code><attributes></attributes></service_definition>",
                xml_escape(&code)
            ),
        ),
    }
}

/// A case as a service request.
fn request_record(
    c: &CaseSummary,
    names: &HashMap<String, String>,
    departments: &HashMap<String, String>,
    addresses: &HashMap<String, String>,
) -> Record {
    let open = !matches!(c.status, CaseStatus::Closed | CaseStatus::Rejected);
    vec![
        (
            "service_request_id",
            V::S(c.id.trim_start_matches("case/").to_string()),
        ),
        ("status", V::S(if open { "open" } else { "closed" }.into())),
        ("status_notes", V::S(c.status.label_zh().into())),
        (
            "service_name",
            V::S(names.get(&c.category).cloned().unwrap_or_default()),
        ),
        ("service_code", V::S(c.category.clone())),
        ("description", V::Null),
        (
            "agency_responsible",
            match &c.dispatched_to {
                Some((d, _)) => V::S(departments.get(d).cloned().unwrap_or_else(|| d.clone())),
                None => V::Null,
            },
        ),
        ("service_notice", V::Null),
        ("requested_datetime", V::S(w3c(c.reported_at))),
        ("updated_datetime", V::S(w3c(c.updated_at))),
        (
            "expected_datetime",
            c.deadline.map_or(V::Null, |d| V::S(w3c(d))),
        ),
        (
            "address",
            c.shop_id
                .as_ref()
                .and_then(|s| addresses.get(s))
                .map_or(V::Null, |a| V::S(a.clone())),
        ),
        ("address_id", V::Null),
        ("zipcode", V::Null),
        ("lat", V::N(c.location.lat)),
        ("long", V::N(c.location.lon)),
        ("media_url", V::Null),
    ]
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The service requests `q` asks for, or the error answer.
async fn requests(
    station: &Arc<Station>,
    format: Format,
    q: HashMap<String, String>,
) -> Result<Vec<Record>, Response> {
    let ids: Option<Vec<String>> = q.get("service_request_id").map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .take(MAX_RESULTS as usize)
            .collect()
    });
    let now = Utc::now();
    // A W3C datetime parameter: absent, or its time, or why not.
    let time_of = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| format!("{name} is not a W3C datetime")),
        }
    };
    let (start, end) = {
        let bad = |why: String| error(format, StatusCode::BAD_REQUEST, &why);
        let (s, e) = (
            time_of("start_date").map_err(bad)?,
            time_of("end_date").map_err(bad)?,
        );
        {
            let end = e.unwrap_or(now);
            let start = s.unwrap_or(end - Duration::days(DEFAULT_DAYS));
            if end < start {
                return Err(error(
                    format,
                    StatusCode::BAD_REQUEST,
                    "end_date is before start_date",
                ));
            }
            if end - start > Duration::days(DEFAULT_DAYS) {
                return Err(error(
                    format,
                    StatusCode::BAD_REQUEST,
                    "a range may not span more than 90 days",
                ));
            }
            (start, end)
        }
    };
    let open = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(_) => {
            return Err(error(
                format,
                StatusCode::BAD_REQUEST,
                "status is open or closed",
            ));
        }
    };
    let codes: Vec<String> = q
        .get("service_code")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if codes.len() > 50 {
        return Err(error(
            format,
            StatusCode::BAD_REQUEST,
            "at most 50 service codes",
        ));
    }
    let found = station
        .read(move |r| {
            let docs = r.documents();
            let everyone = menqian_core::Visibility::Everything;
            let mut cases: Vec<CaseSummary> = Vec::new();
            if let Some(ids) = ids {
                for key in ids {
                    if key.len() > 64 {
                        continue;
                    }
                    let id = format!("case/{key}");
                    cases.extend(docs.case_summary(&id).map_err(StoreError::from)?);
                }
            } else {
                let lists: Vec<Option<String>> = if codes.is_empty() {
                    vec![None]
                } else {
                    codes.into_iter().map(Some).collect()
                };
                for category in lists {
                    let filter = CaseFilter {
                        category,
                        from: Some(start),
                        to: Some(end),
                        open,
                        ..CaseFilter::default()
                    };
                    cases.extend(
                        docs.case_page(&filter, &everyone, 0, MAX_RESULTS)
                            .map_err(StoreError::from)?,
                    );
                }
                cases.sort_by(|a, b| b.reported_at.cmp(&a.reported_at).then(b.id.cmp(&a.id)));
                cases.truncate(MAX_RESULTS as usize);
            }
            let names: HashMap<String, String> = docs
                .categories()
                .map_err(StoreError::from)?
                .into_iter()
                .map(|c| (c.code, c.name))
                .collect();
            let departments: HashMap<String, String> = docs
                .rules()
                .map_err(StoreError::from)?
                .departments
                .into_iter()
                .map(|d| (d.code, d.name))
                .collect();
            let mut addresses = HashMap::new();
            for c in &cases {
                if let Some(s) = &c.shop_id
                    && !addresses.contains_key(s)
                    && let Ok(shop) = docs.shop(s)
                {
                    addresses.insert(s.clone(), shop.address);
                }
            }
            Ok(cases
                .iter()
                .map(|c| request_record(c, &names, &departments, &addresses))
                .collect::<Vec<_>>())
        })
        .await;
    found.map_err(|_| error(format, StatusCode::SERVICE_UNAVAILABLE, "try again later"))
}

async fn one_request(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let (key, format) = match admitted(&station, peer, &headers, &file) {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    let mut q = HashMap::new();
    q.insert("service_request_id".to_string(), key.to_string());
    match requests(&station, format, q).await {
        // An id no case has: 404.
        Ok(records) if records.is_empty() => {
            error(format, StatusCode::NOT_FOUND, "no such service_request_id")
        }
        Ok(records) => answer(format, "service_requests", "request", records),
        Err(r) => r,
    }
}

async fn token(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let (token, format) = match admitted(&station, peer, &headers, &file) {
        Ok(found) => found,
        Err(r) => return r.into_response(),
    };
    // A request's id is given at once when posted, so its token is that id:
    // known only when a case has it.
    if token.is_empty()
        || token.len() > 64
        || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return error(format, StatusCode::NOT_FOUND, "no such token");
    }
    let id = format!("case/{token}");
    let known = station
        .read(move |r| Ok(r.documents().case(&id).is_ok()))
        .await;
    match known {
        Ok(true) => answer(
            format,
            "service_requests",
            "request",
            vec![vec![
                ("service_request_id", V::S(token.to_string())),
                ("token", V::S(token.to_string())),
            ]],
        ),
        Ok(false) => error(format, StatusCode::NOT_FOUND, "no such token"),
        Err(_) => error(format, StatusCode::SERVICE_UNAVAILABLE, "try again later"),
    }
}

/// `POST requests`: a form with an `api_key` an administrator issued
/// (`open311 add-key`), `service_code`, `lat` and `long`, `description`,
/// optionally `address_string`, `media_url`, `attribute[…]`. Filed as a
/// citizen's report (source 12345热线 … as `hotline`) at the nearest shop
/// within 50 m, else at the place.
async fn post_requests(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    UrlPath(file): UrlPath<String>,
    request: axum::extract::Request,
) -> Response {
    let Some(("requests", format)) = split(&file) else {
        return error(
            Format::Json,
            StatusCode::NOT_FOUND,
            "POST requests.json or requests.xml",
        );
    };
    // The key is in the form, so the body must be read to check it: the
    // address is limited first (as a citizen's reports are), and the body
    // is at most MAX_POST_BYTES.
    if let Err(r) = admit(&station, peer, request.headers(), format) {
        return r.into_response();
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_POST_BYTES).await else {
        return error(
            format,
            StatusCode::PAYLOAD_TOO_LARGE,
            "a request is at most 16 KiB",
        );
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(key) = form.get("api_key").filter(|k| k.len() <= 128) else {
        return error(format, StatusCode::FORBIDDEN, "api_key is required");
    };
    let claimed: String = key.chars().take(16).collect();
    if station
        .traffic
        .admit_alert(&format!("open311:{claimed}"))
        .is_err()
    {
        return error(
            format,
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests with this api_key",
        );
    }
    let asked = key.clone();
    let client = match station
        .read(move |r| Ok(r.accounts().open311_client(&asked)?))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return error(format, StatusCode::FORBIDDEN, "api_key is not valid"),
        Err(_) => return error(format, StatusCode::SERVICE_UNAVAILABLE, "try again later"),
    };
    let Some(code) = form.get("service_code").cloned() else {
        return error(format, StatusCode::BAD_REQUEST, "service_code is required");
    };
    let description = form.get("description").cloned().unwrap_or_default();
    if description.chars().count() > 4_000 {
        return error(
            format,
            StatusCode::BAD_REQUEST,
            "description is at most 4000 characters",
        );
    }
    let at = match (
        form.get("lat").and_then(|v| v.parse::<f64>().ok()),
        form.get("long").and_then(|v| v.parse::<f64>().ok()),
    ) {
        (Some(lat), Some(lon)) => menqian_core::GeoPoint::new(lat, lon),
        _ if form.contains_key("address_string") => {
            return error(
                format,
                StatusCode::BAD_REQUEST,
                "lat and long are required: an address_string alone cannot be placed",
            );
        }
        _ => return error(format, StatusCode::BAD_REQUEST, "lat and long are required"),
    };
    if at.validate("lat/long").is_err() {
        return error(
            format,
            StatusCode::BAD_REQUEST,
            "lat/long is not a WGS-84 point",
        );
    }
    let filed = station
        .write(move |w| {
            let docs = w.documents();
            if !docs
                .categories()
                .map_err(StoreError::from)?
                .iter()
                .any(|c| c.code == code)
            {
                return Ok(Err("service_code is not a service".to_string()));
            }
            let shop = docs.nearest_shop(at, 50.0).map_err(StoreError::from)?;
            let note = format!("（经 Open311 由 {client} 转来）");
            let filed = docs.file_report(menqian_core::NewCase {
                source: menqian_core::CaseSource::Hotline,
                category: code,
                location: at,
                shop_id: shop,
                photos: Vec::new(),
                description: format!("{description}{note}"),
                deadline: None,
                reported_by: "open311".into(),
                reported_at: Utc::now(),
                subdistrict: None,
                lane: None,
            });
            Ok(filed.map(|f| f.case_id).map_err(|e| e.to_string()))
        })
        .await;
    match filed {
        Ok(Ok(id)) => answer(
            format,
            "service_requests",
            "request",
            vec![vec![
                (
                    "service_request_id",
                    V::S(id.trim_start_matches("case/").to_string()),
                ),
                ("service_notice", V::S("已受理登记，处理进度可查询".into())),
                ("account_id", V::Null),
            ]],
        ),
        Ok(Err(why)) => error(format, StatusCode::BAD_REQUEST, &why),
        Err(ApiError { .. }) => error(format, StatusCode::SERVICE_UNAVAILABLE, "try again later"),
    }
}
