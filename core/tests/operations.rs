//! The offline operations an officer, steward or administrator performs, on a
//! real SQLite file, and the typed errors bad input gets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use common::*;
use menqian_core::store::RESUME_WITHIN_HOURS;
use menqian_core::*;

fn first_shop(store: &Store) -> Shop {
    store.shop_by_code(&street()[0].code).unwrap()
}

fn inspection_at(store: &mut Store, shop: &Shop, at: chrono::DateTime<chrono::Utc>) -> String {
    store
        .start_inspection(NewInspection {
            shop_id: shop.id(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: "officer-1".into(),
            started_at: at,
            fix: Some(GpsFix {
                lat: 39.866,
                lon: 116.345,
                accuracy_m: 6.0,
                at,
            }),
        })
        .unwrap()
}

fn pass() -> ItemResult {
    ItemResult {
        outcome: ItemOutcome::Pass,
        note: None,
        photos: vec![],
    }
}

#[test]
fn importing_the_same_registry_twice_changes_nothing_and_edits_are_updates() {
    let (_dir, mut store) = demo_store();
    let (docs, changes) = store.counts().unwrap();
    let again = store.import_registry(street()).unwrap();
    assert_eq!(
        again,
        ImportReport {
            created: 0,
            updated: 0,
            unchanged: 120
        }
    );
    assert_eq!(store.counts().unwrap(), (docs, changes));

    let mut edited = street();
    edited[5].name = "新名字便利店".into();
    edited[5].tags.insert(ShopTag::School);
    let r = store.import_registry(edited.clone()).unwrap();
    assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 119));
    let shop = store.shop(&edited[5].id()).unwrap();
    assert_eq!(shop, edited[5].clone().validated().unwrap());
}

#[test]
fn a_scan_opens_the_shop_offline_and_bad_codes_say_why() {
    let (_dir, store) = demo_store();
    let shop = first_shop(&store);
    let link = ShopCode::parse(&shop.code).unwrap().link(HOST);
    assert_eq!(store.scan(&link).unwrap(), shop);
    assert_eq!(store.scan(&format!("{link}?from=timeline")).unwrap(), shop);

    let cut = &link[..link.len() - 3];
    assert!(matches!(
        store.scan(cut),
        Err(Error::Qr(QrError::Truncated { len: 10 }))
    ));
    assert!(matches!(
        store.scan("二维码"),
        Err(Error::Qr(QrError::NotALink))
    ));
    assert!(matches!(
        store.scan("https://example.org/s/1101060000010"),
        Err(Error::Qr(QrError::ForeignHost { .. }))
    ));
    // A valid code this district never issued: not found, not a crash.
    let unknown = ShopCode::new(110106, 999_999).unwrap().link(HOST);
    assert!(matches!(
        store.scan(&unknown),
        Err(Error::NotFound { kind: "shop", .. })
    ));
}

#[test]
fn chinese_substring_search_finds_names_and_addresses() {
    let (_dir, store) = demo_store();
    let all = street();
    for query in ["超市", "超", "丰台区富义街1", "西一巷", "义街 2 号"] {
        let normal: String = query.chars().filter(|c| c.is_alphanumeric()).collect();
        let expected: BTreeSet<String> = all
            .iter()
            .filter(|s| {
                let n: String = s.name.chars().filter(|c| c.is_alphanumeric()).collect();
                let a: String = s.address.chars().filter(|c| c.is_alphanumeric()).collect();
                n.contains(&normal) || a.contains(&normal)
            })
            .map(|s| s.id())
            .collect();
        let found: BTreeSet<String> = store
            .search_shops(query, 1_000)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert!(!expected.is_empty(), "{query} should match something");
        assert_eq!(found, expected, "query {query}");
    }
    assert_eq!(store.search_shops("超市", 2).unwrap().len(), 2);
    assert!(store.search_shops("。，！", 10).unwrap().is_empty());
    assert!(store.search_shops("不存在的店名", 10).unwrap().is_empty());
}

#[test]
fn shops_are_listed_by_street_and_lane() {
    let (_dir, store) = demo_store();
    assert_eq!(store.shops_on("富义街", None).unwrap().len(), 120);
    assert_eq!(
        store
            .shops_on("富义街", Some("富义街东一巷"))
            .unwrap()
            .len(),
        5
    );
    assert!(store.shops_on("不存在街", None).unwrap().is_empty());
    let streets = store.streets().unwrap();
    assert_eq!(streets.len(), 5);
    assert_eq!(streets[0], ("富义街".to_string(), None, 100));
}

