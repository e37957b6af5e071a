//! Operations: `/readyz` (the store answers and the disk has room),
//! `/metrics` in Prometheus' text format (requests and their latency by
//! route, errors by code, pushes, group commits, accepted changes, pulls,
//! pulled changes, photo bytes received, the feed head) and the log format. `/metrics` is
//! for the city's monitoring: with `--metrics-token` it wants that bearer
//! token, without one it answers only clients at loopback and private
//! addresses (behind a reverse proxy, the client's address from its header).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::sync::Station;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// An API error's code, left on its response for the metrics.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

fn latency_histogram() -> Histogram {
    // 1 ms … 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The station's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    errors: Family<CodeLabel, Counter>,
    pub(crate) pushes: Counter,
    pub(crate) push_groups: Counter,
    pub(crate) changes: Counter,
    pub(crate) pulls: Counter,
    pub(crate) pulled: Counter,
    pub(crate) blob_bytes: Counter,
    feed_head: Gauge,
    feed_lag: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("menqian");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            latency.clone(),
        );
        let errors = Family::<CodeLabel, Counter>::default();
        registry.register("errors", "API errors answered, by code", errors.clone());
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let pushes = counter(&mut registry, "pushes", "Pushes accepted");
        let push_groups = counter(
            &mut registry,
            "push_groups",
            "Group commits of the embedded store: pushes applied together in one transaction",
        );
        let changes = counter(
            &mut registry,
            "changes_accepted",
            "Changes in accepted pushes",
        );
        let pulls = counter(&mut registry, "pulls", "Pull pages answered");
        let pulled = counter(
            &mut registry,
            "changes_pulled",
            "Changes sent in pull pages",
        );
        let blob_bytes = counter(
            &mut registry,
            "blob_bytes_received",
            "Photo bytes received from devices",
        );
        let feed_head = Gauge::default();
        registry.register(
            "feed_head",
            "The change feed's head (its last position)",
            feed_head.clone(),
        );
        let feed_lag = Gauge::default();
        registry.register(
            "feed_lag",
            "Accepted changes the documents this instance reads lag behind (a city's instance)",
            feed_lag.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            errors,
            pushes,
            push_groups,
            changes,
            pulls,
            pulled,
            blob_bytes,
            feed_head,
            feed_lag,
        }
    }
}

impl Metrics {
    fn text(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `/readyz` and `/metrics`.
pub fn routes() -> Router<Arc<Station>> {
    Router::new()
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// Counts every routed request by its route pattern (never its path: a
/// shop code or a token is not a label) and its status, and times it.
pub async fn track(State(station): State<Arc<Station>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = &station.metrics;
    m.latency
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        m.errors
            .get_or_create(&CodeLabel {
                code: (*code).to_string(),
            })
            .inc();
    }
    response
}

/// Reads the feed head into its gauge: whether the store answered.
async fn feed_head(station: &Arc<Station>) -> Result<(), crate::sync::ApiError> {
    let head = station
        .read(|r| {
            Ok(r.documents()
                .feed_head()
                .map_err(crate::store::StoreError::from)?)
        })
        .await?;
    station
        .metrics
        .feed_head
        .set(i64::try_from(head).unwrap_or(i64::MAX));
    Ok(())
}

/// How far the documents this instance reads lag behind the authoritative
/// store, in changes (0 for a station's own store), kept in the gauge.
async fn feed_lag(station: &Arc<Station>) -> Result<u64, crate::sync::ApiError> {
    let lag = station.read(|r| Ok(r.lag()?)).await?;
    station
        .metrics
        .feed_lag
        .set(i64::try_from(lag).unwrap_or(i64::MAX));
    Ok(lag)
}

/// The most accepted changes the documents an instance reads may lag behind
/// the authoritative store while it still counts as caught up.
const READY_LAG: u64 = 1_000;

/// Ready when the store answers a read, the documents this instance reads
/// are caught up with the authoritative store (a city's instance), and the
/// disk has room for uploads.
async fn ready(State(station): State<Arc<Station>>) -> Response {
    if feed_head(&station).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response();
    }
    match feed_lag(&station).await {
        Ok(lag) => {
            if lag > READY_LAG {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "catching up with the store",
                )
                    .into_response();
            }
        }
        // The database answers, but this instance cannot follow it (it is
        // down again, or it is another history than the read model's).
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.message).into_response(),
    }
    if station.has_room() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "disk nearly full").into_response()
    }
}

/// Loopback, and the private ranges a monitoring system sits in.
fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
                || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

async fn metrics(
    State(station): State<Arc<Station>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let allowed = match &station.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| crate::console::web::same(given, token)),
        // Behind a reverse proxy every peer is the proxy: the client's own
        // address (`--client-address-header`) decides.
        None => station.client_address(peer, &headers).is_some_and(private),
    };
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            "metrics need the station's metrics token",
        )
            .into_response();
    }
    // A store that does not answer leaves the last head and lag seen.
    let _ = feed_head(&station).await;
    let _ = feed_lag(&station).await;
    match station.metrics.text() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
