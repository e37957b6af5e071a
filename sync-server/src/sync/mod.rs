//! The HTTP API (docs/protocol.md): `/healthz`, `/v1/enroll`, `/v1/push`,
//! `/v1/pull`, `/v1/snapshot`, `/v1/blobs/…`, `/v1/tls/ca`. A handler
//! authenticates from the headers before it reads a body, takes its device's
//! share of the station (`guard`), reads the body within its size and time
//! limits, decodes and checks it, and only then touches the store: reads on
//! a pool of read-only connections, writes under the one writer's lock. Every
//! failure is a status and a JSON body `{"error": <code>, "message": <text>}`
//! a client can act on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use http_body_util::BodyExt as _;
use menqian_core::evidence::blobs::BlobDir;
use menqian_core::wire::{self, WireBatch};
use menqian_core::{ApplyReport, Error as CoreError, GroupedPush, Writer};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod committer;

use committer::{Committer, WaitingPush};

use crate::guard::{Busy, Slot, Traffic};
use crate::store::{Device, StoreError, SyncRead, SyncStore, User};

/// The largest push body: a page of a few thousand changes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The largest enrollment body.
pub const MAX_ENROLL_BYTES: usize = 4 * 1024;
/// The largest page a pull returns.
pub const MAX_PULL_PAGE: u32 = 5_000;
/// The largest upload chunk.
pub const MAX_BLOB_CHUNK: usize = 4 * 1024 * 1024;

/// What the HTTP layer enforces besides the connection limits (`net`).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time to receive a whole request body once its headers are in.
    pub body_timeout: Duration,
    /// Unfinished uploads one device may have on disk, in bytes.
    pub uploads_in_progress: u64,
    /// Uploads are refused while the data directory's file system has less
    /// free space than this.
    pub min_free_disk: u64,
    /// Read-only store connections (concurrent reads).
    pub readers: usize,
    /// The header a reverse proxy puts the client's address in; unset, the
    /// peer's address is the client's.
    pub client_address_header: Option<HeaderName>,
    /// Console cookies carry `Secure` (the station serves HTTPS).
    pub secure_cookies: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            body_timeout: Duration::from_secs(60),
            uploads_in_progress: 64 * 1024 * 1024,
            min_free_disk: 1024 * 1024 * 1024,
            readers: 8,
            client_address_header: None,
            secure_cookies: false,
        }
    }
}

/// The store's writer, shared by the handlers and the sweep.
pub type SharedStore = Arc<Mutex<Box<dyn SyncStore>>>;

/// Everything a handler needs.
pub struct Station {
    pub writer: SharedStore,
    readers: Mutex<Vec<Box<dyn SyncRead>>>,
    reader_turns: tokio::sync::Semaphore,
    blobs: BlobDir,
    /// Appends take turns (an append checks the size, then writes).
    appending: Mutex<()>,
    /// Where pushes wait for their group commit.
    committer: Committer,
    pub(crate) traffic: Arc<Traffic>,
    pub(crate) limits: HttpLimits,
    pub(crate) ca: Option<crate::StationCa>,
    /// The address phones reach the station at, for enrollment links.
    pub(crate) public_url: Option<String>,
    /// Who tokens belong to, on a connection of its own.
    auth: Mutex<Authenticator>,
    /// The change feed's head, as last looked at: the console's live pages
    /// follow it.
    pub(crate) feed: tokio::sync::watch::Sender<u64>,
    /// The console's rankings, kept per period and area while the feed stands.
    pub(crate) rankings: crate::console::FeedCache<crate::console::Rankings>,
    /// The console's overviews, per area.
    pub(crate) overviews: crate::console::FeedCache<menqian_core::Overview>,
    /// The map's data as JSON, per area, user, period and category.
    pub(crate) maps: crate::console::FeedCache<Vec<u8>>,
    /// Case list counts, per user and filter.
    pub(crate) case_counts: crate::console::FeedCache<u64>,
    /// Where reminders to shops go (the log, and a webhook if configured).
    pub(crate) notifier: Arc<dyn crate::alerts::Notifier>,
    /// The console's ledger uploads and long jobs (imports, printing).
    pub(crate) jobs: crate::console::onboard::Jobs,
    /// The host in signboards' QR links (the first `--qr-host`).
    pub(crate) signboard_host: String,
    /// Requests, errors, pushes, pulls (`/metrics`).
    pub(crate) metrics: crate::ops::Metrics,
    /// The bearer token `/metrics` wants, if set (`--metrics-token`).
    pub metrics_token: Option<String>,
    /// Photos in object storage, shared by a city's instances; the photo
    /// directory is then a cache in front of it.
    pub(crate) objects: Option<crate::objects::ObjectBlobs>,
    /// Where pushes are merged beside the writer, if the store has one.
    pub(crate) authority: Option<Arc<dyn crate::store::Authority>>,
    /// Turns of the photo pipeline for strangers' photos.
    pub(crate) photo_turns: tokio::sync::Semaphore,
    /// Places for photo-sized bodies in memory (`photos::BODIES_AT_ONCE`).
    pub(crate) photo_bodies: Arc<tokio::sync::Semaphore>,
    /// Open rectification items, per area.
    pub(crate) ledgers:
        crate::console::FeedCache<Vec<menqian_core::store::ledger::RectificationItem>>,
}

