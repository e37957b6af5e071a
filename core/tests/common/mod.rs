//! Shared set-up: a real SQLite file in a temporary directory, loaded with the
//! shipped templates, categories and the 富义街 demo street.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use menqian_core::{
    CaseSource, Category, ChecklistTemplate, NewCase, NewInspection, Shop, Store, StoreConfig,
};

pub const HOST: &str = "mq.fengtai.example.cn";

fn fixture(name: &str) -> String {
    let path = format!("{}/../fixtures/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn templates() -> Vec<ChecklistTemplate> {
    serde_json::from_str(&fixture("templates.json")).unwrap()
}

pub fn categories() -> Vec<Category> {
    serde_json::from_str(&fixture("categories.json")).unwrap()
}

pub fn street() -> Vec<Shop> {
    serde_json::from_str(&fixture("fuyi-street.json")).unwrap()
}

pub fn config() -> StoreConfig {
    StoreConfig {
        qr_hosts: vec![HOST.to_string()],
        durable: false,
        publish_listings: false,
        ..StoreConfig::default()
    }
}

/// An empty store in its own temporary directory (kept alive by the guard).
pub fn empty_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("device.sqlite"), config()).unwrap();
    (dir, store)
}

/// The two stores hold the same documents and the same index rows.
pub fn converged(a: &Store, b: &Store) {
    assert_eq!(a.documents_json().unwrap(), b.documents_json().unwrap());
    assert_eq!(a.index_snapshot().unwrap(), b.index_snapshot().unwrap());
}

/// A store with templates, categories and the demo street.
pub fn demo_store() -> (tempfile::TempDir, Store) {
    let (dir, mut store) = empty_store();
    store.import_templates(templates()).unwrap();
    store.import_categories(categories()).unwrap();
    store.import_registry(street()).unwrap();
    (dir, store)
}

/// 10:00 Beijing time on the given day.
pub fn beijing(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 2, 0, 0).unwrap()
}

/// A synthetic camera JPEG written to `dir` and captured into the store as
/// evidence: returns the photo's hash.
pub fn photo(store: &mut Store, dir: &std::path::Path, taken_by: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!("camera-{}.jpg", N.fetch_add(1, Ordering::Relaxed)));
    let jpeg = menqian_core::evidence::photo::sample_jpeg(640, 480).unwrap();
    std::fs::write(&path, jpeg).unwrap();
    store
        .capture_photo(
            &path,
            menqian_core::store::Capture {
                at: beijing(2026, 7, 1),
                fix: None,
                taken_by: taken_by.to_string(),
                shop_id: None,
                place: Some("富义街".into()),
            },
        )
        .unwrap()
        .hash
}

/// A report of 店外摆摊 (category 0504) at `shop`'s doorstep.
pub fn doorstep_report(shop: &Shop, source: CaseSource, by: &str, at: DateTime<Utc>) -> NewCase {
    NewCase {
        source,
        category: "0504".into(),
        location: shop.zone.centroid(),
        shop_id: Some(shop.id()),
        photos: vec![],
        description: "店外摆摊".into(),
        deadline: None,
        reported_by: by.into(),
        reported_at: at,
        subdistrict: None,
        lane: None,
    }
}

/// A new inspection of `shop_id` with the district's checklist, its newest
/// version, without a GPS fix.
pub fn new_inspection(shop_id: String, inspector: &str, at: DateTime<Utc>) -> NewInspection {
    NewInspection {
        shop_id,
        template_id: "beijing-1v5".into(),
        template_version: None,
        inspector: inspector.into(),
        started_at: at,
        fix: None,
    }
}