#[test]
fn an_inspection_runs_and_is_immutable_once_submitted() {
    let (dir, mut store) = demo_store();
    let shop = first_shop(&store);
    // July: 扫雪铲冰 (BJ-06) does not apply.
    let id = inspection_at(&mut store, &shop, beijing(2026, 7, 15));
    let insp = store.inspection(&id).unwrap();
    assert_eq!(
        insp.applicable,
        ["BJ-01", "BJ-02", "BJ-03", "BJ-04", "BJ-05"]
    );
    assert!(matches!(
        store.record_item(&id, "BJ-06", pass()),
        Err(Error::ItemNotApplicable { .. })
    ));
    assert!(matches!(
        store.record_item(&id, "XX-99", pass()),
        Err(Error::UnknownItem { .. })
    ));
    for code in ["BJ-01", "BJ-02", "BJ-03"] {
        store.record_item(&id, code, pass()).unwrap();
    }
    let fail = ItemResult {
        outcome: ItemOutcome::Fail,
        note: Some("门口堆放纸箱".into()),
        photos: vec![],
    };
    store.record_item(&id, "BJ-04", fail.clone()).unwrap();
    match store.submit_inspection(&id, beijing(2026, 7, 15)) {
        Err(Error::IncompleteInspection { codes }) => assert_eq!(codes, ["BJ-05"]),
        other => panic!("expected incomplete, got {other:?}"),
    }
    store.record_item(&id, "BJ-05", pass()).unwrap();
    assert!(matches!(
        store.submit_inspection(&id, beijing(2026, 7, 15)),
        Err(Error::PhotoRequired { code }) if code == "BJ-04"
    ));
    // A photo id that is not a SHA-256, or one never captured here, is refused.
    for bad in ["sha256-abc", &"ab".repeat(32)] {
        let refused = ItemResult {
            photos: vec![bad.to_string()],
            ..fail.clone()
        };
        assert!(store.record_item(&id, "BJ-04", refused).is_err(), "{bad}");
    }
    let hash = common::photo(&mut store, dir.path(), "王磊");
    let with_photo = ItemResult {
        photos: vec![hash.clone()],
        ..fail
    };
    store.record_item(&id, "BJ-04", with_photo).unwrap();
    // The record carries the photo's metadata; the blob waits for upload.
    let evidence = &store.inspection(&id).unwrap().evidence;
    assert_eq!((evidence[&hash].width, evidence[&hash].height), (640, 480));
    let pending: Vec<String> = store
        .pending_blobs()
        .unwrap()
        .into_iter()
        .map(|b| b.hash)
        .collect();
    assert_eq!(pending, [evidence[&hash].thumb.clone(), hash.clone()]);
    let done = store
        .submit_inspection(&id, beijing(2026, 7, 15) + Duration::minutes(5))
        .unwrap();
    // Weights 10+20+20+20+15 = 85 judged, 65 passed: 76.47 → 76.
    assert_eq!(done.score, 76);
    assert_eq!(done.verdict, Verdict::NeedsRectification);
    assert_eq!(done.failed, ["BJ-04"]);

    let before = (store.counts().unwrap(), store.index_snapshot().unwrap());
    assert!(matches!(
        store.record_item(&id, "BJ-01", pass()),
        Err(Error::InspectionSubmitted { .. })
    ));
    assert!(matches!(
        store.submit_inspection(&id, beijing(2026, 7, 16)),
        Err(Error::InspectionSubmitted { .. })
    ));
    assert_eq!(
        (store.counts().unwrap(), store.index_snapshot().unwrap()),
        before
    );
    let history = store.inspections_of_shop(&shop.id()).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].score, Some(76));
}

#[test]
fn seasonal_and_category_items_apply_only_when_they_should() {
    let (_dir, mut store) = demo_store();
    let shop = first_shop(&store);
    let winter = inspection_at(&mut store, &shop, beijing(2026, 12, 20));
    assert!(
        store
            .inspection(&winter)
            .unwrap()
            .applicable
            .contains(&"BJ-06".to_string())
    );
    let jinan = store
        .start_inspection(NewInspection {
            shop_id: shop.id(),
            template_id: "jinan-5bao".into(),
            template_version: Some(1),
            inspector: "officer-1".into(),
            started_at: beijing(2026, 7, 1),
            fix: None,
        })
        .unwrap();
    let items = store.inspection(&jinan).unwrap().applicable;
    assert_eq!(items, ["JN-01", "JN-03", "JN-04", "JN-05", "JN-07"]);
    assert!(matches!(
        store.start_inspection(NewInspection {
            shop_id: shop.id(),
            template_id: "shanghai".into(),
            template_version: None,
            inspector: "officer-1".into(),
            started_at: beijing(2026, 7, 1),
            fix: None,
        }),
        Err(Error::NotFound {
            kind: "checklist template",
            ..
        })
    ));
}