/// Authentication with a memory: tokens (by their SHA-256) already looked up,
/// good while the accounts database is unchanged, so a device's requests, and
/// a flood of them, cost one cheap version check instead of a lookup.
struct Authenticator {
    reader: Box<dyn SyncRead>,
    version: i64,
    known: std::collections::HashMap<Vec<u8>, (Device, User)>,
}

/// Tokens remembered at most (then all are forgotten).
const AUTH_CACHE_SIZE: usize = 100_000;

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Station")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Station {
    pub fn new(
        store: Box<dyn SyncStore>,
        limits: HttpLimits,
        shares: crate::guard::Shares,
        ca: Option<crate::StationCa>,
    ) -> Result<Station, StoreError> {
        let mut store = store;
        let readers = (0..limits.readers.max(1))
            .map(|_| store.reader())
            .collect::<Result<Vec<_>, _>>()?;
        let blobs = store.documents().blobs().clone();
        let auth = store.reader()?;
        let signboard_host = store
            .documents()
            .config()
            .qr_hosts
            .first()
            .cloned()
            .unwrap_or_else(|| menqian_fixtures::DEMO_HOST.to_string());
        let metrics = crate::ops::Metrics::default();
        let authority = store.authority();
        let writer: SharedStore = Arc::new(Mutex::new(store));
        let committer = Committer::start(
            writer.clone(),
            authority.clone(),
            metrics.push_groups.clone(),
        );
        Ok(Station {
            jobs: Default::default(),
            notifier: crate::alerts::notifier(None),
            signboard_host,
            reader_turns: tokio::sync::Semaphore::new(readers.len()),
            photo_turns: tokio::sync::Semaphore::new(crate::photos::turns()),
            photo_bodies: Arc::new(tokio::sync::Semaphore::new(crate::photos::BODIES_AT_ONCE)),
            metrics,
            metrics_token: None,
            objects: None,
            authority,
            readers: Mutex::new(readers),
            writer,
            blobs,
            appending: Mutex::new(()),
            committer,
            traffic: Arc::new(Traffic::new(shares)),
            limits,
            ca,
            public_url: None,
            auth: Mutex::new(Authenticator {
                reader: auth,
                version: -1,
                known: std::collections::HashMap::new(),
            }),
            feed: tokio::sync::watch::Sender::new(0),
            rankings: Default::default(),
            overviews: Default::default(),
            ledgers: Default::default(),
            maps: Default::default(),
            case_counts: Default::default(),
        })
    }

    /// Whether the disk holding the photos has room above the floor.
    pub(crate) fn has_room(&self) -> bool {
        free_disk(self.blobs.root()) >= self.limits.min_free_disk
    }

    pub fn blobs(&self) -> &BlobDir {
        &self.blobs
    }

    /// Runs `read` on a free read-only connection.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&dyn SyncRead) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _turn = self.reader_turns.acquire().await.map_err(|_| internal())?;
        let station = self.clone();
        on_files(move || {
            let reader = station
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(internal)?;
            let out = read(reader.as_ref());
            station
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(reader);
            out
        })
        .await
    }

    /// Runs `write` with the store's writer.
    pub(crate) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut dyn SyncStore) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let writer = self.writer.clone();
        on_files(move || {
            // A request that panicked while writing left its transaction
            // rolled back: the store is whole, so the lock is taken again
            // rather than every later request failing.
            let mut guard = writer.lock().unwrap_or_else(|p| {
                tracing::error!("a request panicked while holding the store's writer");
                p.into_inner()
            });
            let written = write(guard.as_mut());
            // The station's own changes reach the authoritative store before
            // the request is answered (a city's instance pushes them).
            guard.publish()?;
            written
        })
        .await
    }

    /// `push` merged ahead of its group commit, on a blocking thread beside
    /// the one that writes, when the store lets it: the writer then only
    /// checks that each document is unchanged and writes the result.
    async fn premerged(self: &Arc<Self>, push: GroupedPush) -> Result<GroupedPush, ApiError> {
        let (mut push, bases) = self
            .read(move |r| {
                // Without them the writer merges the push itself.
                let bases = r.push_bases(&push).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading a push's documents ahead of its group");
                    None
                });
                Ok((push, bases))
            })
            .await?;
        match bases {
            Some(bases) => {
                on_files(move || {
                    push.premerge(bases);
                    Ok(push)
                })
                .await
            }
            None => Ok(push),
        }
    }

    /// Applies a device's push in the next group commit
    /// ([`Committer`]): answered only after the commit that holds it.
    pub(crate) async fn push_grouped(
        self: &Arc<Self>,
        push: GroupedPush,
    ) -> Result<ApplyReport, ApiError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.committer.send(WaitingPush { push, answer })?;
        answered.await.map_err(|_| internal())?
    }

    /// Who is asking, from the `Authorization` header alone, and their slot.
    /// An address that sent many unknown tokens waits before its next one is
    /// even looked up.
    async fn caller(
        self: &Arc<Self>,
        headers: &HeaderMap,
        peer: std::net::SocketAddr,
    ) -> Result<(Device, User, Slot), ApiError> {
        let token = bearer(headers)?;
        let address = self.client_address(peer, headers);
        self.traffic.may_present_token(address).map_err(busy)?;
        let station = self.clone();
        let found = on_files(move || {
            let mut auth = station.auth.lock().unwrap_or_else(|p| p.into_inner());
            let version = auth.reader.accounts().accounts_version()?;
            if version != auth.version {
                auth.known.clear();
                auth.version = version;
            }
            let key = crate::store::hash(&token);
            if let Some(known) = auth.known.get(&key) {
                return Ok(known.clone());
            }
            let found = auth.reader.accounts().authenticate(&token)?;
            if auth.known.len() >= AUTH_CACHE_SIZE {
                auth.known.clear();
            }
            auth.known.insert(key, found.clone());
            Ok(found)
        })
        .await;
        if let Err(e) = &found
            && e.status == StatusCode::UNAUTHORIZED
        {
            self.traffic.bad_token(address);
        }
        let (device, user) = found?;
        let slot = self.traffic.admit(&device.id).map_err(busy)?;
        Ok((device, user, slot))
    }

    pub(crate) fn client_address(
        &self,
        peer: std::net::SocketAddr,
        headers: &HeaderMap,
    ) -> Option<std::net::IpAddr> {
        crate::net::client_address(
            Some(peer),
            headers,
            self.limits.client_address_header.as_ref(),
        )
    }
}

