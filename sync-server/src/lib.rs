//! Menqian's station sync server: devices push their Automerge changes and pull
//! everyone else's through one change feed (docs/protocol.md). Accounts,
//! enrollment and write authorization live here; the merge and the access rules
//! are the core's.

pub mod alerts;
pub mod console;
pub mod guard;
pub mod net;
pub mod objects;
pub mod open311;
pub mod ops;
pub mod photos;
pub mod public;
mod quiet;
pub mod registry;
pub mod signboards;
pub mod store;
pub mod sync;
pub mod tls;

use std::sync::Arc;

pub use guard::Shares;
pub use net::ConnectionLimits;
pub use store::{SqliteSyncStore, StoreError, SyncRead, SyncStore, User};
pub use sync::{HttpLimits, SharedStore, Station, router};
pub use tls::{StationCa, TlsFiles};

pub mod report;

use menqian_core::SweepReport;

/// The user the district platform's own writes are signed by.
pub const SYSTEM_USER: &str = "system";

/// How the server runs besides answering requests.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the district platform sweeps: escalating overdue
    /// rectification items and folding duplicate reports (`Store::sweep`).
    pub sweep_every: std::time::Duration,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The CA devices pin at enrollment, served at `/v1/tls/ca`.
    pub ca: Option<StationCa>,
    /// Connections: how many, and how long one may take.
    pub connections: ConnectionLimits,
    /// Bodies, uploads, disk, readers.
    pub http: HttpLimits,
    /// Each device's and each address's share.
    pub shares: Shares,
    /// Unfinished uploads untouched for this long are deleted (at start and
    /// each hour).
    pub partial_upload_ttl: std::time::Duration,
    /// The address phones reach the station at (`--public-url`): the console
    /// shows enrollment links and QR codes for it.
    pub public_url: Option<String>,
    /// Where reminders from cameras and sensors are posted as JSON
    /// (`--alert-webhook`), besides the log.
    pub alert_webhook: Option<String>,
    /// The bearer token `/metrics` wants (`--metrics-token`); without one it
    /// answers loopback and private addresses only.
    pub metrics_token: Option<String>,
    /// Photos in object storage besides the data directory (`--blobs`).
    pub objects: Option<objects::ObjectBlobs>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sweep_every: std::time::Duration::from_secs(60),
            tls: None,
            ca: None,
            connections: ConnectionLimits::default(),
            http: HttpLimits::default(),
            shares: Shares::default(),
            partial_upload_ttl: std::time::Duration::from_secs(3 * 24 * 3600),
            public_url: None,
            alert_webhook: None,
            metrics_token: None,
            objects: None,
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight (graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Box<dyn SyncStore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, store, shutdown, Options::default()).await
}

