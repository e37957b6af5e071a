//! Menqian's station sync server: devices push their Automerge changes and pull
//! everyone else's through one change feed (docs/protocol.md). Accounts,
//! enrollment and write authorization live here; the merge and the access rules
//! are the core's.

pub mod http;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use http::{SharedStore, router};
pub use store::{SqliteSyncStore, StoreError, SyncStore, User};

/// Serves the API on `listener` until `shutdown` resolves, then finishes the
/// requests in flight (graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Box<dyn SyncStore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(Arc::new(Mutex::new(store)));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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