pub(crate) fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server could not complete this request",
    )
}

pub(crate) fn busy(b: Busy) -> ApiError {
    let secs = b.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy", b.why)
    }
}

pub fn router(station: Arc<Station>) -> Router {
    Router::new()
        .merge(crate::console::web::routes())
        .merge(crate::public::routes())
        .merge(crate::alerts::routes())
        .merge(crate::open311::routes())
        .merge(crate::ops::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/enroll", post(enroll))
        .route(menqian_core::enrollment::CA_PATH, get(station_ca))
        .route("/v1/push", post(push))
        .route("/v1/pull", get(pull))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/blobs/{hash}", get(blob_get).put(blob_put))
        .route("/v1/blobs/{hash}/status", get(blob_status))
        .route_layer(axum::middleware::from_fn_with_state(
            station.clone(),
            crate::ops::track,
        ))
        .layer(axum::middleware::map_response(stamp_time))
        .with_state(station)
}

/// Reads a body of at most `max` bytes (by `Content-Length` before anything
/// is read, and by what arrives), within the station's body time limit.
pub(crate) async fn read_body(
    station: &Station,
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body may be at most {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let mut body = body;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("reading the body: {e}"),
                )
            })?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > max {
                    return Err(too_large());
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(station.limits.body_timeout, read).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the body did not arrive within {} s",
                    station.limits.body_timeout.as_secs()
                ),
            ));
        }
    }
    Ok(Bytes::from(out))
}

