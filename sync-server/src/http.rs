//! The HTTP API (docs/protocol.md): `/healthz`, `/v1/enroll`, `/v1/push`,
//! `/v1/pull`. Store work runs on the blocking pool; every failure is a status
//! and a JSON body `{"error": <code>, "message": <text>}` a client can act on.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use menqian_core::evidence::blobs::BlobDir;
use menqian_core::wire::{self, WireBatch};
use menqian_core::{Error as CoreError, Writer};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{Device, StoreError, SyncStore, User};

/// The largest request body accepted: a push page of a few thousand changes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The largest page a pull returns.
pub const MAX_PULL_PAGE: u32 = 5_000;

pub type SharedStore = Arc<Mutex<Box<dyn SyncStore>>>;

/// The station's photo files. Uploads and downloads use them outside the
/// store's lock, so a photo on a slow link never holds up a push; appends take
/// turns on their own lock (an append checks the size, then writes).
#[derive(Debug)]
pub struct Blobs {
    dir: BlobDir,
    appending: Mutex<()>,
}

pub fn router(store: SharedStore) -> Router {
    router_with(store, None)
}

/// [`router`], serving `ca` (the CA devices pin at enrollment) at `/v1/tls/ca`.
pub fn router_with(store: SharedStore, ca: Option<Arc<crate::StationCa>>) -> Router {
    let dir = {
        let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
        guard.documents().blobs().clone()
    };
    let blobs = Arc::new(Blobs {
        dir,
        appending: Mutex::new(()),
    });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/enroll", post(enroll))
        .route(menqian_core::enrollment::CA_PATH, get(station_ca))
        .route("/v1/push", post(push))
        .route("/v1/pull", get(pull))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/blobs/{hash}", get(blob_get).put(blob_put))
        .route("/v1/blobs/{hash}/status", get(blob_status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(stamp_time))
        .layer(axum::Extension(blobs))
        .layer(axum::Extension(ca))
        .with_state(store)
}

/// The station's CA certificate (DER), for a device enrolling through a link
/// that pins it. Public: the pin, not this answer, is what a device trusts.
async fn station_ca(
    axum::Extension(ca): axum::Extension<Option<Arc<crate::StationCa>>>,
) -> Result<Response, ApiError> {
    let ca = ca.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_ca",
            "this station was started without --tls-ca",
        )
    })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/pkix-cert")],
        ca.der.clone(),
    )
        .into_response())
}

/// A failure as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: serde_json::Value,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: json!({}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            b.extend(extra.clone());
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use StatusCode as S;
        match e {
            StoreError::Unauthorized(m) => ApiError::new(S::UNAUTHORIZED, "unauthorized", m),
            StoreError::Conflict(m) => ApiError::new(S::CONFLICT, "conflict", m),
            StoreError::AreaChanged(m) => ApiError::new(S::CONFLICT, "area_changed", m),
            StoreError::Invalid { field, reason } => {
                ApiError::new(S::BAD_REQUEST, "invalid", format!("{field}: {reason}"))
            }
            StoreError::NotFound { kind, id } => {
                ApiError::new(S::NOT_FOUND, "not_found", format!("{kind} {id}"))
            }
            StoreError::Core(CoreError::Refused {
                index,
                doc_id,
                reason,
            }) => ApiError {
                extra: json!({ "change": index, "doc_id": doc_id }),
                ..ApiError::new(
                    S::FORBIDDEN,
                    "refused",
                    format!("change {index} to {doc_id}: {reason}"),
                )
            },
            StoreError::Core(e @ CoreError::MissingDependencies { .. }) => {
                ApiError::new(S::CONFLICT, "missing_dependencies", e.to_string())
            }
            StoreError::Core(e @ (CoreError::Corrupt { .. } | CoreError::InvalidInput { .. })) => {
                ApiError::new(S::BAD_REQUEST, "bad_change", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not complete this request",
                )
            }
        }
    }
}

/// Runs store work off the async threads, with the store locked.
async fn with_store<T: Send + 'static>(
    store: &SharedStore,
    work: impl FnOnce(&mut dyn SyncStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    on_files(move || {
        let mut guard = store.lock().map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "store unavailable",
            )
        })?;
        work(guard.as_mut())
    })
    .await
}

fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing bearer token",
            )
        })
}

fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got.split(';').next().map(str::trim) == Some(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong_content_type",
            format!(
                "expected {expected}, got {:?}",
                if got.is_empty() { "nothing" } else { got }
            ),
        ))
    }
}

#[derive(Debug, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    pub actor: String,
    pub device_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: String,
    pub token: String,
    pub user_id: String,
    pub role: String,
}

async fn enroll(
    State(store): State<SharedStore>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<EnrollResponse>, ApiError> {
    require_content_type(&headers, "application/json")?;
    let req: EnrollRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("enroll body: {e}"),
        )
    })?;
    let enrolled = with_store(&store, move |s| {
        Ok(s.enroll(&req.code, &req.actor, &req.device_name, Utc::now())?)
    })
    .await?;
    tracing::info!(device = %enrolled.device_id, user = %enrolled.user.id, "device enrolled");
    Ok(Json(EnrollResponse {
        device_id: enrolled.device_id,
        token: enrolled.token,
        user_id: enrolled.user.id,
        role: enrolled.user.role.as_str().to_string(),
    }))
}

async fn push(
    State(store): State<SharedStore>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = bearer(&headers)?;
    // Who is asking comes first: a stranger learns nothing about the body.
    let (device, user) = with_store(&store, move |s| Ok(s.authenticate(&token)?)).await?;
    require_content_type(&headers, wire::CONTENT_TYPE)?;
    let batch = wire::decode(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_batch", e.to_string()))?;
    let count = batch.changes.len();
    let writer = Writer {
        user: user.id,
        role: user.role,
        actor: device.actor.clone(),
    };
    let received = Utc::now();
    let report = with_store(&store, move |s| {
        Ok(s.push(&writer, &batch.changes, received)?)
    })
    .await?;
    let device = device.id;
    tracing::info!(device = %device, changes = count, applied = report.applied, duplicates = report.duplicates, "push accepted");
    Ok(Json(json!({
        "applied": report.applied,
        "duplicates": report.duplicates,
        "received_at": received.timestamp_millis(),
    })))
}

/// The header every reply carries: the server's clock (Unix ms), from which
/// phones take the time their records' clock evidence counts from.
pub const TIME_HEADER: &str = "x-menqian-time";

async fn stamp_time(mut response: Response) -> Response {
    response.headers_mut().insert(
        TIME_HEADER,
        axum::http::HeaderValue::from(Utc::now().timestamp_millis()),
    );
    response
}

/// The largest upload chunk.
pub const MAX_BLOB_CHUNK: usize = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct BlobPutQuery {
    pub offset: u64,
    pub total: u64,
}

fn blob_state(r: menqian_core::evidence::blobs::Received) -> serde_json::Value {
    use menqian_core::evidence::blobs::Received;
    match r {
        Received::Complete { bytes } => json!({ "received": bytes, "complete": true }),
        Received::Partial { bytes } => json!({ "received": bytes, "complete": false }),
    }
}

fn check_hash(hash: &str) -> Result<(), ApiError> {
    if menqian_core::evidence::is_hash(hash) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_hash",
            "a blob is named by its SHA-256: 64 lower-case hex digits",
        ))
    }
}

/// Who is asking (any enrolled device may upload; reading is checked per blob).
async fn authenticated(store: &SharedStore, headers: &HeaderMap) -> Result<User, ApiError> {
    let token = bearer(headers)?;
    with_store(store, move |s| Ok(s.authenticate(&token)?.1)).await
}

/// Runs blocking work (files, the store) on the blocking pool.
async fn on_files<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request's worker failed",
        )
    })?
}

fn file_error(e: CoreError) -> ApiError {
    ApiError::from(StoreError::from(e))
}

/// How much of a blob the server holds: where an interrupted upload resumes.
async fn blob_status(
    State(store): State<SharedStore>,
    axum::Extension(blobs): axum::Extension<Arc<Blobs>>,
    headers: HeaderMap,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_hash(&hash)?;
    authenticated(&store, &headers).await?;
    let state = on_files(move || blobs.dir.received(&hash).map_err(file_error)).await?;
    Ok(Json(blob_state(state)))
}

