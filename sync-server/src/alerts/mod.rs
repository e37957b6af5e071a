//! Cameras and sensors (智能感知—自动派单—闭环处置). A registered source
//! posts `POST /v1/alerts`, signed with HMAC-SHA256 over the timestamp and
//! the body; the station links the alert to the shop the source watches (or
//! the shop nearest to where it says), reminds the shop at once (shown on its
//! signboard page, and sent through the notifiers), and when the problem is
//! seen again after the reminder's deadline (the district rules' minutes per
//! category) turns it into a case dispatched by the rules. Each (source,
//! alert id) counts once.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::{AlertRecorded, Reminder, StoreError};
use crate::sync::{ApiError, Station};

/// An alert's body without a snapshot, at most.
pub const MAX_ALERT_BYTES: usize = 16 * 1024;
/// An alert's body with its snapshot (base64: 4 characters per 3 bytes), at most.
pub const MAX_SNAPSHOT_ALERT_BYTES: usize =
    MAX_ALERT_BYTES + crate::photos::MAX_PHOTO_BYTES / 3 * 4 + 4;
/// How far an alert's timestamp may be from the station's clock.
pub const MAX_SKEW_SECS: i64 = 300;
/// Who escalations from alerts are written by.
pub const ALERTS_USER: &str = "alerts";

pub const SOURCE_HEADER: &str = "x-menqian-source";
pub const TIME_HEADER: &str = "x-menqian-timestamp";
pub const SIGNATURE_HEADER: &str = "x-menqian-signature";

pub fn routes() -> Router<Arc<Station>> {
    Router::new().route("/v1/alerts", post(alert))
}

/// Where a reminder goes besides the shop's page: the log, a webhook; an SMS
/// gateway would implement this too.
pub trait Notifier: Send + Sync + std::fmt::Debug {
    fn remind(&self, note: &ReminderNote);
}

/// A reminder as notifiers send it.
#[derive(Debug, Clone, Serialize)]
pub struct ReminderNote {
    pub reminder: i64,
    pub shop_id: String,
    pub shop_name: String,
    pub category: String,
    pub category_name: String,
    pub source: String,
    pub at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
}

#[derive(Debug)]
struct LogNotifier;

impl Notifier for LogNotifier {
    fn remind(&self, n: &ReminderNote) {
        tracing::info!(
            reminder = n.reminder,
            shop = %n.shop_id,
            category = %n.category,
            source = %n.source,
            deadline = %n.deadline,
            "reminder to a shop"
        );
    }
}

/// Posts each reminder as JSON, in the background (a slow endpoint never
/// holds an alert up).
#[derive(Debug)]
struct WebhookNotifier {
    url: String,
    client: reqwest::Client,
}

impl Notifier for WebhookNotifier {
    fn remind(&self, n: &ReminderNote) {
        let (client, url, note) = (self.client.clone(), self.url.clone(), n.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = client.post(&url).json(&note).send().await {
                    tracing::warn!(error = %e, "the reminder webhook failed");
                }
            });
        }
    }
}

#[derive(Debug)]
struct Both(Vec<Box<dyn Notifier>>);

impl Notifier for Both {
    fn remind(&self, n: &ReminderNote) {
        for each in &self.0 {
            each.remind(n);
        }
    }
}

/// The log notifier, and the webhook one when `webhook` is given.
pub fn notifier(webhook: Option<&str>) -> Arc<dyn Notifier> {
    let mut all: Vec<Box<dyn Notifier>> = vec![Box::new(LogNotifier)];
    if let Some(url) = webhook {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        all.push(Box::new(WebhookNotifier {
            url: url.to_string(),
            client,
        }));
    }
    Arc::new(Both(all))
}

/// The signature of `body` sent at `timestamp` with `secret`: lowercase hex
/// of HMAC-SHA256 over `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    menqian_core::hex::encode(&mac.finalize().into_bytes())
}

/// An alert's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// The source's own id for the event (at most 64 characters).
    pub alert_id: String,
    /// A category code of the district's table, e.g. `0504` 店外经营.
    pub category: String,
    /// When the source saw it.
    pub at: DateTime<Utc>,
    /// Where (a moving sensor); else the source's shop or place.
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    /// A sensor's reading; under its threshold the alert is ignored.
    #[serde(default)]
    pub reading: Option<Reading>,
    /// A camera's snapshot: a JPEG in standard base64. It is processed like
    /// a citizen's photo (no EXIF kept) and becomes evidence of the case if
    /// the reminder escalates.
    #[serde(default)]
    pub snapshot: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    /// e.g. `dust` (PM10, µg/m³) or `noise` (dB).
    pub kind: String,
    pub value: f64,
    pub threshold: f64,
}

