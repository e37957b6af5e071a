//! Query strings of uploads, pulls and snapshot pages, parsed by axum's
//! `Query` as the handlers do.
#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use menqian_sync_server::http::{BlobPutQuery, PullQuery, SnapshotQuery};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/v1/blobs/x?{text}").parse::<Uri>() else {
        return;
    };
    if let Ok(Query(q)) = Query::<BlobPutQuery>::try_from_uri(&uri) {
        let _ = q.offset.checked_add(q.total);
    }
    let _ = Query::<PullQuery>::try_from_uri(&uri);
    if let Ok(Query(q)) = Query::<SnapshotQuery>::try_from_uri(&uri) {
        let _ = q.docs.map(|d| d.split(',').count());
    }
});