/// [`serve`] with options.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    store: Box<dyn SyncStore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: Options,
) -> std::io::Result<()> {
    let tls = match &options.tls {
        Some(files) => Some(net::tls_config(&files.cert, &files.key)?),
        None => None,
    };
    let http = HttpLimits {
        // Console cookies travel only over HTTPS when the station serves it.
        secure_cookies: options.http.secure_cookies || options.tls.is_some(),
        ..options.http.clone()
    };
    // Opening readers may connect to a database: on a blocking thread.
    let (shares, ca) = (options.shares.clone(), options.ca.clone());
    let mut station = tokio::task::spawn_blocking(move || Station::new(store, http, shares, ca))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::other(format!("opening the store's readers: {e}")))?;
    station.public_url = options.public_url.clone();
    station.notifier = crate::alerts::notifier(options.alert_webhook.as_deref());
    station.metrics_token = options.metrics_token.clone();
    station.objects = options.objects.clone();
    let station = Arc::new(station);
    let writer = station.writer.clone();
    let sweep_reader = tokio::task::spawn_blocking(move || {
        writer.lock().unwrap_or_else(|p| p.into_inner()).reader()
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(|e| std::io::Error::other(format!("opening the sweep's reader: {e}")))?;
    let sweeper = tokio::spawn(sweep_forever(
        station.writer.clone(),
        sweep_reader,
        options.sweep_every,
    ));
    let collector = tokio::spawn(collect_uploads_forever(
        station.blobs().clone(),
        station.objects.clone(),
        options.partial_upload_ttl,
    ));
    let seen = tokio::spawn(write_seen_forever(station.clone()));
    let follower = follow(&station.writer);
    let feed = tokio::spawn(watch_feed_forever(station.clone()));
    let served = net::serve(
        listener,
        sync::router(station.clone()),
        tls,
        options.connections,
        shutdown,
    )
    .await;
    sweeper.abort();
    collector.abort();
    seen.abort();
    feed.abort();
    drop(follower);
    write_seen(&station).await;
    served
}

/// How often the change feed's head is looked at for the console's live pages.
const FEED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps `Station::feed` at the feed's head: one look a second for every
/// open console page, whoever moved the feed (a push, the sweep, the CLI).
async fn watch_feed_forever(station: Arc<Station>) {
    let mut tick = tokio::time::interval(FEED_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if station.feed.receiver_count() == 0 {
            continue;
        }
        let head = station
            .read(|r| Ok(r.documents().feed_head().map_err(store::StoreError::from)?))
            .await;
        match head {
            Ok(head) => {
                station
                    .feed
                    .send_if_modified(|h| std::mem::replace(h, head) != head);
            }
            Err(e) => tracing::warn!(error = %e.message, "reading the feed head"),
        }
    }
}

/// How often an instance that shares its store with others takes in what
/// they accepted.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps the documents this instance reads up with the authoritative store
/// that other instances share, on a thread of its own (none when the store
/// is not shared). Stops when dropped.
fn follow(store: &SharedStore) -> Option<store::periodic::Periodic> {
    if !store.lock().unwrap_or_else(|p| p.into_inner()).shared() {
        return None;
    }
    let store = store.clone();
    let mut failing = false;
    let started = store::periodic::Periodic::start("follower", FOLLOW_EVERY, move || {
        let refreshed = store.lock().unwrap_or_else(|p| p.into_inner()).refresh();
        match refreshed {
            // Four times a second while it lasts: logged once a minute.
            Err(e) => {
                if let Some(held) = quiet::LOG.pass("follow", std::time::Instant::now()) {
                    tracing::warn!(error = %e, held_back = held, "following the store");
                    failing = true;
                }
            }
            Ok(_) if failing => {
                failing = false;
                // The store answers again: the next failure of requests is
                // news too.
                quiet::LOG.clear("follow");
                quiet::LOG.clear("postgres");
                tracing::info!("following the store again");
            }
            Ok(_) => {}
        }
    });
    started
        .inspect_err(|e| tracing::error!(error = %e, "starting the follower thread"))
        .ok()
}

/// How often devices' last requests are written to the accounts database.
const SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

async fn write_seen_forever(station: Arc<Station>) {
    let mut tick = tokio::time::interval(SEEN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        write_seen(&station).await;
    }
}

/// Writes down when devices last made a request (what 人员与设备 shows).
async fn write_seen(station: &Arc<Station>) {
    let seen = station.traffic.take_seen();
    if seen.is_empty() {
        return;
    }
    let writer = station.writer.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
        guard.accounts().record_seen(&seen)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "writing when devices were last seen"),
        Err(e) => tracing::warn!(error = %e, "writing when devices were last seen"),
    }
}

/// Deletes stale unfinished uploads now and every hour: this instance's,
/// and the chunks kept in object storage for any instance's.
async fn collect_uploads_forever(
    blobs: menqian_core::evidence::blobs::BlobDir,
    objects: Option<objects::ObjectBlobs>,
    ttl: std::time::Duration,
) {
    let mut tick = tokio::time::interval(
        std::time::Duration::from_secs(3600).min(ttl.max(std::time::Duration::from_secs(1))),
    );
    loop {
        tick.tick().await;
        let blobs = blobs.clone();
        match tokio::task::spawn_blocking(move || blobs.collect_partials(ttl)).await {
            Ok(Ok((0, _))) => {}
            Ok(Ok((files, bytes))) => {
                tracing::info!(files, bytes, "deleted stale unfinished uploads")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "collecting unfinished uploads failed"),
            Err(e) => tracing::warn!(error = %e, "collecting unfinished uploads stopped"),
        }
        if let Some(objects) = &objects {
            match objects.collect_parts(ttl).await {
                Ok(0) => {}
                Ok(parts) => tracing::info!(parts, "deleted stale chunks from object storage"),
                Err(e) => tracing::warn!(error = %e, "collecting kept chunks failed"),
            }
        }
    }
}

