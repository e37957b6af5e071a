//! The console's static files, embedded in the binary: the third-party ones
//! from npm at the versions `scripts/vendor-assets.sh` pins, and the
//! console's own scripts. No CDN: a station may have no internet.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/leaflet.js"),
    ),
    (
        "leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/leaflet.css"),
    ),
    (
        "leaflet-heat.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/leaflet-heat.js"),
    ),
    (
        "supercluster.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/supercluster.min.js"),
    ),
    (
        "map.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/map.js"),
    ),
    (
        "patrol.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/patrol.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/live.js"),
    ),
];

/// A static file by name; cached by browsers for an hour (a new station
/// version may change them under the same name).
pub(super) async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => {
            let mut response = bytes.into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
