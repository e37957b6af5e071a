//! Menqian's station sync server: devices push their Automerge changes and pull
//! everyone else's through one change feed (docs/protocol.md). Accounts,
//! enrollment and write authorization live here; the merge and the access rules
//! are the core's.

pub mod http;
pub mod store;
pub mod tls;

use menqian_core::SweepReport;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use http::{SharedStore, router};
pub use store::{SqliteSyncStore, StoreError, SyncStore, User};
pub use tls::{StationCa, TlsFiles};

pub mod report;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sweep_every: std::time::Duration::from_secs(60),
            tls: None,
            ca: None,
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
    let store: SharedStore = Arc::new(Mutex::new(store));
    let sweeper = tokio::spawn(sweep_forever(store.clone(), options.sweep_every));
    let app = http::router_with(store, options.ca.map(Arc::new))
        .into_make_service_with_connect_info::<SocketAddr>();
    let served = match options.tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(files) => {
            // The handshake runs in each connection's own task, so a slow
            // client does not hold up the others.
            let config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|e| {
                        std::io::Error::other(format!(
                            "--tls-cert {} / --tls-key {}: {e}",
                            files.cert.display(),
                            files.key.display()
                        ))
                    })?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, config)?
                .handle(handle)
                .serve(app)
                .await
        }
    };
    sweeper.abort();
    served
}

/// Makes rustls use aws-lc-rs for the whole process (the station's HTTPS),
/// whichever crypto features other crates enable. Call once at start.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Sweeps every `every`, first after one interval. A failed sweep is logged
/// and tried again next time: each escalation (under its deterministic id) and
/// each fold is its own transaction, so what it finished stays and the rest
/// is retried.
/// A sweep is skipped while nothing was stored since the last one and no open
/// item's deadline has passed (`Store::sweep_due`).
async fn sweep_forever(store: SharedStore, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last: Option<SweepReport> = None;
    loop {
        tick.tick().await;
        let store = store.clone();
        let previous = last.take();
        let swept = tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            let docs = guard.documents();
            let now = chrono::Utc::now();
            match previous {
                Some(p) if !docs.sweep_due(&p, now)? => Ok((p, false)),
                _ => docs.sweep(now, SYSTEM_USER).map(|r| (r, true)),
            }
        })
        .await;
        match swept {
            Ok(Ok((r, ran))) => {
                if ran && !r.did_nothing() {
                    tracing::info!(
                        escalated = r.escalated.len(),
                        folded = r.folded.len(),
                        "district sweep"
                    );
                }
                last = Some(r);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "district sweep failed; retrying next interval")
            }
            Err(e) => tracing::warn!(error = %e, "district sweep stopped"),
        }
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