#[test]
fn cases_are_reported_and_moved_with_their_history() {
    let (dir, mut store) = demo_store();
    let shop = first_shop(&store);
    let at = beijing(2026, 7, 1);
    let hash = common::photo(&mut store, dir.path(), "李娜");
    let new = NewCase {
        subdistrict: None,
        lane: None,
        source: CaseSource::Steward,
        category: "0504".into(),
        location: GeoPoint::new(39.8661, 116.3451),
        shop_id: Some(shop.id()),
        photos: vec![hash.clone()],
        description: "水果摊摆到了人行道上".into(),
        deadline: Some(at + Duration::hours(8)),
        reported_by: "steward-7".into(),
        reported_at: at,
    };
    let id = store.report_case(new.clone()).unwrap();
    store
        .move_case(
            &id,
            CaseMove {
                to: CaseStatus::Accepted,
                by: "supervisor-1".into(),
                role: Role::Supervisor,
                at: at + Duration::minutes(10),
                note: Some("已受理".into()),
                department: None,
                whistle: None,
            },
        )
        .unwrap();
    let case = store.case(&id).unwrap();
    assert_eq!(case.status(), CaseStatus::Accepted);
    assert_eq!(case.history.len(), 2);
    assert_eq!(case.history[1].by, "supervisor-1");
    assert_eq!(
        store.cases(Some(CaseStatus::Accepted), 10).unwrap().len(),
        1
    );
    assert!(
        store
            .cases(Some(CaseStatus::Closed), 10)
            .unwrap()
            .is_empty()
    );

    let before = store.counts().unwrap();
    let unknown_category = NewCase {
        category: "9999".into(),
        ..new.clone()
    };
    assert!(
        matches!(store.report_case(unknown_category), Err(Error::InvalidInput { field, .. }) if field == "category")
    );
    let empty = NewCase {
        description: "  ".into(),
        photos: vec![],
        ..new.clone()
    };
    assert!(matches!(
        store.report_case(empty),
        Err(Error::InvalidInput { .. })
    ));
    let off_globe = NewCase {
        location: GeoPoint::new(39.9, 200.0),
        ..new.clone()
    };
    assert!(
        matches!(store.report_case(off_globe), Err(Error::InvalidInput { field, .. }) if field == "location.lon")
    );
    let no_shop = NewCase {
        shop_id: Some("shop/1101069999990".into()),
        ..new
    };
    assert!(matches!(
        store.report_case(no_shop),
        Err(Error::NotFound { .. })
    ));
    let close = CaseMove {
        to: CaseStatus::Closed,
        by: "x".into(),
        role: Role::Admin,
        at,
        note: None,
        department: None,
        whistle: None,
    };
    assert!(matches!(
        store.move_case("case/nope", close.clone()),
        Err(Error::NotFound { kind: "case", .. })
    ));
    // Closing needs the case to be awaiting verification first.
    assert!(matches!(
        store.move_case(&id, close),
        Err(Error::NotAllowed { .. })
    ));
    assert_eq!(store.counts().unwrap(), before);
}

#[test]
fn a_patrol_records_its_track_until_stopped() {
    let (_dir, mut store) = empty_store();
    let start = beijing(2026, 7, 1);
    let id = store.start_patrol("chief-3", start).unwrap();
    let points: Vec<TrackPoint> = (0..120)
        .map(|i| TrackPoint {
            at: start + Duration::seconds(i),
            lat: (398_660_000.0 + i as f64 * 100.0) / 1e7,
            lon: 116.345,
            accuracy_m: 5.0,
        })
        .collect();
    store.append_track(&id, &points[..60]).unwrap();
    store.append_track(&id, &points[60..]).unwrap();
    let mut bad = points[0];
    bad.accuracy_m = -1.0;
    let before = store.counts().unwrap();
    assert!(matches!(
        store.append_track(&id, &[bad]),
        Err(Error::InvalidInput { .. })
    ));
    assert!(store.append_track(&id, &[]).is_err());
    assert_eq!(store.counts().unwrap(), before);
    store
        .stop_patrol(&id, start + Duration::minutes(2))
        .unwrap();
    assert!(matches!(
        store.append_track(&id, &points[..1]),
        Err(Error::PatrolEnded { .. })
    ));
    assert_eq!(store.patrol_track(&id).unwrap(), points);
}

