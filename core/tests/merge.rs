//! Two stores edit offline and exchange change feeds in either order: they end
//! with identical documents and identical index tables, and bad batches write
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use chrono::Duration;
use common::*;
use menqian_core::*;

fn report(store: &mut Store, by: &str) -> String {
    store
        .report_case(NewCase {
            subdistrict: None,
            lane: None,
            source: CaseSource::Steward,
            category: "0107".into(),
            location: GeoPoint::new(39.8662, 116.3462),
            shop_id: None,
            photos: vec![],
            description: "纸箱堆在人行道".into(),
            deadline: None,
            reported_by: by.into(),
            reported_at: beijing(2026, 7, 1),
        })
        .unwrap()
}

fn inspect(store: &mut Store, shop: &str, who: &str) -> String {
    let at = beijing(2026, 7, 2);
    let id = store
        .start_inspection(new_inspection(shop.into(), who, at))
        .unwrap();
    for code in store.inspection(&id).unwrap().applicable {
        let outcome = ItemResult {
            outcome: ItemOutcome::Pass,
            note: None,
            photos: vec![],
        };
        store.record_item(&id, &code, outcome).unwrap();
    }
    store
        .submit_inspection(&id, at + Duration::minutes(3))
        .unwrap();
    id
}

/// The station's registry on two devices; each edits offline.
fn two_devices() -> (Vec<tempfile::TempDir>, Store, Store) {
    let (d1, station) = demo_store();
    let (d2, mut a) = empty_store();
    let (d3, mut b) = empty_store();
    a.merge_from(&station, 0).unwrap();
    b.merge_from(&station, 0).unwrap();
    converged(&a, &b);
    (vec![d1, d2, d3], a, b)
}

#[test]
fn concurrent_edits_merge_in_either_order() {
    for a_first in [true, false] {
        let (_dirs, mut a, mut b) = two_devices();
        let shop = street()[0].id();
        let (ha, hb) = (a.feed_head().unwrap(), b.feed_head().unwrap());
        // The same shop: different fields on each device, and the same field on both.
        a.update_shop(
            &shop,
            ShopPatch {
                name: Some("甲改名".into()),
                add_tags: [ShopTag::School].into(),
                ..Default::default()
            },
        )
        .unwrap();
        b.update_shop(
            &shop,
            ShopPatch {
                name: Some("乙改名".into()),
                add_tags: [ShopTag::Hospital].into(),
                status: Some(ShopStatus::Closed),
                ..Default::default()
            },
        )
        .unwrap();
        // One case, moved on both devices.
        let case = report(&mut a, "steward-1");
        b.merge_from(&a, ha).unwrap();
        let ha2 = a.feed_head().unwrap();
        let step = |to, by: &str, role, hours| CaseMove {
            to,
            by: by.into(),
            role,
            at: beijing(2026, 7, 1) + Duration::hours(hours),
            note: None,
            department: None,
            whistle: None,
        };
        a.move_case(
            &case,
            step(CaseStatus::Accepted, "supervisor-1", Role::Supervisor, 1),
        )
        .unwrap();
        b.move_case(
            &case,
            step(CaseStatus::Rejected, "chief-2", Role::LaneChief, 2),
        )
        .unwrap();
        // New inspections on both.
        let ia = inspect(&mut a, &shop, "officer-1");
        let ib = inspect(&mut b, &street()[1].id(), "officer-2");

        if a_first {
            b.merge_from(&a, ha2).unwrap();
            a.merge_from(&b, hb).unwrap();
        } else {
            a.merge_from(&b, hb).unwrap();
            b.merge_from(&a, ha).unwrap();
        }
        converged(&a, &b);
        let merged = a.shop(&shop).unwrap();
        assert!(merged.name == "甲改名" || merged.name == "乙改名");
        assert_eq!(
            merged.status,
            ShopStatus::Closed,
            "a field only one side edited keeps that edit"
        );
        assert!(merged.tags.contains(&ShopTag::School) && merged.tags.contains(&ShopTag::Hospital));
        let history = a.case(&case).unwrap().history;
        assert_eq!(history.len(), 3, "both moves are kept");
        for s in [&a, &b] {
            assert!(s.inspection(&ia).unwrap().is_submitted());
            assert!(s.inspection(&ib).unwrap().is_submitted());
        }
    }
}

