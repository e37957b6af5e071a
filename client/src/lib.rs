//! The device's sync client: push this device's changes, pull everyone
//! else's, over the protocol in docs/protocol.md. Its own crate, so the core
//! does no I/O beyond SQLite and files (as matrix-rust-sdk splits its base
//! crate from its sdk crate); the bindings depend on both. [`DeviceSync`]
//! gives the core's `Store` its `enroll`, `sync` and `station_trust`.
//!
//! `DeviceSync::sync` can be interrupted anywhere — network cut, app killed,
//! cancelled — and the next call resumes without loss or duplicates: a pushed
//! page is marked pushed only after the server acknowledged it (a re-sent page
//! is a no-op on the server), and a pulled page is applied together with the
//! cursor that follows it, in one transaction.

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde::{Deserialize, Serialize};

use menqian_core::enrollment::EnrollmentLink;
use menqian_core::error::{Error, Result};
use menqian_core::store::{DocChange, Store};
use menqian_core::wire::{self, WireBatch};

mod trust;
pub use trust::StationTrust;

/// Own changes per push request.
const PUSH_PAGE: u32 = 500;
/// Changes per pull request.
const PULL_PAGE: u32 = 2_000;

/// How network failures are retried before `sync` reports [`Error::Offline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    Push,
    Pull,
    /// Uploading photos, after the records: `done`/`total` count bytes.
    Photos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    pub phase: SyncPhase,
    pub done: u64,
    pub total: u64,
}

/// Receives progress. A listener that fails does not stop or corrupt the sync:
/// its error is ignored.
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress) -> std::result::Result<(), String>;
}

/// Cancels a running sync from another thread; the sync stops at the next page
/// boundary or retry wait and returns [`Error::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Own changes the server acknowledged.
    pub pushed: u64,
    /// Changes pulled that were new here.
    pub pulled: u64,
    /// Photos and thumbnails the server now holds whole.
    pub photos_uploaded: u64,
}

/// What enrollment returns: keep the token in the platform's secure storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub device_id: String,
    pub token: String,
    pub user_id: String,
    pub role: String,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

/// A connection to one sync server.
#[derive(Debug, Clone)]
pub struct SyncClient {
    base: String,
    token: Option<String>,
    http: Client,
    pub retry: RetryPolicy,
    /// The largest pull or snapshot reply read, in bytes
    /// ([`MAX_REPLY_BYTES`] unless a test sets less).
    pub max_reply_bytes: u64,
    /// The server's clock from its last reply, and when that reply came.
    server_time: Arc<std::sync::Mutex<Option<(i64, std::time::Instant)>>>,
}

/// Upload chunk size: small enough that a cut costs little, large enough
/// that a 400 KB photo is two requests.
pub const BLOB_CHUNK: usize = 256 * 1024;

/// The largest pull or snapshot reply a device reads: a page holds at most
/// 5,000 records (docs/protocol.md), far under this; a station that sends
/// more is refused rather than read into memory.
pub const MAX_REPLY_BYTES: u64 = 512 * 1024 * 1024;

impl SyncClient {
    /// `base_url` like `http://127.0.0.1:8080`; `token` from [`SyncClient::enroll`].
    /// Over https the station must present a certificate from a public CA; a
    /// station with a private CA is reached through [`Store::sync_client`]
    /// after a pinned enrollment.
    pub fn new(base_url: &str, token: Option<String>) -> Result<SyncClient> {
        Self::with_trust(base_url, token, &StationTrust::PublicRoots)
    }

    /// A client that accepts only what `trust` allows over https.
    pub fn with_trust(
        base_url: &str,
        token: Option<String>,
        trust: &StationTrust,
    ) -> Result<SyncClient> {
        let base = url::Url::parse(base_url)
            .map_err(|e| Error::invalid("base_url", e.to_string()))?
            .as_str()
            .trim_end_matches('/')
            .to_string();
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .tls_certs_only(trust.roots()?)
            .build()
            .map_err(|e| Error::Offline {
                reason: e.to_string(),
            })?;
        Ok(SyncClient {
            base,
            token,
            http,
            server_time: Arc::new(std::sync::Mutex::new(None)),
            retry: RetryPolicy::default(),
            max_reply_bytes: MAX_REPLY_BYTES,
        })
    }