#[test]
fn a_restarted_recorder_continues_the_open_patrol_and_closes_stale_ones() {
    let (_dir, mut store) = empty_store();
    let start = beijing(2026, 7, 1);
    let point = |s: i64| TrackPoint {
        at: start + Duration::seconds(s),
        lat: 39.866,
        lon: 116.345,
        accuracy_m: 5.0,
    };
    // Nothing open: a new patrol.
    let (first, resumed) = store.resume_or_start_patrol("chief-3", start).unwrap();
    assert!(!resumed);
    store.append_track(&first, &[point(1), point(2)]).unwrap();
    // The app was killed; the service restarts ten minutes later.
    let later = start + Duration::minutes(10);
    let (again, resumed) = store.resume_or_start_patrol("chief-3", later).unwrap();
    assert_eq!((again.as_str(), resumed), (first.as_str(), true));
    assert_eq!(store.patrol_track(&first).unwrap().len(), 2);
    // Another user's open patrol is theirs.
    let (other, resumed) = store.resume_or_start_patrol("chief-4", later).unwrap();
    assert!(!resumed && other != first);
    // A day later the open patrol is stale: it ends at its last point and a
    // new one begins, so the user never has two open patrols.
    let next_day = start + Duration::hours(RESUME_WITHIN_HOURS + 1);
    let (fresh, resumed) = store.resume_or_start_patrol("chief-3", next_day).unwrap();
    assert!(!resumed && fresh != first);
    assert!(matches!(
        store.append_track(&first, &[point(3)]),
        Err(Error::PatrolEnded { .. })
    ));
    let (still, resumed) = store.resume_or_start_patrol("chief-3", next_day).unwrap();
    assert_eq!((still.as_str(), resumed), (fresh.as_str(), true));

    // A recorder's batch: a cached fix from before the start and a broken one
    // are dropped, the rest stored; nothing is refused.
    let at = |s: i64| TrackPoint {
        at: next_day + Duration::seconds(s),
        ..point(0)
    };
    let broken = TrackPoint {
        accuracy_m: -1.0,
        ..at(2)
    };
    let dropped = store
        .record_fixes(&fresh, &[at(-30), at(1), broken, at(3)])
        .unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(store.patrol_track(&fresh).unwrap(), vec![at(1), at(3)]);
    assert_eq!(store.record_fixes(&fresh, &[at(-60)]).unwrap(), 1);
    assert_eq!(store.patrol_track(&fresh).unwrap().len(), 2);
    assert!(matches!(
        store.record_fixes(&first, &[at(4)]),
        Err(Error::PatrolEnded { .. })
    ));
}