/// Makes rustls use aws-lc-rs for the whole process (the station's HTTPS),
/// whichever crypto features other crates enable. Call once at start.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The longest a sweep holds the store's writer at a time: pushes wait at
/// most about this long behind it, whatever the backlog.
pub const SWEEP_SLICE: std::time::Duration = std::time::Duration::from_millis(50);

/// Sweeps every `every`, first after one interval, in slices of
/// [`SWEEP_SLICE`] with the writer released in between. A failed sweep is
/// logged and tried again next time: each escalation (under its
/// deterministic id) and each fold is its own transaction, so what it
/// finished stays and the rest is retried.
/// A sweep is skipped while nothing was stored since the last one and no open
/// item's deadline has passed (`Store::sweep_due`).
async fn sweep_forever(store: SharedStore, reader: Box<dyn SyncRead>, every: std::time::Duration) {
    let reader = Arc::new(std::sync::Mutex::new(reader));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last: Option<SweepReport> = None;
    loop {
        tick.tick().await;
        // Several instances share a city's store: one of them sweeps.
        let leader = store.clone();
        let leading = tokio::task::spawn_blocking(move || {
            leader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .lead_sweep()
        })
        .await;
        match leading {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => continue,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "taking the sweep's lease");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "taking the sweep's lease");
                continue;
            }
        }
        match sweep_once(&store, &reader, last.take()).await {
            Ok((r, ran)) => {
                if ran && !r.did_nothing() {
                    tracing::info!(
                        escalated = r.escalated.len(),
                        folded = r.folded.len(),
                        "district sweep"
                    );
                }
                last = Some(r);
            }
            Err(e) => tracing::warn!(error = %e, "district sweep failed; retrying next interval"),
        }
    }
}

/// Runs `work` on the store's documents with the writer held.
async fn on_documents<T: Send + 'static>(
    store: &SharedStore,
    work: impl FnOnce(&mut menqian_core::Store) -> menqian_core::Result<T> + Send + 'static,
) -> Result<T, String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
        let done = work(guard.documents()).map_err(|e| e.to_string())?;
        guard.publish().map_err(|e| e.to_string())?;
        Ok(done)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// One sweep, slice by slice; `(report, whether it ran)`.
async fn sweep_once(
    store: &SharedStore,
    reader: &Arc<std::sync::Mutex<Box<dyn SyncRead>>>,
    previous: Option<SweepReport>,
) -> Result<(SweepReport, bool), String> {
    let now = chrono::Utc::now();
    // Whether there is anything to do, and the overdue items, are read on
    // the sweep's own read-only connection: the writer is not held for it.
    let reader = reader.clone();
    let started = tokio::task::spawn_blocking(move || {
        let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
        let docs = reader.documents();
        match previous {
            Some(p) if !docs.sweep_due(&p, now)? => Ok(Err(p)),
            _ => docs.start_sweep(now, SYSTEM_USER).map(Ok),
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e: menqian_core::Error| e.to_string())?;
    let mut sweep = match started {
        Err(unchanged) => return Ok((unchanged, false)),
        Ok(sweep) => sweep,
    };
    loop {
        let started = std::time::Instant::now();
        let (back, done) = on_documents(store, move |docs| {
            let done = docs.continue_sweep(&mut sweep, Some(SWEEP_SLICE))?;
            Ok((sweep, done))
        })
        .await?;
        sweep = back;
        if done {
            return Ok((sweep.report, true));
        }
        // The writer's lock is not fair: rest twice as long as the slice
        // took, so pushes waiting for it get their turn and the sweep has at
        // most a third of the writer.
        tokio::time::sleep((started.elapsed() * 2).max(std::time::Duration::from_millis(10))).await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// The link (and QR code) a phone enrolls with: the station's address, the
/// one-time code and, when phones pin the station's CA, its fingerprint.
pub fn enrollment_link(
    public_url: &str,
    code: &str,
    ca: Option<&StationCa>,
) -> menqian_core::Result<String> {
    let pin = ca.map(StationCa::sha256);
    Ok(menqian_core::EnrollmentLink::new(public_url, code, pin)?.to_link())
}