/// The station's CA certificate (DER), for a device enrolling through a link
/// that pins it. Public: the pin, not this answer, is what a device trusts.
async fn station_ca(State(station): State<Arc<Station>>) -> Result<Response, ApiError> {
    let ca = station.ca.as_ref().ok_or_else(|| {
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
#[derive(Debug, Clone)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    code: &'static str,
    pub(crate) message: String,
    extra: serde_json::Value,
    /// Seconds, for `Retry-After`.
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: json!({}),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            b.extend(extra.clone());
        }
        let mut response = (self.status, Json(body)).into_response();
        response
            .extensions_mut()
            .insert(crate::ops::ErrorCode(self.code));
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
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
            // The details (feed positions, what happened to the database)
            // are for the log; `/readyz` and phones get the short form.
            StoreError::Diverged(m) => {
                // Every request meets it until the restart: once a minute.
                if let Some(held) = crate::quiet::LOG.pass("diverged", std::time::Instant::now()) {
                    tracing::error!(error = %m, held_back = held, "the read model follows another history");
                }
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "this instance must be restarted before it serves again: try again shortly",
                )
            }
            StoreError::Postgres(e) => {
                // While PostgreSQL is down every request fails alike.
                if let Some(held) = crate::quiet::LOG.pass("postgres", std::time::Instant::now()) {
                    tracing::error!(error = %e, held_back = held, "the database failed");
                }
                ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the station's database is not answering: try again shortly",
                )
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

async fn enroll(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    let address = station.client_address(peer, &headers);
    station.traffic.admit_enrollment(address).map_err(busy)?;
    require_content_type(&headers, "application/json")?;
    let body = read_body(&station, &headers, body, MAX_ENROLL_BYTES).await?;
    let req: EnrollRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("enroll body: {e}"),
        )
    })?;
    let enrolled = station
        .write(move |s| Ok(s.enroll(&req.code, &req.actor, &req.device_name, Utc::now())?))
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
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Who is asking comes first: a stranger's body is never read.
    let (device, user, _slot) = station.caller(&headers, peer).await?;
    require_content_type(&headers, wire::CONTENT_TYPE)?;
    let body = read_body(&station, &headers, body, MAX_BODY_BYTES).await?;
    // Decoding and checking every change happens here, before the lock: a
    // bomb is refused without holding up anyone.
    let changes = on_files(move || {
        let batch = wire::decode_checked(&body, menqian_core::store::check_incoming).map_err(
            |e| match e {
                wire::WireError::Refused {
                    index, ref doc_id, ..
                } => ApiError {
                    extra: json!({ "change": index, "doc_id": doc_id }),
                    ..ApiError::new(StatusCode::BAD_REQUEST, "bad_change", e.to_string())
                },
                other => ApiError::new(StatusCode::BAD_REQUEST, "bad_batch", other.to_string()),
            },
        )?;
        drop(body);
        menqian_core::decode_pushed(batch.changes).map_err(|e| ApiError::from(StoreError::from(e)))
    })
    .await?;
    let count = changes.len();
    let writer = Writer {
        user: user.id,
        role: user.role,
        actor: device.actor.clone(),
    };
    let received = Utc::now();
    let mut push = GroupedPush::new(changes, writer, received);
    // A city's database merges each group itself, against the documents
    // as it holds them; the embedded store's are read ahead here.
    if station.authority.is_none() {
        push = station.premerged(push).await?;
    }
    let report = station.push_grouped(push).await?;
    let device = device.id;
    station.metrics.pushes.inc();
    station.metrics.changes.inc_by(count as u64);
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

pub(crate) async fn stamp_time(mut response: Response) -> Response {
    response.headers_mut().insert(
        TIME_HEADER,
        axum::http::HeaderValue::from(Utc::now().timestamp_millis()),
    );
    response
}

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