#[test]
fn a_patrol_along_a_lane_covers_that_lane() {
    let (_dir, mut store) = demo_store();
    let lane = "富义街东一巷";
    let mut shops = store.shops_on("富义街", Some(lane)).unwrap();
    assert!(shops.len() >= 5, "{}", shops.len());
    shops.sort_by(|a, b| (a.lat + a.lon).total_cmp(&(b.lat + b.lon)));
    // Walk from frontage to frontage at about 1 m/s, one fix a second.
    let start = beijing(2026, 7, 1);
    let id = store.start_patrol("chief-3", start).unwrap();
    let mut points = Vec::new();
    for pair in shops.windows(2) {
        let (a, b) = (
            GeoPoint::new(pair[0].lat, pair[0].lon),
            GeoPoint::new(pair[1].lat, pair[1].lon),
        );
        let steps = (model::place::distance_m(a, b).ceil() as usize).max(1);
        for k in 0..steps {
            let t = k as f64 / steps as f64;
            points.push(TrackPoint {
                at: start + Duration::seconds(points.len() as i64),
                lat: a.lat + (b.lat - a.lat) * t,
                lon: a.lon + (b.lon - a.lon) * t,
                accuracy_m: 5.0,
            });
        }
    }
    for chunk in points.chunks(store::MAX_POINTS_PER_APPEND) {
        store.append_track(&id, chunk).unwrap();
    }
    let (report, lanes) = store
        .patrol_report_near(&id, &model::track::TrackRules::default())
        .unwrap();
    assert!(lanes.iter().any(|l| l.name == lane));
    let walked = report.lanes.iter().find(|l| l.name == lane).unwrap();
    assert!(walked.covered > 0.95, "{walked:?}");
    assert!(report.distance_m > 0.0 && report.duration_s > 0);

    // The lane chief's week: the walked lane counts, the other does not; a
    // problem found on the way is counted and open.
    store
        .report_case(NewCase {
            source: CaseSource::Inspection,
            category: "0107".into(),
            location: GeoPoint::new(shops[2].lat, shops[2].lon),
            shop_id: Some(shops[2].id.clone()),
            photos: vec![],
            description: "门前堆放纸箱".into(),
            deadline: None,
            reported_by: "chief-3".into(),
            reported_at: start + Duration::minutes(3),
            subdistrict: None,
            lane: None,
        })
        .unwrap();
    let mine = [lane.to_string(), "富义街西一巷".to_string()];
    let week = store.lane_chief_week("chief-3", &mine, start).unwrap();
    assert_eq!(week.week, "2026-W27");
    assert_eq!(
        (
            week.lanes_covered,
            week.patrols,
            week.found,
            week.handled,
            week.open
        ),
        (1, 1, 1, 0, 1)
    );
    assert_eq!(week.lanes[0].0, lane);
    assert!(
        week.lanes[0].1 > 0.95 && week.lanes[1].1 == 0.0,
        "{:?}",
        week.lanes
    );
    assert!((week.patrol_m - report.distance_m).abs() < 1e-6);
}

#[test]
fn invalid_shops_are_refused_and_nothing_partial_is_written() {
    let (_dir, mut store) = demo_store();
    let before = (store.counts().unwrap(), store.index_snapshot().unwrap());
    let mut shops = street();
    for s in &mut shops {
        s.code = ShopCode::new(110106, 500_000 + s.code[6..12].parse::<u32>().unwrap())
            .unwrap()
            .to_string();
    }
    shops[3].name = "   ".into();
    match store.import_registry(shops.clone()) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "shops[3].name"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    let mut open_zone = street()[0].clone();
    open_zone.code = ShopCode::new(110106, 777).unwrap().to_string();
    let mut ring = open_zone.zone.points().to_vec();
    ring.pop();
    ring.push(GeoPoint::new(39.9, 116.4));
    // Zone::new refuses to build it at all; a hand-made zone can't skip the check.
    assert!(Zone::new(ring).is_err());
    let mut bad_phone = open_zone.clone();
    bad_phone.contact.phone = "call me".into();
    assert!(
        matches!(store.create_shop(bad_phone), Err(Error::InvalidInput { field, .. }) if field == "contact.phone")
    );
    let mut bad_code = open_zone.clone();
    bad_code.code = "110106000777".into();
    assert!(
        matches!(store.create_shop(bad_code), Err(Error::InvalidInput { field, .. }) if field == "code")
    );
    let duplicate = street()[0].clone();
    assert!(
        matches!(store.create_shop(duplicate), Err(Error::InvalidInput { field, .. }) if field == "code")
    );
    assert!(matches!(
        store.update_shop(&street()[0].id(), ShopPatch::default()),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.update_shop(
            "shop/1101069999990",
            ShopPatch {
                name: Some("x".into()),
                ..Default::default()
            }
        ),
        Err(Error::NotFound { .. })
    ));
    let mut bad_template = templates()[0].clone();
    bad_template.version = 2;
    bad_template.items[2].duty = "nope".into();
    assert!(
        matches!(store.import_templates(vec![bad_template]), Err(Error::InvalidInput { field, .. }) if field == "templates[0].items[2].duty")
    );
    let mut changed = templates()[0].clone();
    changed.items[0].weight = 11;
    assert!(matches!(
        store.import_templates(vec![changed]),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        (store.counts().unwrap(), store.index_snapshot().unwrap()),
        before
    );

    store.create_shop(open_zone.clone()).unwrap();
    assert_eq!(store.shop(&open_zone.id()).unwrap().name, open_zone.name);
}

#[test]
fn shop_edits_touch_only_the_fields_given() {
    let (_dir, mut store) = demo_store();
    let shop = first_shop(&store);
    store
        .update_shop(
            &shop.id(),
            ShopPatch {
                contact: Some(Contact {
                    person: "赵新".into(),
                    phone: "010-6333 1234".into(),
                }),
                lane: Some(Some("富义街东一巷".into())),
                add_tags: [ShopTag::TransportHub].into(),
                status: Some(ShopStatus::Closed),
                ..Default::default()
            },
        )
        .unwrap();
    let after = store.shop(&shop.id()).unwrap();
    assert_eq!(after.name, shop.name);
    assert_eq!(after.contact.person, "赵新");
    assert_eq!(after.lane.as_deref(), Some("富义街东一巷"));
    assert!(after.tags.contains(&ShopTag::TransportHub));
    assert_eq!(after.status, ShopStatus::Closed);
    store
        .update_shop(
            &shop.id(),
            ShopPatch {
                lane: Some(None),
                remove_tags: [ShopTag::TransportHub].into(),
                ..Default::default()
            },
        )
        .unwrap();
    let again = store.shop(&shop.id()).unwrap();
    assert_eq!(again.lane, None);
    assert!(!again.tags.contains(&ShopTag::TransportHub));
}

#[test]
fn a_store_reopens_with_its_data_and_actor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let (actor, snapshot) = {
        let mut s = Store::open(&path, config()).unwrap();
        s.import_templates(templates()).unwrap();
        s.import_categories(categories()).unwrap();
        s.import_registry(street()).unwrap();
        (s.actor_id(), s.index_snapshot().unwrap())
    };
    let mut s = Store::open(&path, config()).unwrap();
    assert_eq!(s.actor_id(), actor);
    assert_eq!(s.index_snapshot().unwrap(), snapshot);
    s.rebuild_index().unwrap();
    assert_eq!(s.index_snapshot().unwrap(), snapshot);
    assert_eq!(s.search_shops("超市", 100).unwrap().len(), 4);
}