    /// Enrolls this device with a one-time code from the supervisor, binding the
    /// store's actor id to it.
    pub fn enroll(&self, code: &str, store: &Store, device_name: &str) -> Result<Enrollment> {
        // The station refuses these too; saying so here needs no network.
        let device_name = menqian_core::model::required_text("device_name", device_name, 100)?;
        let body = serde_json::json!({ "code": code, "actor": store.actor_id(), "device_name": device_name });
        let response = self.send(&CancelToken::default(), || {
            self.http
                .post(format!("{}/v1/enroll", self.base))
                .json(&body)
                .send()
        })?;
        response.json().map_err(|e| Error::Offline {
            reason: format!("enrollment reply: {e}"),
        })
    }

    fn token(&self) -> Result<&str> {
        self.token.as_deref().ok_or_else(|| Error::Unauthorized {
            reason: "this device is not enrolled".into(),
        })
    }

    /// Pushes a page; returns the server's receive time (Unix ms).
    fn push(&self, changes: &[DocChange], cancel: &CancelToken) -> Result<Option<i64>> {
        let body = wire::encode(&WireBatch {
            changes: changes.to_vec(),
            ..WireBatch::default()
        })
        .map_err(|e| Error::invalid("changes", e.to_string()))?;
        let token = self.token()?;
        let response = self.send(cancel, || {
            self.http
                .post(format!("{}/v1/push", self.base))
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
                .body(body.clone())
                .send()
        })?;
        #[derive(Deserialize)]
        struct Ack {
            received_at: Option<i64>,
        }
        Ok(response.json::<Ack>().ok().and_then(|a| a.received_at))
    }

    /// The server's clock now, from its last reply.
    pub fn server_now_ms(&self) -> Option<i64> {
        let guard = self.server_time.lock().ok()?;
        let (ms, at) = (*guard)?;
        Some(ms + at.elapsed().as_millis() as i64)
    }