fn file_error(e: CoreError) -> ApiError {
    ApiError::from(StoreError::from(e))
}

fn photo_not_found(hash: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("photo {hash}"))
}

/// How much of a blob the server holds: where this device's interrupted
/// upload resumes. Only for a device that may upload it or a user who may see
/// a record referring to it; anyone else gets 404, whether or not it exists.
async fn blob_status(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_hash(&hash)?;
    let (device, user, _slot) = station.caller(&headers, peer).await?;
    let asked = hash.clone();
    let uploader = device.id.clone();
    let (uploads, sees) = station
        .read(move |r| {
            let uploads = r.accounts().may_upload(&uploader, &asked)?;
            Ok((uploads, uploads || r.blob_visible(&asked, &user)?))
        })
        .await?;
    if !sees {
        return Err(photo_not_found(&hash));
    }
    let (blobs, name, uploader) = (station.blobs.clone(), hash.clone(), device.id.clone());
    let mut state = on_files(move || blobs.received(&uploader, &name).map_err(file_error)).await?;
    if let Some(objects) = &station.objects {
        use menqian_core::evidence::blobs::Received;
        match state {
            // Complete here: complete for the device once the object
            // storage holds it too.
            Received::Complete { .. } => objects
                .keep(&station.blobs, &hash)
                .await
                .map_err(object_error)?,
            // Received through another instance: complete if it is there,
            // else as far as the chunks it acknowledged go.
            Received::Partial { bytes: 0 } => {
                if !objects
                    .fetch(&station.blobs, &hash)
                    .await
                    .map_err(object_error)?
                    // Only the uploader has chunks to take up.
                    && uploads
                {
                    resume_here(&station, objects, &device.id, &hash).await?;
                }
                let (blobs, name) = (station.blobs.clone(), hash.clone());
                state =
                    on_files(move || blobs.received(&device.id, &name).map_err(file_error)).await?;
            }
            Received::Partial { .. } => {}
        }
    }
    Ok(Json(blob_state(state)))
}

impl Station {
    /// Stores a photo the station received (a citizen's, a camera's
    /// snapshot) in the object storage, if there is one, before its record
    /// is written: no record refers to a photo the other instances lack.
    pub(crate) async fn keep_photo(
        &self,
        photo: &menqian_core::evidence::photo::ProcessedPhoto,
    ) -> Result<(), ApiError> {
        if let Some(objects) = &self.objects {
            objects
                .put(photo.evidence.clone())
                .await
                .map_err(object_error)?;
            objects
                .put(photo.thumb.clone())
                .await
                .map_err(object_error)?;
        }
        Ok(())
    }
}

/// Object storage did not answer: the device tries again later.
fn object_error(e: crate::objects::ObjectError) -> ApiError {
    tracing::error!(error = %e, "object storage failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the station's photo storage is not answering: try again shortly",
    )
}