#[test]
fn a_stepped_import_reports_progress_can_stop_and_checks_everything_first() {
    let (_d, mut store) = empty_store();
    let shops = street();
    // A record that is bad, or a code given twice, in the last step imports nothing.
    let mut twice = shops.clone();
    twice.push(shops[0].clone());
    let mut told = Vec::new();
    match store.import_registry_in_steps(twice, 50, |done, total| {
        told.push((done, total));
        true
    }) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "shops[120].code"),
        other => panic!("expected a refused duplicate, got {other:?}"),
    }
    assert!(told.is_empty());
    assert_eq!(store.counts().unwrap(), (0, 0));

    // Stopped after the first step: that step stays, the rest waits.
    let stopped = store.import_registry_in_steps(shops.clone(), 50, |_, _| false);
    assert!(matches!(stopped, Err(Error::Cancelled)));
    assert_eq!(store.counts().unwrap().0, 50);

    // The same list again finishes it, with progress after every step.
    let r = store
        .import_registry_in_steps(shops, 50, |done, total| {
            told.push((done, total));
            true
        })
        .unwrap();
    assert_eq!((r.created, r.unchanged), (70, 50));
    assert_eq!(told, vec![(50, 120), (100, 120), (120, 120)]);
}

/// The demo station holding a steward's report filed there and its repeat
/// filed offline on a phone ten minutes later, neither linked yet: the
/// station's directory, the station, both cases' ids and when the first was
/// filed.
fn a_report_and_its_offline_repeat() -> (
    tempfile::TempDir,
    Store,
    String,
    String,
    chrono::DateTime<chrono::Utc>,
) {
    let (dir, mut station) = demo_store();
    let (_phone_dir, mut phone) = empty_store();
    phone.merge_from(&station, 0).unwrap();
    let shop = first_shop(&station);
    let at = beijing(2026, 7, 1);
    let report = |by: &str, at| doorstep_report(&shop, CaseSource::Steward, by, at);
    let first = station.report_case(report("steward-1", at)).unwrap();
    let second = phone
        .report_case(report("steward-2", at + Duration::minutes(10)))
        .unwrap();
    station.merge_from(&phone, 0).unwrap();
    (dir, station, first, second, at)
}