/// Appends a chunk at `offset` of a `total`-byte blob. The last chunk makes
/// the server hash the whole: a blob whose content does not match its name is
/// discarded (422). A chunk at the wrong offset writes nothing and the reply
/// says where to resume.
async fn blob_put(
    State(store): State<SharedStore>,
    axum::Extension(blobs): axum::Extension<Arc<Blobs>>,
    headers: HeaderMap,
    axum::extract::Path(hash): axum::extract::Path<String>,
    query: Result<Query<BlobPutQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_hash(&hash)?;
    authenticated(&store, &headers).await?;
    let Query(q) = query.map_err(bad_query)?;
    require_content_type(&headers, "application/octet-stream")?;
    if body.len() > MAX_BLOB_CHUNK {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "chunk_too_large",
            format!("send at most {MAX_BLOB_CHUNK} bytes per chunk"),
        ));
    }
    if q.offset == 0 && !body.is_empty() && !body.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_jpeg",
            "photos are JPEG files",
        ));
    }
    let state = on_files(move || {
        let _turn = blobs.appending.lock().unwrap_or_else(|p| p.into_inner());
        blobs
            .dir
            .append(&hash, q.offset, q.total, &body)
            .map_err(|e| match e {
                CoreError::InvalidInput { field, reason } if field == "blob" => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch", reason)
                }
                other => file_error(other),
            })
    })
    .await?;
    Ok(Json(blob_state(state)))
}

/// Downloads a photo or thumbnail that a record the reader may see refers to.
/// Anything else is 404, whether or not it exists.
async fn blob_get(
    State(store): State<SharedStore>,
    axum::Extension(blobs): axum::Extension<Arc<Blobs>>,
    headers: HeaderMap,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    check_hash(&hash)?;
    let token = bearer(&headers)?;
    let asked = hash.clone();
    let visible = with_store(&store, move |s| {
        let (_, user) = s.authenticate(&token)?;
        Ok(s.documents()
            .blob_visible(&asked, &user.visibility())
            .map_err(StoreError::from)?)
    })
    .await?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("photo {hash}"));
    if !visible {
        return Err(not_found());
    }
    let name = hash.clone();
    let bytes = on_files(move || match blobs.dir.read(&name) {
        Err(CoreError::NotFound { .. }) => Ok(None),
        other => other.map(Some).map_err(file_error),
    })
    .await?
    .ok_or_else(not_found)?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PullQuery {
    pub after: Option<u64>,
    pub limit: Option<u32>,
}

async fn pull(
    State(store): State<SharedStore>,
    headers: HeaderMap,
    query: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1_000).clamp(1, MAX_PULL_PAGE);
    framed(&store, &headers, move |s, device, user| {
        s.pull(device, user, after, limit)
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct SnapshotQuery {
    pub after: Option<String>,
    pub limit: Option<u32>,
    /// Comma-separated document ids: just these documents, whole.
    pub docs: Option<String>,
}

/// The most documents one `docs=` request may name.
pub const MAX_DOCS_BY_ID: usize = 100;

async fn snapshot(
    State(store): State<SharedStore>,
    headers: HeaderMap,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(2_000).clamp(1, MAX_PULL_PAGE);
    if let Some(docs) = q.docs {
        let ids: Vec<String> = docs
            .split(',')
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect();
        if ids.is_empty() || ids.len() > MAX_DOCS_BY_ID {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("docs: name 1–{MAX_DOCS_BY_ID} document ids"),
            ));
        }
        return framed(&store, &headers, move |s, _, user| {
            s.documents_by_id(user, &ids)
        })
        .await;
    }
    framed(&store, &headers, move |s, device, user| {
        s.snapshot(device, user, q.after.as_deref(), limit)
    })
    .await
}

/// A query string that does not parse gets the same JSON error as any other
/// bad request.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text())
}

/// Authenticates the reader, runs `read` on the store and replies with the
/// framed batch it returns.
async fn framed(
    store: &SharedStore,
    headers: &HeaderMap,
    read: impl FnOnce(&mut dyn SyncStore, &Device, &User) -> crate::store::StoreResult<WireBatch>
    + Send
    + 'static,
) -> Result<Response, ApiError> {
    let token = bearer(headers)?;
    let batch = with_store(store, move |s| {
        let (device, user) = s.authenticate(&token)?;
        Ok(read(s, &device, &user)?)
    })
    .await?;
    let body = wire::encode(&batch).map_err(|e| {
        tracing::error!(error = %e, "could not frame a reply");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not frame its reply",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], body).into_response())
}