/// Appends a chunk at `offset` of a `total`-byte blob. The last chunk makes
/// the server hash the whole: a blob whose content does not match its name is
/// discarded (422). A chunk at the wrong offset writes nothing and the reply
/// says where to resume.
async fn blob_put(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(hash): axum::extract::Path<String>,
    query: Result<Query<BlobPutQuery>, QueryRejection>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_hash(&hash)?;
    let (device, _, _slot) = station.caller(&headers, peer).await?;
    let Query(q) = query.map_err(bad_query)?;
    require_content_type(&headers, "application/octet-stream")?;
    let max_total = menqian_core::evidence::blobs::MAX_BLOB_BYTES;
    if q.total == 0 || q.total > max_total {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_total",
            format!("total: a photo is 1 to {max_total} bytes"),
        ));
    }
    if q.offset >= q.total {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_offset",
            "offset: within the photo's total",
        ));
    }
    let (asked, uploader) = (hash.clone(), device.id.clone());
    if !station
        .read(move |r| Ok(r.accounts().may_upload(&uploader, &asked)?))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_referenced",
            "push the record that refers to this photo first",
        ));
    }
    let free = free_disk(station.blobs.root());
    if free < station.limits.min_free_disk {
        tracing::warn!(
            free,
            floor = station.limits.min_free_disk,
            "upload refused: disk nearly full"
        );
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            "the station is short of disk space: try again later",
        ));
    }
    let blobs = station.blobs.clone();
    let uploader = device.id.clone();
    let mut in_progress =
        on_files(move || blobs.partial_bytes(&uploader).map_err(file_error)).await?;
    if let Some(objects) = &station.objects {
        // Uploads begun through other instances count too: every chunk an
        // instance acknowledged is in the object storage (this instance's
        // own, so not counted twice).
        let everywhere = objects
            .parts_bytes(&device.id)
            .await
            .map_err(object_error)?;
        in_progress = in_progress.max(everywhere);
    }
    let remaining = q.total - q.offset;
    // What this device's unfinished uploads would hold once this one is
    // whole (its partial, `offset` bytes so far, is in `in_progress`).
    if in_progress + remaining > station.limits.uploads_in_progress {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "too_many_uploads",
            format!(
                "this device has {in_progress} bytes of unfinished uploads; finish those first (at most {})",
                station.limits.uploads_in_progress
            ),
        ));
    }
    let body = read_body(&station, &headers, body, MAX_BLOB_CHUNK).await?;
    if q.offset == 0 && !body.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_jpeg",
            "photos are JPEG files",
        ));
    }
    station.metrics.blob_bytes.inc_by(body.len() as u64);
    if let Some(objects) = &station.objects
        && q.offset > 0
    {
        // Begun through another instance, which may be gone.
        let (blobs, uploader, name) = (station.blobs.clone(), device.id.clone(), hash.clone());
        let here = on_files(move || blobs.received(&uploader, &name).map_err(file_error)).await?;
        if here == (menqian_core::evidence::blobs::Received::Partial { bytes: 0 }) {
            resume_here(&station, objects, &device.id, &hash).await?;
        }
    }
    let (worker, name, uploader) = (station.clone(), hash.clone(), device.id.clone());
    let (state, body) = on_files(move || {
        let _turn = worker.appending.lock().unwrap_or_else(|p| p.into_inner());
        worker
            .blobs
            .append(&uploader, &name, q.offset, q.total, &body)
            .map(|state| (state, body))
            .map_err(|e| match e {
                CoreError::InvalidInput { field, reason } if field == "blob" => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch", reason)
                }
                CoreError::InvalidInput { field, reason } if field == "chunk" => {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_offset", reason)
                }
                other => file_error(other),
            })
    })
    .await?;
    if let Some(objects) = &station.objects {
        use menqian_core::evidence::blobs::Received;
        match state {
            // Complete only once the object storage holds it.
            Received::Complete { .. } => {
                objects
                    .keep(&station.blobs, &hash)
                    .await
                    .map_err(object_error)?;
                if let Err(e) = objects.drop_parts(&device.id, &hash).await {
                    // Collected with the stale uploads later.
                    tracing::warn!(error = %e, "deleting a finished upload's chunks");
                }
            }
            // This chunk was written here: acknowledged only once the object
            // storage holds it too, so the upload resumes through any instance.
            Received::Partial { bytes } if bytes == q.offset + body.len() as u64 => objects
                .put_part(&device.id, &hash, q.offset, q.total, body)
                .await
                .map_err(object_error)?,
            Received::Partial { .. } => {}
        }
    }
    Ok(Json(blob_state(state)))
}

/// Takes up `uploader`'s upload of `hash` here, as far as the chunks
/// another instance acknowledged go (none when no other instance took any),
/// stopping at the first gap.
async fn resume_here(
    station: &Arc<Station>,
    objects: &crate::objects::ObjectBlobs,
    uploader: &str,
    hash: &str,
) -> Result<(), ApiError> {
    use menqian_core::evidence::blobs::Received;
    let mut have = 0;
    for (offset, total, key) in objects.parts(uploader, hash).await.map_err(object_error)? {
        if offset != have {
            break;
        }
        let chunk = objects.part(&key).await.map_err(object_error)?;
        let (worker, who, name) = (station.clone(), uploader.to_string(), hash.to_string());
        // Appended as a device's chunk is: at the offset the upload has
        // reached, else not at all (another request took it up meanwhile).
        let appended = on_files(move || {
            let _turn = worker.appending.lock().unwrap_or_else(|p| p.into_inner());
            Ok(worker.blobs.append(&who, &name, offset, total, &chunk))
        })
        .await?;
        match appended {
            Ok(Received::Partial { bytes }) if bytes > have => have = bytes,
            // Kept chunks are never the last one, but should they make the
            // photo, it is complete only once the object storage holds it.
            Ok(Received::Complete { .. }) => {
                objects
                    .keep(&station.blobs, hash)
                    .await
                    .map_err(object_error)?;
                break;
            }
            // Kept chunks that do not make the photo: the device sends what
            // is missing.
            _ => break,
        }
    }
    Ok(())
}