#[test]
fn a_fold_that_fails_halfway_changes_nothing_and_its_retry_links_once() {
    let (dir, mut station, first, second, at) = a_report_and_its_offline_repeat();
    assert_ne!(first, second);

    // The second write of the fold (the repeat's 不予受理 step) fails.
    let raw = rusqlite::Connection::open(dir.path().join("device.sqlite")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER fail_fold BEFORE INSERT ON case_history WHEN NEW.status = 'rejected'
         BEGIN SELECT RAISE(ABORT, 'disk failed mid-fold'); END;",
    )
    .unwrap();
    let now = at + Duration::hours(1);
    assert!(station.sweep(now, "system").is_err());
    assert!(station.case(&first).unwrap().linked.is_empty());
    assert_eq!(
        station.case(&second).unwrap().status(),
        CaseStatus::Reported
    );

    // Retried once the fault is gone: linked once, and only once.
    raw.execute_batch("DROP TRIGGER fail_fold").unwrap();
    let swept = station.sweep(now, "system").unwrap();
    assert_eq!(swept.folded, vec![(second.clone(), first.clone())]);
    assert!(station.sweep(now, "system").unwrap().did_nothing());
    let original = station.case(&first).unwrap();
    assert_eq!(original.linked.len(), 1);
    assert_eq!(original.linked[0].reported_by, "steward-2");
    assert_eq!(
        station.case(&second).unwrap().status(),
        CaseStatus::Rejected
    );
}

#[test]
fn a_sweep_cut_into_the_smallest_slices_folds_as_one_whole_sweep() {
    // Two stations holding the same 240 reports, made offline on three
    // phones: each of 80 shops reported once per phone, ten minutes apart,
    // the later phones' reports stored first (so some folds run backwards in
    // the feed).
    let (_a_dir, mut whole) = demo_store();
    let (_b_dir, mut sliced) = empty_store();
    sliced.merge_from(&whole, 0).unwrap();
    let at = beijing(2026, 7, 1);
    let mut phones = Vec::new();
    for k in 0..3 {
        let (dir, mut phone) = empty_store();
        phone.merge_from(&whole, 0).unwrap();
        for code in street().iter().take(80).map(|s| s.code.clone()) {
            let shop = phone.shop_by_code(&code).unwrap();
            phone
                .report_case(doorstep_report(
                    &shop,
                    CaseSource::Steward,
                    &format!("steward-{k}"),
                    at + Duration::minutes(10 * k),
                ))
                .unwrap();
        }
        phones.push((dir, phone));
    }
    for (_, phone) in phones.iter().rev() {
        whole.merge_from(phone, 0).unwrap();
        sliced.merge_from(phone, 0).unwrap();
    }
    let now = at + Duration::hours(1);

    let expected = whole.sweep(now, "system").unwrap();
    assert_eq!(expected.folded.len(), 160, "{expected:?}");
    // A zero budget: every call does one step (one case looked at, one fold,
    // one page read) and returns, as a slice cut short would.
    let mut sweep = sliced.start_sweep(now, "system").unwrap();
    let mut calls = 1;
    while !sliced
        .continue_sweep(&mut sweep, Some(std::time::Duration::ZERO))
        .unwrap()
    {
        calls += 1;
    }
    assert!(calls > 240 + 160, "{calls} calls");
    let folds = |r: &SweepReport| r.folded.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(folds(&sweep.report), folds(&expected));
    // Each first report holds its two repeats, in both stations.
    let originals: BTreeSet<&String> = expected.folded.iter().map(|(_, o)| o).collect();
    assert_eq!(originals.len(), 80);
    for original in originals {
        assert_eq!(sliced.case(original).unwrap().linked.len(), 2);
        assert_eq!(whole.case(original).unwrap().reported_by, "steward-0");
    }
    assert!(sliced.sweep(now, "system").unwrap().did_nothing());
}