#[derive(Debug, Serialize)]
struct Answer {
    /// `reminded`, `again`, `escalated` or `ignored`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reminder: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shop_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    case_id: Option<String>,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError::new(status, code, message.into()).into_response()
}

async fn alert(State(station): State<Arc<Station>>, headers: HeaderMap, body: Body) -> Response {
    // Who it is and when it was signed, before the body is read.
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(source_id), Some(timestamp), Some(sig)) = (
        header(SOURCE_HEADER),
        header(TIME_HEADER),
        header(SIGNATURE_HEADER),
    ) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unsigned",
            "an alert needs X-Menqian-Source, X-Menqian-Timestamp and X-Menqian-Signature",
        );
    };
    let Ok(sent) = timestamp.parse::<i64>() else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "bad_timestamp",
            "the timestamp is Unix seconds",
        );
    };
    if (Utc::now().timestamp() - sent).abs() > MAX_SKEW_SECS {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "stale",
            format!("the timestamp is more than {MAX_SKEW_SECS} s from the station's clock"),
        );
    }
    if source_id.len() > 64 {
        return refuse(StatusCode::UNAUTHORIZED, "unknown_source", "no such source");
    }
    if let Err(busy) = station.traffic.admit_alert(&source_id) {
        return crate::sync::busy(busy).into_response();
    }
    let asked = source_id.clone();
    let source = match station
        .read(move |r| Ok(r.accounts().alert_source(&asked)?))
        .await
    {
        Ok(Some(s)) => s,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "unknown_source", "no such source"),
        Err(e) => return e.into_response(),
    };
    // A body that may carry a snapshot takes one of the places for
    // photo-sized bodies before it is read (it is signed over all of it, so
    // it is read whole to be checked); a small one reads at most 16 KiB.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (limit, _place) = if declared.is_some_and(|n| n <= MAX_ALERT_BYTES) {
        (MAX_ALERT_BYTES, None)
    } else {
        match crate::photos::hold_body(&station).await {
            Ok(place) => (MAX_SNAPSHOT_ALERT_BYTES, Some(place)),
            Err(_) => {
                return crate::sync::busy(crate::guard::Busy {
                    retry_after: std::time::Duration::from_secs(5),
                    why: "the station is receiving other photos",
                })
                .into_response();
            }
        }
    };
    let bytes = match crate::sync::read_body(&station, &headers, body, limit).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let expected = signature(&source.secret, &timestamp, &bytes);
    if expected.is_empty() || !crate::console::web::same(&expected, &sig.to_ascii_lowercase()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the signature does not match",
        );
    }
    let mut alert: Alert = match serde_json::from_slice(&bytes) {
        Ok(a) => a,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_alert",
                format!("not an alert: {e}"),
            );
        }
    };
    if alert.alert_id.is_empty() || alert.alert_id.len() > 64 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_alert",
            "alert_id is 1–64 characters",
        );
    }
    if let Some(r) = &alert.reading {
        if !(r.value.is_finite() && r.threshold.is_finite()) {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_alert",
                "a reading is a number",
            );
        }
        if r.value < r.threshold {
            return Json(Answer {
                outcome: "ignored",
                reminder: None,
                shop_id: None,
                deadline: None,
                case_id: None,
            })
            .into_response();
        }
    }
    let snapshot = match alert.snapshot.take() {
        Some(encoded) => match snapshot(&station, &source, &encoded, alert.at).await {
            Ok(p) => {
                if let Err(e) = station.keep_photo(&p).await {
                    return e.into_response();
                }
                Some(p)
            }
            Err(r) => return r,
        },
        None => None,
    };
    let notifier = station.notifier.clone();
    let done = station
        .write(move |w| {
            let now = Utc::now();
            let docs = w.documents();
            let categories = docs.categories().map_err(StoreError::from)?;
            let Some(category) = categories.iter().find(|c| c.code == alert.category) else {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_alert",
                    format!("{} is not in the category table", alert.category),
                ));
            };
            let place = match (alert.lat, alert.lon) {
                (Some(lat), Some(lon)) => Some(menqian_core::GeoPoint::new(lat, lon)),
                _ => source.location,
            };
            let shop_id = match (&source.shop_id, place) {
                (Some(id), _) => id.clone(),
                (None, Some(at)) => docs
                    .nearest_shop(at, 100.0)
                    .map_err(StoreError::from)?
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "no_shop",
                            "no shop within 100 m of the alert",
                        )
                    })?,
                (None, None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_alert",
                        "this source watches no shop: the alert needs lat and lon",
                    ));
                }
            };
            let shop = docs.shop(&shop_id).map_err(StoreError::from)?;
            let minutes = docs
                .rules()
                .map_err(StoreError::from)?
                .alerts
                .minutes(&category.code);
            let category_name = category.name.clone();
            let photo = match &snapshot {
                Some(p) => Some(
                    docs.register_received_photo(p, now)
                        .map_err(StoreError::from)?
                        .hash,
                ),
                None => None,
            };
            let recorded = w.accounts().record_alert(
                &crate::store::AlertEvent {
                    source: &source.id,
                    alert_id: &alert.alert_id,
                    shop_id: &shop_id,
                    category: &alert.category,
                    at: alert.at.min(now),
                    minutes,
                    photo: photo.as_deref(),
                },
                now,
            )?;
            let answer = |outcome, r: &Reminder, case_id| Answer {
                outcome,
                reminder: Some(r.id),
                shop_id: Some(r.shop_id.clone()),
                deadline: Some(r.deadline),
                case_id,
            };
            Ok(match recorded {
                AlertRecorded::Duplicate => None,
                AlertRecorded::Reminded(r) => {
                    notifier.remind(&ReminderNote {
                        reminder: r.id,
                        shop_id: r.shop_id.clone(),
                        shop_name: shop.name.clone(),
                        category: r.category.clone(),
                        category_name,
                        source: r.source.clone(),
                        at: r.first_at,
                        deadline: r.deadline,
                    });
                    Some(answer("reminded", &r, None))
                }
                AlertRecorded::Again { reminder, due } if due => {
                    let description = format!(
                        "{}提醒后仍未改正：{}（{}，期限 {}）",
                        source.kind_zh(),
                        category_name,
                        shop.name,
                        crate::console::beijing(reminder.deadline)
                    );
                    let photos = w.accounts().reminder_photos(reminder.id)?;
                    let case_id = w
                        .documents()
                        .escalate_reminder(
                            &shop_id,
                            &reminder.category,
                            &description,
                            photos,
                            now,
                            ALERTS_USER,
                        )
                        .map_err(StoreError::from)?;
                    w.accounts().set_reminder_case(reminder.id, &case_id)?;
                    Some(answer("escalated", &reminder, Some(case_id)))
                }
                AlertRecorded::Again { reminder, .. } => Some(answer("again", &reminder, None)),
            })
        })
        .await;
    match done {
        Ok(Some(answer)) => Json(answer).into_response(),
        Ok(None) => refuse(
            StatusCode::CONFLICT,
            "already_recorded",
            "this source's alert with this id was recorded before",
        ),
        Err(e) => e.into_response(),
    }
}

