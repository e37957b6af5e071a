//! The write rules the sync server enforces, checked directly on a store:
//! each refused batch names its change and applies nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use chrono::{Duration, Utc};
use common::*;
use menqian_core::*;

fn writer(store: &Store, user: &str, role: Role) -> Writer {
    Writer {
        user: user.into(),
        role,
        actor: store.actor_id(),
    }
}

/// Changes `device` made after `head`.
fn made_since(device: &Store, head: u64) -> Vec<DocChange> {
    device.own_changes_since(head, 1_000).unwrap().changes
}

fn refused(r: Result<ApplyReport>, needle: &str) {
    match r {
        Err(Error::Refused { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected refusal ({needle}), got {other:?}"),
    }
}

/// A status step as a modified client could write it.
fn step(status: CaseStatus, by: &str, role: Role, minutes: i64) -> StatusChange {
    StatusChange {
        status,
        at: Utc::now() + Duration::minutes(minutes),
        by: by.into(),
        note: None,
        role: Some(role),
        department: None,
        whistle: None,
    }
}

fn new_case(by: &str) -> NewCase {
    NewCase {
        subdistrict: None,
        lane: None,
        source: CaseSource::Steward,
        category: "0504".into(),
        location: GeoPoint::new(39.8661, 116.3451),
        shop_id: None,
        photos: vec![],
        description: "占道".into(),
        deadline: None,
        reported_by: by.into(),
        reported_at: beijing(2026, 7, 1),
    }
}

#[test]
fn each_rule_refuses_and_applies_nothing() {
    let (_s, mut server) = demo_store();
    let (_d, mut device) = empty_store();
    device.merge_from(&server, 0).unwrap();

    // Only an administrator publishes checklists and categories.
    let head = device.feed_head().unwrap();
    let mut t = templates()[0].clone();
    t.version = 2;
    device.import_templates(vec![t]).unwrap();
    let before = server.documents_json().unwrap();
    refused(
        server.apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "sup", Role::Supervisor),
            Utc::now(),
        ),
        "administrator",
    );
    assert_eq!(server.documents_json().unwrap(), before);
    server
        .apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "admin", Role::Admin),
            Utc::now(),
        )
        .unwrap();

    // A report is filed under its reporter's own name.
    let head = device.feed_head().unwrap();
    let case = device.report_case(new_case("steward-9")).unwrap();
    let before = server.documents_json().unwrap();
    refused(
        server.apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "steward-1", Role::Steward),
            Utc::now(),
        ),
        "reporter's own name",
    );
    assert_eq!(server.documents_json().unwrap(), before);
    server
        .apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "steward-9", Role::Steward),
            Utc::now(),
        )
        .unwrap();

    // A steward reports but does not move cases; a step is signed by its maker.
    let head = device.feed_head().unwrap();
    device
        .append_case_step_unchecked(
            &case,
            step(CaseStatus::Closed, "steward-9", Role::Steward, 0),
        )
        .unwrap();
    refused(
        server.apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "steward-9", Role::Steward),
            Utc::now(),
        ),
        "a steward may not move a case",
    );
    refused(
        server.apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "officer-1", Role::Officer),
            Utc::now(),
        ),
        "signed by the user",
    );
    let head = device.feed_head().unwrap();
    device
        .append_case_step_unchecked(
            &case,
            step(CaseStatus::Accepted, "officer-1", Role::Officer, 1),
        )
        .unwrap();
    // The earlier refused step (by steward-9) travels with it: still refused.
    refused(
        server.apply_changes_as(
            &device.own_changes_since(head - 1, 10).unwrap().changes,
            &writer(&device, "officer-1", Role::Officer),
            Utc::now(),
        ),
        "signed by the user",
    );
    let on_server = server.case(&case).unwrap();
    assert_eq!(
        on_server.history.len(),
        1,
        "no refused step reached the server"
    );
    assert_eq!(on_server.status(), CaseStatus::Reported);

    // A patrol is written only by the user who walked it.
    let head = device.feed_head().unwrap();
    device.start_patrol("chief-1", Utc::now()).unwrap();
    refused(
        server.apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "chief-2", Role::LaneChief),
            Utc::now(),
        ),
        "walked it",
    );
    server
        .apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "chief-1", Role::LaneChief),
            Utc::now(),
        )
        .unwrap();

    // A lane chief may not edit the registry; an officer may.
    let head = device.feed_head().unwrap();
    device
        .update_shop(
            &street()[3].id(),
            ShopPatch {
                name: Some("新店名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    refused(
        server.apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "chief-1", Role::LaneChief),
            Utc::now(),
        ),
        "shop registry",
    );
    server
        .apply_changes_as(
            &made_since(&device, head),
            &writer(&device, "officer-1", Role::Officer),
            Utc::now(),
        )
        .unwrap();
    assert_eq!(server.shop(&street()[3].id()).unwrap().name, "新店名");
}

#[test]
fn an_area_covers_the_areas_inside_it() {
    let sub = |s: &str| Area::Subdistrict(s.into());
    let lanes = |l: &[&str]| Area::Lanes(l.iter().map(|s| s.to_string()).collect());
    assert!(Area::District.covers(&sub("右安门街道")) && Area::District.covers(&lanes(&["a"])));
    assert!(sub("右安门街道").covers(&sub("右安门街道")));
    assert!(!sub("右安门街道").covers(&sub("别处")) && !sub("右安门街道").covers(&Area::District));
    assert!(
        lanes(&["a", "b"]).covers(&lanes(&["b"])) && !lanes(&["a"]).covers(&lanes(&["a", "b"]))
    );
    // Lanes are not known to lie in a subdistrict here: not covered.
    assert!(!sub("右安门街道").covers(&lanes(&["a"])));
}