#[test]
fn the_overview_counts_cases_by_source_close_rates_and_open_statuses() {
    use menqian_core::{Area, Visibility, Whistle};
    let (_dir, mut store) = common::demo_store();
    let shops = common::street();
    let whistles = store.rules().unwrap().whistles;
    // Wednesday 18 November 2026, 10:00 Beijing; the week began on Monday the 16th.
    let now = common::beijing(2026, 11, 18);
    let step = |store: &mut Store, id: &str, to: CaseStatus, at, whistle: Option<Whistle>| {
        store
            .move_case(
                id,
                CaseMove {
                    to,
                    by: "supervisor-1".into(),
                    role: Role::Supervisor,
                    at,
                    note: None,
                    department: whistle.map(|_| "huanwei".to_string()),
                    whistle,
                },
            )
            .unwrap();
    };
    // Closes `id`, dispatched at `now` with `whistle`, `after` later.
    let close = |store: &mut Store, id: &str, whistle: Whistle, after: Duration| {
        step(store, id, CaseStatus::Accepted, now, None);
        step(store, id, CaseStatus::Dispatched, now, Some(whistle));
        step(store, id, CaseStatus::InProgress, now + after / 3, None);
        step(
            store,
            id,
            CaseStatus::AwaitingVerification,
            now + after / 2,
            None,
        );
        step(store, id, CaseStatus::Closed, now + after, None);
    };
    let hours = |h: u32| Duration::hours(i64::from(h));
    let today = |k: usize, source| {
        common::doorstep_report(&shops[k], source, "steward-7", now - Duration::hours(1))
    };
    // Today: a steward's report closed within its routine whistle, a
    // citizen's closed after its urgent one.
    let on_time = store.report_case(today(0, CaseSource::Steward)).unwrap();
    close(
        &mut store,
        &on_time,
        Whistle::Routine,
        hours(whistles.routine_hours) - Duration::minutes(5),
    );
    let late = store.report_case(today(1, CaseSource::Citizen)).unwrap();
    close(
        &mut store,
        &late,
        Whistle::Urgent,
        hours(whistles.urgent_hours) + Duration::hours(1),
    );
    // Monday: an inspection finding still open; last month: a hotline case.
    store
        .report_case(common::doorstep_report(
            &shops[2],
            CaseSource::Inspection,
            "officer-1",
            now - Duration::days(2),
        ))
        .unwrap();
    store
        .report_case(common::doorstep_report(
            &shops[3],
            CaseSource::Hotline,
            "officer-1",
            now - Duration::days(30),
        ))
        .unwrap();
    let o = store
        .overview(
            &Visibility::Everything,
            &Area::District,
            now + Duration::days(2),
        )
        .unwrap();
    // Two days later, Friday: "today" holds nothing; the week and the month
    // hold the three reports of this week.
    let (day, week, month) = (&o.spans[0], &o.spans[1], &o.spans[2]);
    assert_eq!((day.label, day.cases), ("今日", 0));
    assert_eq!(
        (week.label, week.cases, week.closed, week.closed_on_time),
        ("本周", 3, 2, 1)
    );
    assert_eq!(month.cases, 3);
    let count = |s: &menqian_core::SpanFigures, source| {
        s.by_source.iter().find(|(x, _)| *x == source).unwrap().1
    };
    assert_eq!(count(week, CaseSource::Steward), 1);
    assert_eq!(count(week, CaseSource::Citizen), 1);
    assert_eq!(count(week, CaseSource::Inspection), 1);
    assert_eq!(count(week, CaseSource::Hotline), 0);
    assert_eq!(week.close_rate().map(|r| r.round()), Some(67.0));
    assert_eq!(week.on_time_rate(), Some(50.0));
    assert_eq!(
        week.top_categories,
        vec![("0504".to_string(), "店外经营".to_string(), 3)]
    );
    // Open: the inspection finding and last month's hotline case, both 已上报.
    assert_eq!(o.open_by_status[0], (CaseStatus::Reported, 2));
    assert!(o.open_by_status[1..].iter().all(|(_, n)| *n == 0));
    // A reader of another subdistrict sees none of it.
    let elsewhere =
        Visibility::for_reader(Role::Supervisor, "s", &Area::Subdistrict("别处街道".into()));
    let o = store
        .overview(&elsewhere, &Area::Subdistrict("别处街道".into()), now)
        .unwrap();
    assert_eq!(o.spans[2].cases, 0);
    assert_eq!(o.open_by_status[0].1, 0);
}

#[test]
fn a_case_keeps_its_place_for_the_duplicate_search_through_every_write() {
    // The sweep's fold rewrites both cases.
    let (_dir, mut station, first, second, at) = a_report_and_its_offline_repeat();
    let swept = station.sweep(at + Duration::hours(1), "system").unwrap();
    assert_eq!(swept.folded, vec![(second.clone(), first.clone())]);

    // Each case has its place, and no place is left without its case.
    let written = station.index_snapshot().unwrap();
    let places: Vec<&String> = written
        .iter()
        .filter(|l| l.starts_with("case_places"))
        .collect();
    assert_eq!(places.len(), 3, "{places:?}");
    for (line, id) in places
        .iter()
        .zip([&first, &second].iter().copied().collect::<BTreeSet<_>>())
    {
        assert!(line.starts_with(&format!("case_places:|{id}|")), "{line}");
        assert!(!line.contains('∅'), "{line}");
    }
    assert_eq!(places[2], "case_places without a case:|0");
    // The places written case by case are those a rebuild from the
    // documents writes.
    station.rebuild_index().unwrap();
    assert_eq!(station.index_snapshot().unwrap(), written);
}