    /// An authenticated GET of `path` (with retries).
    fn get(&self, path: &str, cancel: &CancelToken) -> Result<Response> {
        let token = self.token()?;
        self.send(cancel, || {
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token)
                .send()
        })
    }

    /// How much of a blob the server holds.
    fn blob_received(&self, hash: &str, cancel: &CancelToken) -> Result<(u64, bool)> {
        blob_reply(self.get(&format!("/v1/blobs/{hash}/status"), cancel)?)
    }

    /// Uploads a blob from where the server's copy ends, chunk by chunk.
    /// `progress` gets the bytes sent of this blob.
    fn upload_blob(
        &self,
        hash: &str,
        bytes: &[u8],
        cancel: &CancelToken,
        progress: &dyn Fn(u64),
    ) -> Result<()> {
        let token = self.token()?;
        let total = bytes.len() as u64;
        let (mut offset, mut complete) = self.blob_received(hash, cancel)?;
        // Each round must move the server's copy on; a server that keeps
        // answering otherwise is given up on rather than looped with.
        let mut rounds = bytes.len() / BLOB_CHUNK + 8;
        while !complete {
            cancel.check()?;
            rounds = rounds.saturating_sub(1);
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = (start + BLOB_CHUNK).min(bytes.len());
            let chunk = bytes[start..end].to_vec();
            let r = self.send(cancel, || {
                self.http
                    .put(format!(
                        "{}/v1/blobs/{hash}?offset={offset}&total={total}",
                        self.base
                    ))
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(chunk.clone())
                    .send()
            })?;
            let (now, done) = blob_reply(r)?;
            if !done && (now == offset || rounds == 0) {
                // The server kept nothing of a chunk at the offset it gave.
                return Err(Error::Rejected {
                    reason: format!("photo {hash}: the upload does not advance"),
                });
            }
            offset = now;
            complete = done;
            progress(offset.min(total));
        }
        Ok(())
    }

    /// Downloads a photo or thumbnail that a visible record refers to.
    pub fn download_blob(&self, hash: &str, cancel: &CancelToken) -> Result<Vec<u8>> {
        let bytes = self
            .get(&format!("/v1/blobs/{hash}"), cancel)?
            .bytes()
            .map_err(|e| Error::Offline {
                reason: e.to_string(),
            })?;
        if menqian_core::evidence::sha256_hex(&bytes) != hash {
            return Err(Error::Rejected {
                reason: format!("photo {hash}: the download does not match its name"),
            });
        }
        Ok(bytes.to_vec())
    }

    fn pull(&self, after: u64, cancel: &CancelToken) -> Result<WireBatch> {
        self.get_batch(
            &format!("{}/v1/pull?after={after}&limit={PULL_PAGE}", self.base),
            cancel,
        )
    }

    /// Whole documents by id (those the user may see), to heal a document
    /// whose history this device lacks.
    fn documents(&self, ids: &[&str], cancel: &CancelToken) -> Result<WireBatch> {
        let mut url = url::Url::parse(&format!("{}/v1/snapshot", self.base))
            .map_err(|e| Error::invalid("base_url", e.to_string()))?;
        url.query_pairs_mut().append_pair("docs", &ids.join(","));
        self.get_batch(url.as_str(), cancel)
    }

    /// A page of whole documents this user may see, after the document id
    /// `after` (a bootstrap).
    pub fn snapshot(&self, after: Option<&str>, cancel: &CancelToken) -> Result<WireBatch> {
        let mut url = url::Url::parse(&format!("{}/v1/snapshot", self.base))
            .map_err(|e| Error::invalid("base_url", e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("limit", &PULL_PAGE.to_string())
            .append_pair("views", "1");
        if let Some(after) = after {
            url.query_pairs_mut().append_pair("after", after);
        }
        self.get_batch(url.as_str(), cancel)
    }

    /// GETs a framed batch; a body cut off mid-transfer is retried like any
    /// other network failure.
    fn get_batch(&self, url: &str, cancel: &CancelToken) -> Result<WireBatch> {
        let token = self.token()?;
        let mut attempt = 0;
        loop {
            let mut response =
                self.send(cancel, || self.http.get(url).bearer_auth(token).send())?;
            let too_big = |n: u64| Error::Rejected {
                reason: format!(
                    "the station's reply ({n} bytes or more) is over the {} bytes a page may take",
                    self.max_reply_bytes
                ),
            };
            if let Some(n) = response
                .content_length()
                .filter(|n| *n > self.max_reply_bytes)
            {
                return Err(too_big(n));
            }
            let mut body = Vec::new();
            let read =
                std::io::Read::take(&mut response, self.max_reply_bytes + 1).read_to_end(&mut body);
            if read.is_ok() && body.len() as u64 > self.max_reply_bytes {
                return Err(too_big(body.len() as u64));
            }
            // A body cut off mid-transfer is a network failure too: retry.
            match read
                .map_err(|e| e.to_string())
                .and_then(|_| wire::decode(&body).map_err(|e| e.to_string()))
            {
                Ok(batch) => return Ok(batch),
                Err(reason) => {
                    attempt += 1;
                    if attempt >= self.retry.attempts {
                        return Err(Error::Offline {
                            reason: format!("pull reply: {reason}"),
                        });
                    }
                    self.wait(attempt, cancel)?;
                }
            }
        }
    }

    /// Sends with retries on network failures and 5xx; maps the rest to errors.
    fn send(
        &self,
        cancel: &CancelToken,
        request: impl Fn() -> reqwest::Result<Response>,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            cancel.check()?;
            attempt += 1;
            let last = attempt >= self.retry.attempts;
            match request() {
                Ok(r) if r.status().is_success() => {
                    self.note_server_time(&r);
                    return Ok(r);
                }
                Ok(r) if r.status().is_server_error() && !last => {}
                // The station is busy for this device: wait as long as it asks
                // (within the backoff's ceiling), then try again.
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS && !last => {
                    let asked = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if let Some(delay) = asked {
                        self.sleep(delay.min(self.retry.max_delay), cancel)?;
                        continue;
                    }
                }
                Ok(r) => return Err(status_error(r)),
                Err(e) => {
                    // A refused certificate stays refused: say so at once.
                    if let Some(reason) = trust::refused_certificate(&e) {
                        return Err(Error::Untrusted { reason });
                    }
                    if last {
                        return Err(Error::Offline {
                            reason: e.to_string(),
                        });
                    }
                }
            }
            self.wait(attempt, cancel)?;
        }
    }

    /// Exponential backoff, waking up to notice cancellation.
    fn wait(&self, attempt: u32, cancel: &CancelToken) -> Result<()> {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        let delay = self
            .retry
            .first_delay
            .saturating_mul(factor)
            .min(self.retry.max_delay);
        self.sleep(delay, cancel)
    }

    /// Sleeps for `delay`, waking up to notice cancellation.
    fn sleep(&self, delay: Duration, cancel: &CancelToken) -> Result<()> {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < delay {
            cancel.check()?;
            std::thread::sleep(step.min(delay - waited));
            waited += step;
        }
        Ok(())
    }
}

