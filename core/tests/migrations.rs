//! Upgrading a database written by an older version of the app.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::*;
use menqian_core::*;

const FROZEN_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/store-v1.sqlite");

/// A database at schema version 1 (documents and change log, no index tables),
/// committed as a file so later migrations always run against the same bytes.
/// Regenerate only if 0001 itself changes: `cargo test -p menqian-core --test
/// migrations -- --ignored freeze_v1`.
#[test]
#[ignore]
fn freeze_v1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        let mut s = Store::open(&path, config()).unwrap();
        s.import_templates(templates()).unwrap();
        s.import_categories(categories()).unwrap();
        s.import_registry(street()[..20].to_vec()).unwrap();
    }
    // What version 1 wrote is exactly the tables of 0001: drop the rest.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE shops; DROP TABLE shop_search; DROP TABLE templates; DROP TABLE categories;
         DROP TABLE inspections; DROP TABLE inspection_items; DROP TABLE cases;
         DROP TABLE case_history; DROP TABLE patrols;
         PRAGMA user_version = 1; PRAGMA journal_mode = DELETE; VACUUM;",
    )
    .unwrap();
    drop(conn);
    std::fs::copy(&path, FROZEN_V1).unwrap();
}

#[test]
fn a_frozen_v1_database_upgrades_and_is_fully_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    std::fs::copy(FROZEN_V1, &path).unwrap();
    let store = Store::open(&path, config()).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, menqian_core::store::SCHEMA_VERSION);
    assert_eq!(store.counts().unwrap().0, 20 + 2 + 14);
    let first = &street()[0];
    // Version 1 shops had no subdistrict; they still read.
    assert_eq!(
        store.shop_by_code(&first.code).unwrap(),
        Shop {
            subdistrict: None,
            ..first.clone().validated().unwrap()
        }
    );
    assert!(!store.search_shops("富义街", 50).unwrap().is_empty());
    assert_eq!(store.templates().unwrap().len(), 2);
    assert_eq!(store.categories().unwrap().len(), 14);

    // The upgraded index equals one built from scratch from the same documents.
    let (_d, mut fresh) = empty_store();
    fresh.merge_from(&store, 0).unwrap();
    assert_eq!(
        fresh.index_snapshot().unwrap(),
        store.index_snapshot().unwrap()
    );
}

#[test]
fn a_database_from_a_newer_app_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite");
    drop(Store::open(&path, config()).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        Store::open(&path, config()),
        Err(Error::DatabaseTooNew { found: 99, .. })
    ));
}