#[test]
fn re_sent_changes_are_no_ops() {
    let (_dirs, mut a, b) = two_devices();
    let before = (a.counts().unwrap(), a.index_snapshot().unwrap());
    let (_, again) = a.merge_from(&b, 0).unwrap();
    assert_eq!(again.applied, 0);
    assert!(again.duplicates > 0);
    assert_eq!((a.counts().unwrap(), a.index_snapshot().unwrap()), before);
}

#[test]
fn bad_batches_apply_nothing() {
    let (_dirs, mut a, mut b) = two_devices();
    let head = b.feed_head().unwrap();
    let shop = street()[2].id();
    b.update_shop(
        &shop,
        ShopPatch {
            name: Some("一改".into()),
            ..Default::default()
        },
    )
    .unwrap();
    b.update_shop(
        &shop,
        ShopPatch {
            name: Some("二改".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let case = report(&mut b, "steward-2");
    let batch = b.changes_since(head, 100).unwrap().changes;
    assert_eq!(batch.len(), 3);
    let before = (a.counts().unwrap(), a.index_snapshot().unwrap());

    // The second edit without the first: its dependency is missing.
    let err = a.apply_changes(&batch[1..]).unwrap_err();
    assert!(matches!(err, Error::MissingDependencies { .. }), "{err}");
    // Truncated bytes, and bytes that are not a change at all.
    let mut truncated = batch.clone();
    let n = truncated[2].bytes.len();
    truncated[2].bytes.truncate(n / 2);
    assert!(matches!(
        a.apply_changes(&truncated),
        Err(Error::Corrupt { .. })
    ));
    let garbage = vec![DocChange {
        doc_id: shop.clone(),
        bytes: b"not automerge".to_vec(),
    }];
    assert!(matches!(
        a.apply_changes(&garbage),
        Err(Error::Corrupt { .. })
    ));
    let foreign = vec![DocChange {
        doc_id: "wallet/1".into(),
        bytes: batch[0].bytes.clone(),
    }];
    assert!(matches!(
        a.apply_changes(&foreign),
        Err(Error::InvalidInput { .. })
    ));
    // A shop change filed under a case id leaves the document unreadable as a case.
    let misfiled = vec![DocChange {
        doc_id: "case/misfiled".into(),
        bytes: batch[0].bytes.clone(),
    }];
    assert!(a.apply_changes(&misfiled).is_err());
    assert_eq!((a.counts().unwrap(), a.index_snapshot().unwrap()), before);

    // In order, the same batch applies.
    let r = a.apply_changes(&batch).unwrap();
    assert_eq!(r.applied, 3);
    assert_eq!(a.shop(&shop).unwrap().name, "二改");
    assert_eq!(a.case(&case).unwrap().status(), CaseStatus::Reported);
}

#[test]
fn a_change_to_a_submitted_inspection_is_refused() {
    let (_dirs, mut a, mut b) = two_devices();
    let at = beijing(2026, 7, 3);
    let id = a
        .start_inspection(new_inspection(street()[0].id(), "officer-1", at))
        .unwrap();
    b.merge_from(&a, 0).unwrap();
    // b edits the open inspection offline while a finishes and submits it.
    let pass = ItemResult {
        outcome: ItemOutcome::Pass,
        note: None,
        photos: vec![],
    };
    b.record_item(&id, "BJ-01", pass.clone()).unwrap();
    for code in a.inspection(&id).unwrap().applicable {
        a.record_item(&id, &code, pass.clone()).unwrap();
    }
    a.submit_inspection(&id, at + Duration::minutes(2)).unwrap();
    let before = a.documents_json().unwrap();
    let late = b.changes_since(b.feed_head().unwrap() - 1, 10).unwrap();
    assert!(matches!(
        a.apply_changes(&late.changes),
        Err(Error::InspectionSubmitted { .. })
    ));
    assert_eq!(a.documents_json().unwrap(), before);
}

#[test]
fn a_snapshot_loads_in_pages_and_resumes_after_a_restart() {
    let (_d1, station) = demo_store();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.sqlite");
    let head = station.feed_head().unwrap();
    // First page, then the app is killed.
    {
        let mut phone = Store::open(&path, config()).unwrap();
        let page = station.snapshot_page(None, 50).unwrap();
        assert!(page.more);
        assert_eq!(
            phone
                .load_snapshot(&page.docs, &page.views, page.feed_head, false)
                .unwrap(),
            50
        );
    }
    let mut phone = Store::open(&path, config()).unwrap();
    let (resume_head, last) = phone.snapshot_progress().unwrap().unwrap();
    assert_eq!(resume_head, head);
    let mut after = Some(last);
    loop {
        let page = station.snapshot_page(after.as_deref(), 50).unwrap();
        phone
            .load_snapshot(&page.docs, &page.views, resume_head, !page.more)
            .unwrap();
        if !page.more {
            break;
        }
        after = page.docs.last().map(|d| d.doc_id.clone());
    }
    assert_eq!(phone.snapshot_progress().unwrap(), None);
    assert_eq!(phone.sync_cursors().unwrap().pulled, head);
    converged(&station, &phone);
}

/// A device that indexes a snapshot from the station's views ends with the
/// same documents, views and index rows as one that loads every document
/// into Automerge, for every kind of document.
#[test]
fn a_snapshot_indexed_from_views_equals_one_read_from_the_documents() {
    let (_d1, mut station) = demo_store();
    let shops = street();
    let case = report(&mut station, "steward-1");
    inspect(&mut station, &shops[0].id(), "officer-1");
    let patrol = station
        .start_patrol("officer-1", beijing(2026, 7, 3))
        .unwrap();
    let points: Vec<TrackPoint> = (0..5)
        .map(|i| TrackPoint {
            at: beijing(2026, 7, 3) + Duration::seconds(10 * i),
            lat: 39.8662 + 0.0001 * i as f64,
            lon: 116.3462,
            accuracy_m: 8.0,
        })
        .collect();
    station.append_track(&patrol, &points).unwrap();
    station.publish_rules(DistrictRules::default()).unwrap();
    let ids: Vec<String> = shops.iter().map(|s| s.id()).collect();
    station.publish_listings_of(&ids).unwrap();
    let (_d2, mut from_views) = empty_store();
    let (_d3, mut from_documents) = empty_store();
    let mut after: Option<String> = None;
    loop {
        let page = station.snapshot_page(after.as_deref(), 40).unwrap();
        assert_eq!(page.views.len(), page.docs.len());
        assert!(page.views.iter().all(Option::is_some));
        let last = !page.more;
        from_views
            .load_snapshot(&page.docs, &page.views, page.feed_head, last)
            .unwrap();
        from_documents
            .load_snapshot(&page.docs, &[], page.feed_head, last)
            .unwrap();
        if last {
            break;
        }
        after = page.docs.last().map(|d| d.doc_id.clone());
    }
    converged(&station, &from_views);
    converged(&from_documents, &from_views);
    let held = from_views.documents_json().unwrap();
    for id in [&case, &patrol] {
        assert!(held.iter().any(|(doc, _)| doc == id), "{id}");
    }
    // A view that does not read as its document's entity is refused like a
    // corrupt document, and the page leaves nothing behind.
    let page = station.snapshot_page(None, 5).unwrap();
    let mut views = page.views.clone();
    views[2] = Some("{\"code\": 7}".into());
    let (_d4, mut phone) = empty_store();
    assert!(matches!(
        phone.load_snapshot(&page.docs, &views, page.feed_head, false),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(phone.sync_cursors().unwrap().pulled, 0);
    assert_eq!(phone.snapshot_progress().unwrap(), None);
}

#[test]
fn a_snapshot_merges_into_documents_made_before_the_first_sync() {
    let (_d1, station) = demo_store();
    let (_d2, mut phone) = empty_store();
    phone.import_categories(categories()).unwrap();
    let shop = street()[0].clone();
    phone.create_shop(shop.clone()).unwrap();
    phone
        .update_shop(
            &shop.id(),
            ShopPatch {
                name: Some("离线改名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let page = station.snapshot_page(None, 1_000).unwrap();
    phone
        .load_snapshot(&page.docs, &page.views, page.feed_head, true)
        .unwrap();
    // The phone's own edit survives the merge and is still its to push.
    assert!(phone.own_changes_since(0, 100).unwrap().changes.len() >= 2);
    let mut station = station;
    station.merge_from(&phone, 0).unwrap();
    let (_d3, mut fresh) = empty_store();
    fresh.merge_from(&station, 0).unwrap();
    assert_eq!(
        fresh.shop(&shop.id()).unwrap().name,
        phone.shop(&shop.id()).unwrap().name
    );
    let bad = vec![DocChange {
        doc_id: shop.id(),
        bytes: b"not a document".to_vec(),
    }];
    let before = phone.documents_json().unwrap();
    assert!(matches!(
        phone.load_snapshot(&bad, &[], 1, true),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(phone.documents_json().unwrap(), before);
}

/// A 24-byte change found by fuzzing (`fuzz/`, target `change_bytes`) passes
/// Automerge's parser and the station's limits, then panics inside
/// Automerge's apply. It must be refused like any corrupt change, leave
/// nothing behind, and leave the store working.
#[test]
fn a_change_that_panics_inside_automerge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("s.sqlite"), StoreConfig::default()).unwrap();
    let bytes = include_bytes!("data/automerge-panic.change").to_vec();
    let before = store.counts().unwrap();
    let change = DocChange {
        doc_id: format!("case/{}", "0".repeat(32)),
        bytes,
    };
    // Applied as a phone applies a pulled page (a station checks the
    // change's actor first, and this one's is empty: bound to no device).
    let err = store
        .apply_changes(std::slice::from_ref(&change))
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(store.counts().unwrap(), before);
    store.publish_rules(DistrictRules::default()).unwrap();
}

/// A document found by fuzzing (`fuzz/`, target `document_bytes`; its first
/// byte chose the kind) on which Automerge's loader panics: a snapshot page
/// carrying it is refused and nothing is loaded.
#[test]
fn a_document_that_panics_inside_automerge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("s.sqlite"), StoreConfig::default()).unwrap();
    let input = include_bytes!("data/automerge-panic.document");
    let before = store.counts().unwrap();
    let doc = DocChange {
        doc_id: format!("case/{}", "1".repeat(32)),
        bytes: input[1..].to_vec(),
    };
    let err = store.load_documents(&[doc]).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(store.counts().unwrap(), before);
}

/// A 71-byte "document" found by fuzzing (`document_bytes`; first byte the
/// kind) that is an Automerge bundle chunk on which Automerge's loader asks for
/// 2 GiB at once: refused by its chunk type before the loader sees it.
#[test]
fn a_bundle_posing_as_a_document_never_reaches_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("s.sqlite"), StoreConfig::default()).unwrap();
    let input = include_bytes!("data/automerge-oom.document");
    let before = store.counts().unwrap();
    let doc = DocChange {
        doc_id: format!("case/{}", "1".repeat(32)),
        bytes: input[1..].to_vec(),
    };
    let err = store.load_documents(&[doc]).unwrap_err();
    assert!(err.to_string().contains("is not a document"), "{err}");
    assert_eq!(store.counts().unwrap(), before);
    // What a store keeps passes the same check: a saved document, or a
    // record's one change (ADR 0019), but not that change with another chunk
    // after it.
    let mut d = automerge::AutoCommit::new();
    automerge::transaction::Transactable::put(&mut d, automerge::ROOT, "k", "v").unwrap();
    let change = d.get_last_local_change().unwrap().raw_bytes().to_vec();
    menqian_core::limits::check_document(&d.save()).unwrap();
    menqian_core::limits::check_document(&change).unwrap();
    let mut two = change.clone();
    two.extend_from_slice(&input[1..]);
    let err = menqian_core::limits::check_document(&two).unwrap_err();
    assert!(err.contains("a document kept as its change"), "{err}");
}