impl SyncClient {
    fn note_server_time(&self, r: &Response) {
        let ms = r
            .headers()
            .get("x-menqian-time")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        if let (Some(ms), Ok(mut slot)) = (ms, self.server_time.lock()) {
            *slot = Some((ms, std::time::Instant::now()));
        }
    }
}

fn blob_reply(r: Response) -> Result<(u64, bool)> {
    #[derive(Deserialize)]
    struct State {
        received: u64,
        complete: bool,
    }
    let s: State = r.json().map_err(|e| Error::Offline {
        reason: format!("blob reply: {e}"),
    })?;
    Ok((s.received, s.complete))
}

fn status_error(r: Response) -> Error {
    let status = r.status();
    let body: ApiError = r.json().unwrap_or(ApiError {
        error: String::new(),
        message: String::new(),
    });
    let reason = if body.message.is_empty() {
        status.to_string()
    } else {
        body.message
    };
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized { reason },
        StatusCode::CONFLICT if body.error == "area_changed" => Error::AreaChanged { reason },
        s if s.is_client_error() => Error::Rejected {
            reason: format!("{} ({})", reason, body.error),
        },
        s => Error::Server {
            status: s.as_u16(),
            message: reason,
        },
    }
}

/// What a device's store does with its station: enroll, sync, and the
/// certificate it trusts. Implemented for the core's [`Store`].
pub trait DeviceSync {
    /// Enrolls this device with the station `link` names. A link with a CA pin
    /// fetches the station's CA, checks it against the pin and, once the
    /// station accepted the code, keeps it as the only CA this device trusts
    /// for its station; a link without one trusts the public roots.
    fn enroll(&mut self, link: &EnrollmentLink, device_name: &str) -> Result<Enrollment>;

    /// A client for this device's station, trusting what enrollment pinned.
    fn sync_client(&self, base_url: &str, token: &str) -> Result<SyncClient>;

    /// Pushes this device's changes, then pulls and applies everyone else's.
    /// Safe to interrupt anywhere and to call again.
    fn sync(
        &mut self,
        client: &SyncClient,
        listener: Option<&dyn SyncListener>,
        cancel: &CancelToken,
    ) -> Result<SyncReport>;

    /// What this device trusts for its station: the CA pinned at enrollment,
    /// or the public roots.
    fn station_trust(&self) -> Result<StationTrust>;
}

impl DeviceSync for Store {
    fn enroll(&mut self, link: &EnrollmentLink, device_name: &str) -> Result<Enrollment> {
        let trust = match &link.ca_sha256 {
            Some(pin) => StationTrust::PinnedCa(trust::fetch_pinned_ca(&link.server_url, pin)?),
            None => StationTrust::PublicRoots,
        };
        let client = SyncClient::with_trust(&link.server_url, None, &trust)?;
        let enrollment = client.enroll(&link.code, self, device_name)?;
        trust::keep(self, &trust)?;
        Ok(enrollment)
    }

    fn sync_client(&self, base_url: &str, token: &str) -> Result<SyncClient> {
        SyncClient::with_trust(base_url, Some(token.to_string()), &self.station_trust()?)
    }

    fn station_trust(&self) -> Result<StationTrust> {
        trust::kept(self)
    }

