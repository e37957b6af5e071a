//! The station's web console for supervisors and administrators (issue 14):
//! who may sign in and their passwords so far; sessions, pages and exports
//! follow.

mod assets;
mod case;
mod cases;
mod ledger;
mod map;
pub(crate) mod onboard;
pub(crate) mod overview;
pub mod password;
mod patrols;
mod people;
mod rankings;
pub(crate) use rankings::Rankings;
mod rules;
mod shops;
pub mod web;

use menqian_core::Role;

/// Who may sign in to the console: supervisors, lane chiefs (for their own
/// lanes) and administrators; officers and stewards work on their phones.
pub fn may_sign_in(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::LaneChief | Role::Admin)
}

/// One CSV field: quoted, quotes doubled, and a leading `=`, `+`, `-` or `@`
/// defused so a spreadsheet shows text instead of running a formula.
pub(crate) fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

/// A time as the console shows it: Beijing time, to the minute.
/// [`beijing`] for the command line.
pub fn beijing_time(t: chrono::DateTime<chrono::Utc>) -> String {
    beijing(t)
}

pub(crate) fn beijing(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&menqian_core::model::template::BEIJING)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// Results kept per key (a period, an area) with the change feed's head they
/// were computed at: reused while the head stands, at most `keep`, and in any
/// case for `fresh` (so a feed that moves every second does not make every
/// open page recompute).
pub(crate) struct FeedCache<T> {
    kept: std::sync::Mutex<std::collections::HashMap<String, Kept<T>>>,
}

/// A result, the feed head it was computed at, and when.
type Kept<T> = (u64, std::time::Instant, std::sync::Arc<T>);

/// Keys kept at most (then all are dropped).
const CACHE_KEYS: usize = 256;

impl<T> Default for FeedCache<T> {
    fn default() -> Self {
        FeedCache {
            kept: Default::default(),
        }
    }
}

impl<T> std::fmt::Debug for FeedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedCache").finish_non_exhaustive()
    }
}

impl<T> FeedCache<T> {
    /// The kept result for `key` and the feed head it was computed at, or
    /// `compute`'s at `head` (then kept).
    pub(crate) fn get_or<E>(
        &self,
        key: String,
        head: u64,
        fresh: std::time::Duration,
        keep: std::time::Duration,
        compute: impl FnOnce() -> Result<T, E>,
    ) -> Result<(u64, std::sync::Arc<T>), E> {
        if let Some((h, made, value)) = self
            .kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            let age = made.elapsed();
            if age < fresh || (*h == head && age < keep) {
                return Ok((*h, value.clone()));
            }
        }
        let value = std::sync::Arc::new(compute()?);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= CACHE_KEYS {
            kept.clear();
        }
        kept.insert(key, (head, std::time::Instant::now(), value.clone()));
        Ok((head, value))
    }
}

/// How long an area's open rectification items are reused whatever moves,
/// and at most while the feed stands still.
const LEDGER_FRESH: std::time::Duration = std::time::Duration::from_secs(5);
const LEDGER_KEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// The open rectification items of `area` (the core's
/// `open_rectifications_in`, whose whole-history ledger takes a third of a
/// second on a 12-week district), kept per area like the overview.
pub(crate) fn open_items(
    station: &crate::sync::Station,
    docs: &menqian_core::Store,
    area: &menqian_core::Area,
) -> Result<
    std::sync::Arc<Vec<menqian_core::store::ledger::RectificationItem>>,
    crate::sync::ApiError,
> {
    let head = docs.feed_head().map_err(crate::store::StoreError::from)?;
    station
        .ledgers
        .get_or(area.to_string(), head, LEDGER_FRESH, LEDGER_KEEP, || {
            docs.open_rectifications_in(area, chrono::Utc::now())
                .map_err(|e| crate::sync::ApiError::from(crate::store::StoreError::from(e)))
        })
        .map(|(_, items)| items)
}

/// A file download: its type, its name, no caching.
pub(crate) fn download(
    filename: &'static str,
    content_type: &'static str,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = axum::response::Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// A file on disk as a download, read 64 KiB at a time. The file is opened
/// before this returns, so a temporary file may be removed right after.
pub(crate) async fn download_file(
    path: &std::path::Path,
    content_type: &'static str,
    filename: &'static str,
) -> axum::response::Response {
    use std::io::Read as _;
    let Ok(mut file) = std::fs::File::open(path) else {
        return web::error_page(&crate::sync::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "文件已不在",
        ));
    };
    let length = file.metadata().map(|m| m.len()).ok();
    // Read on a blocking thread, a few chunks ahead of the client.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = download(
        filename,
        content_type,
        axum::body::Body::from_stream(chunks),
    );
    if let Some(n) = length {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_LENGTH, n.into());
    }
    response
}

/// A CSV download: UTF-8 with a BOM (so Excel reads the Chinese), a header
/// line, then one line per row, every field through [`csv_field`].
pub(crate) fn csv_download<const N: usize>(
    filename: &'static str,
    header: &str,
    rows: impl IntoIterator<Item = [String; N]>,
) -> axum::response::Response {
    let mut out = format!("\u{feff}{header}\r\n");
    for fields in rows {
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    download(filename, "text/csv; charset=utf-8", out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("富义街 12号"), "\"富义街 12号\"");
        assert_eq!(csv_field("说\"停\"了"), "\"说\"\"停\"\"了\"");
        for formula in ["=HYPERLINK(\"x\")", "+1", "-1+2", "@SUM(A1)"] {
            let f = csv_field(formula);
            assert!(f.starts_with("\"'"), "{formula} → {f}");
        }
        assert_eq!(csv_field("a,b\nc"), "\"a,b\nc\"");
    }

    #[test]
    fn only_supervisors_lane_chiefs_and_administrators_sign_in() {
        use menqian_core::Role;
        assert!(
            may_sign_in(Role::Supervisor)
                && may_sign_in(Role::LaneChief)
                && may_sign_in(Role::Admin)
        );
        assert!(!may_sign_in(Role::Officer) && !may_sign_in(Role::Steward));
    }
}