/// A snapshot decoded (bounded) and through the photo pipeline, watermarked
/// with the source and the shop it watches.
async fn snapshot(
    station: &Arc<Station>,
    source: &crate::store::AlertSource,
    encoded: &str,
    at: DateTime<Utc>,
) -> Result<menqian_core::evidence::photo::ProcessedPhoto, Response> {
    use base64::Engine;
    let bad = |message: String| refuse(StatusCode::BAD_REQUEST, "bad_snapshot", message);
    if encoded.len() > crate::photos::MAX_PHOTO_BYTES / 3 * 4 + 4 {
        return Err(bad(format!(
            "a snapshot is at most {} MB",
            crate::photos::MAX_PHOTO_BYTES >> 20
        )));
    }
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| bad(format!("the snapshot is not base64: {e}")))?;
    let taken_by = format!("{}{}", source.kind_zh(), source.id);
    let (shop, place) = (source.shop_id.clone(), source.location);
    let stamp = station
        .read(move |r| {
            Ok(r.documents()
                .photo_stamp(shop.as_deref(), None, at, place, &taken_by)
                .map_err(StoreError::from)?)
        })
        .await
        .map_err(IntoResponse::into_response)?;
    match crate::photos::process(station, jpeg, stamp).await {
        Ok(p) => Ok(p),
        Err(crate::photos::Refused::Bad(e)) => Err(bad(format!("the snapshot: {e}"))),
        Err(crate::photos::Refused::Busy) => Err(crate::sync::busy(crate::guard::Busy {
            retry_after: std::time::Duration::from_secs(5),
            why: "the station is processing other photos",
        })
        .into_response()),
        Err(crate::photos::Refused::Failed) => Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the snapshot could not be processed",
        )),
    }
}

impl crate::store::AlertSource {
    /// 摄像头 or 传感器, for case descriptions.
    pub fn kind_zh(&self) -> &'static str {
        if self.kind == "sensor" {
            "传感器"
        } else {
            "摄像头"
        }
    }
}