    fn sync(
        &mut self,
        client: &SyncClient,
        listener: Option<&dyn SyncListener>,
        cancel: &CancelToken,
    ) -> Result<SyncReport> {
        let tell = |phase, done, total| {
            if let Some(l) = listener {
                // A failing listener must not break the sync.
                let _ = l.on_progress(SyncProgress { phase, done, total });
            }
        };
        let mut report = SyncReport::default();
        let cursors = self.sync_cursors()?;
        let total = self.count_changes_since(cursors.pushed, true)?;
        let mut pushed_to = cursors.pushed;
        tell(SyncPhase::Push, 0, total);
        loop {
            cancel.check()?;
            let page = self.own_changes_since(pushed_to, PUSH_PAGE)?;
            if page.changes.is_empty() {
                break;
            }
            let received = client.push(&page.changes, cancel)?;
            // The receive time first: if the app dies before the cursor moves,
            // the page is pushed again and the first time noted is kept.
            if let Some(ms) = received {
                self.mark_received(pushed_to, page.cursor, ms)?;
            }
            self.set_pushed(page.cursor)?;
            pushed_to = page.cursor;
            report.pushed += page.changes.len() as u64;
            tell(SyncPhase::Push, report.pushed, total);
            if !page.more {
                break;
            }
        }
        // Pull; if the server moved this user to another area, start again
        // from a snapshot of the new area, once per sync.
        let mut restarted = false;
        loop {
            match pull_all(self, client, &tell, cancel, &mut report) {
                Err(Error::AreaChanged { .. }) if !restarted => {
                    restarted = true;
                    self.restart_pull()?;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        if let Some(ms) = client.server_now_ms() {
            self.set_clock_anchor(ms)?;
        }
        // Photos after the records, so a slow upload never holds them back.
        upload_photos(self, client, &tell, cancel, &mut report)?;
        Ok(report)
    }
}

fn upload_photos(
    store: &mut Store,
    client: &SyncClient,
    tell: &dyn Fn(SyncPhase, u64, u64),
    cancel: &CancelToken,
    report: &mut SyncReport,
) -> Result<()> {
    let pending = store.pending_blobs()?;
    let total: u64 = pending.iter().map(|b| b.bytes).sum();
    let mut done = 0u64;
    tell(SyncPhase::Photos, 0, total);
    for blob in pending {
        cancel.check()?;
        let bytes = store.blobs().read(&blob.hash)?;
        client.upload_blob(&blob.hash, &bytes, cancel, &|sent| {
            tell(SyncPhase::Photos, done + sent, total)
        })?;
        store.mark_uploaded(&blob.hash)?;
        done += blob.bytes;
        report.photos_uploaded += 1;
        tell(SyncPhase::Photos, done, total);
    }
    Ok(())
}

fn pull_all(
    store: &mut Store,
    client: &SyncClient,
    tell: &dyn Fn(SyncPhase, u64, u64),
    cancel: &CancelToken,
    report: &mut SyncReport,
) -> Result<()> {
    // A device that never pulled starts from whole documents, not from the
    // history of every change (docs/protocol.md, bootstrap).
    // The next page is fetched while this one is loaded: the server reads
    // and frames it while the device parses and writes.
    if store.sync_cursors()?.pulled == 0 {
        let progress = store.snapshot_progress()?;
        let mut head = progress.as_ref().map(|(h, _)| *h);
        let after = progress.map(|(_, last)| last);
        let mut loaded = 0u64;
        std::thread::scope(|s| -> Result<()> {
            let mut page = client.snapshot(after.as_deref(), cancel)?;
            loop {
                cancel.check()?;
                let next = match page.changes.last() {
                    Some(last) if page.more => {
                        let after = last.doc_id.clone();
                        Some(s.spawn(move || client.snapshot(Some(&after), cancel)))
                    }
                    _ => None,
                };
                let feed_head = *head.get_or_insert(page.cursor);
                loaded +=
                    store.load_snapshot(&page.changes, &page.views, feed_head, !page.more)? as u64;
                report.pulled += page.changes.len() as u64;
                tell(SyncPhase::Pull, loaded, loaded + page.remaining);
                match next {
                    Some(fetch) => {
                        page = fetch.join().map_err(|_| Error::Offline {
                            reason: "the snapshot page fetch failed".into(),
                        })??;
                    }
                    None => return Ok(()),
                }
            }
        })?;
    }
    let mut pulled_to = store.sync_cursors()?.pulled;
    let mut seen = 0u64;
    loop {
        cancel.check()?;
        let batch = client.pull(pulled_to, cancel)?;
        let applied = apply_healing(store, client, &batch, cancel)?;
        report.pulled += applied.applied as u64;
        seen += batch.changes.len() as u64;
        pulled_to = batch.cursor;
        tell(SyncPhase::Pull, seen, seen + batch.remaining);
        if !batch.more {
            return Ok(());
        }
    }
}

/// Applies a pulled page. A document that only now came into this user's
/// area (a shop moved to their lane) arrives without its earlier history:
/// the page then fails with missing dependencies, and the device fetches
/// that document whole and tries the page again.
fn apply_healing(
    store: &mut Store,
    client: &SyncClient,
    batch: &WireBatch,
    cancel: &CancelToken,
) -> Result<menqian_core::store::ApplyReport> {
    let mut healed = std::collections::BTreeSet::new();
    loop {
        match store.apply_pulled(&batch.changes, batch.cursor) {
            Err(Error::MissingDependencies { doc_id, missing })
                if healed.insert(doc_id.clone()) =>
            {
                let whole = client.documents(&[doc_id.as_str()], cancel)?;
                if whole.changes.is_empty() {
                    return Err(Error::MissingDependencies { doc_id, missing });
                }
                store.load_documents(&whole.changes)?;
            }
            other => return other,
        }
    }
}