/// Free bytes on the file system holding `path` (0 when it cannot be read:
/// uploads then wait rather than risk the database's space).
fn free_disk(path: &std::path::Path) -> u64 {
    rustix::fs::statvfs(path)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
        .unwrap_or(0)
}

/// Downloads a photo or thumbnail that a record the reader may see refers to.
/// Anything else is 404, whether or not it exists.
async fn blob_get(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(hash): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    check_hash(&hash)?;
    let (_, user, _slot) = station.caller(&headers, peer).await?;
    visible_photo(&station, hash, user).await
}

/// A photo or thumbnail, if a record `user` may see refers to it (404 as for
/// a photo that does not exist otherwise).
pub(crate) async fn visible_photo(
    station: &Arc<Station>,
    hash: String,
    user: crate::store::User,
) -> Result<Response, ApiError> {
    check_hash(&hash)?;
    let asked = hash.clone();
    let visible = station
        .read(move |r| Ok(r.blob_visible(&asked, &user)?))
        .await?;
    if !visible {
        return Err(photo_not_found(&hash));
    }
    let read = |station: &Arc<Station>| {
        let (blobs, name) = (station.blobs.clone(), hash.clone());
        on_files(move || match blobs.read(&name) {
            Err(CoreError::NotFound { .. }) => Ok(None),
            other => other.map(Some).map_err(file_error),
        })
    };
    let mut bytes = read(station).await?;
    if bytes.is_none()
        && let Some(objects) = &station.objects
        && objects
            .fetch(&station.blobs, &hash)
            .await
            .map_err(object_error)?
    {
        // Received through another instance.
        bytes = read(station).await?;
    }
    let bytes = bytes.ok_or_else(|| photo_not_found(&hash))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PullQuery {
    pub after: Option<u64>,
    pub limit: Option<u32>,
}

async fn pull(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1_000).clamp(1, MAX_PULL_PAGE);
    let (device, user, _slot) = station.caller(&headers, peer).await?;
    let batch = station
        .read(move |r| Ok(r.pull(&device, &user, after, limit)?))
        .await?;
    station.metrics.pulls.inc();
    station.metrics.pulled.inc_by(batch.changes.len() as u64);
    framed(batch)
}

#[derive(Debug, Deserialize)]
pub struct SnapshotQuery {
    pub after: Option<String>,
    pub limit: Option<u32>,
    /// Comma-separated document ids: just these documents, whole.
    pub docs: Option<String>,
    /// `1`: send each document's view beside it (`MQS1`, docs/protocol.md).
    pub views: Option<u8>,
}

/// The most documents one `docs=` request may name.
pub const MAX_DOCS_BY_ID: usize = 100;

async fn snapshot(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(2_000).clamp(1, MAX_PULL_PAGE);
    let (device, user, _slot) = station.caller(&headers, peer).await?;
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
        let batch = station
            .read(move |r| Ok(r.documents_by_id(&user, &ids)?))
            .await?;
        return framed(batch);
    }
    if q.after.is_none() && device.area_epoch != user.area_epoch {
        let (d, u) = (device.clone(), user.clone());
        station.write(move |s| Ok(s.bootstrap(&d, &u)?)).await?;
    }
    let mut batch = station
        .read(move |r| Ok(r.snapshot_page(&user, q.after.as_deref(), limit)?))
        .await?;
    if q.views != Some(1) {
        batch.views.clear();
    }
    framed(batch)
}

/// A query string that does not parse gets the same JSON error as any other
/// bad request.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text())
}

/// Replies with a framed batch.
fn framed(batch: WireBatch) -> Result<Response, ApiError> {
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
