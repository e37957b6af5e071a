//! The district platform on a real station server: an overdue rectification
//! item escalates into a dispatched case that reaches the officer's phone,
//! duplicate reports filed offline are folded into the first, and a phone may
//! not sign a step in a role its user does not have.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use common::*;
use menqian_core::store::ledger::{LedgerState, Scope};
use menqian_core::*;

/// Syncs `d` until `done` holds, for up to 20 s (the sweep runs every 200 ms).
fn sync_until(d: &mut Device, mut done: impl FnMut(&Store) -> bool) {
    let start = Instant::now();
    loop {
        d.sync().unwrap();
        if done(&d.store) {
            return;
        }
        assert!(
            start.elapsed() < StdDuration::from_secs(20),
            "the sweep never came"
        );
        std::thread::sleep(StdDuration::from_millis(100));
    }
}

#[test]
fn an_overdue_item_is_escalated_dispatched_and_reaches_the_officer() {
    let server = TestServer::start_sweeping(StdDuration::from_millis(200));
    let mut o1 = Device::enroll(&server.url, &server.code_for("officer-1"), "o1");
    o1.sync().unwrap();
    let shop = o1.store.shops_on("富义街", None).unwrap()[3].id.clone();
    // Ten days ago the shop had no signed responsibility letter (7 days to fix).
    let ten_days_ago = Utc::now() - Duration::days(10);
    let id = o1
        .store
        .start_inspection(NewInspection {
            shop_id: shop.clone(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: "officer-1".into(),
            started_at: ten_days_ago,
            fix: None,
        })
        .unwrap();
    for code in o1.store.inspection(&id).unwrap().applicable {
        let outcome = if code == "BJ-01" {
            ItemOutcome::Fail
        } else {
            ItemOutcome::Pass
        };
        o1.store
            .record_item(
                &id,
                &code,
                ItemResult {
                    outcome,
                    note: Some("未签订责任书".into()),
                    photos: vec![],
                },
            )
            .unwrap();
    }
    o1.store
        .submit_inspection(&id, ten_days_ago + Duration::minutes(5))
        .unwrap();
    let before = o1
        .store
        .rectification_ledger(Scope::Shop(&shop), Utc::now())
        .unwrap();
    assert_eq!(before[0].state, LedgerState::Overdue);

    sync_until(&mut o1, |s| {
        s.rectification_ledger(Scope::Shop(&shop), Utc::now())
            .unwrap()[0]
            .state
            == LedgerState::Escalated
    });
    let item = &o1
        .store
        .rectification_ledger(Scope::Shop(&shop), Utc::now())
        .unwrap()[0];
    let case = o1.store.case(item.case_id.as_deref().unwrap()).unwrap();
    assert_eq!(case.source, CaseSource::Rectification);
    assert_eq!(case.reported_by, menqian_sync_server::SYSTEM_USER);
    assert_eq!(case.category, "L-01");
    assert_eq!(case.status(), CaseStatus::Dispatched);
    // 门前责任 goes to the subdistrict's city-management office, routinely.
    let (department, whistle, _) = case.replay().dispatch.unwrap();
    assert_eq!((department.as_str(), whistle), ("jiedao", Whistle::Routine));
    // One escalation, however many sweeps ran.
    std::thread::sleep(StdDuration::from_millis(600));
    let escalations = server
        .documents()
        .into_iter()
        .filter(|(id, _)| id.starts_with("case/rect-"))
        .count();
    assert_eq!(escalations, 1);

    // The officer re-checks: the item closes (late), the case stays for the
    // department's verification.
    let recheck = inspect(&mut o1, &shop, "officer-1", false);
    pass_every_item(&mut o1.store, &recheck);
    o1.store.submit_inspection(&recheck, Utc::now()).unwrap();
    let item = &o1
        .store
        .rectification_ledger(Scope::Shop(&shop), Utc::now())
        .unwrap()[0];
    assert_eq!(
        (item.state, item.on_time()),
        (LedgerState::Closed, Some(false))
    );
}

#[test]
fn duplicate_reports_filed_offline_are_folded_into_the_first() {
    let server = TestServer::start_sweeping(StdDuration::from_millis(200));
    let mut o1 = Device::enroll(&server.url, &server.code_for("officer-1"), "o1");
    let mut o2 = Device::enroll(&server.url, &server.code_for("officer-2"), "o2");
    o1.sync().unwrap();
    o2.sync().unwrap();
    // Both offline, ten minutes and about 8 m apart: the same pile of boxes.
    let report = |d: &mut Device, who: &str, lat: f64, minutes: i64| {
        d.store
            .report_case(NewCase {
                source: CaseSource::Inspection,
                category: "0107".into(),
                location: GeoPoint::new(lat, 116.3451),
                shop_id: None,
                photos: vec![],
                description: "路口堆放纸箱".into(),
                deadline: None,
                reported_by: who.into(),
                reported_at: Utc::now() + Duration::minutes(minutes),
                subdistrict: None,
                lane: None,
            })
            .unwrap()
    };
    let first = report(&mut o1, "officer-1", 39.86610, 0);
    let second = report(&mut o2, "officer-2", 39.86617, 10);
    assert_ne!(first, second);
    o1.sync().unwrap();
    o2.sync().unwrap();
    sync_until(&mut o2, |s| {
        s.case(&second).unwrap().status() == CaseStatus::Rejected
    });
    let dup = o2.store.case(&second).unwrap();
    let last = dup.history.last().unwrap();
    assert_eq!(last.by, menqian_sync_server::SYSTEM_USER);
    assert!(last.note.as_deref().unwrap().contains(&first), "{last:?}");
    let original = o2.store.case(&first).unwrap();
    assert_eq!(original.status(), CaseStatus::Reported);
    assert_eq!(original.linked.len(), 1);
    assert_eq!(original.linked[0].reported_by, "officer-2");
}

#[test]
fn a_phone_may_not_sign_a_step_in_another_role() {
    let server = TestServer::start();
    let mut o1 = Device::enroll(&server.url, &server.code_for("officer-1"), "o1");
    o1.sync().unwrap();
    let case = o1
        .store
        .report_case(NewCase {
            source: CaseSource::Inspection,
            category: "0504".into(),
            location: GeoPoint::new(39.8661, 116.3451),
            shop_id: None,
            photos: vec![],
            description: "占道经营".into(),
            deadline: None,
            reported_by: "officer-1".into(),
            reported_at: at(1),
            subdistrict: None,
            lane: None,
        })
        .unwrap();
    o1.sync().unwrap();
    // A step claiming the supervisor's role, signed by the officer.
    o1.store
        .append_case_step_unchecked(
            &case,
            StatusChange {
                status: CaseStatus::Accepted,
                at: at(2),
                by: "officer-1".into(),
                note: None,
                role: Some(Role::Supervisor),
                department: None,
                whistle: None,
            },
        )
        .unwrap();
    let refused = o1.sync();
    assert!(
        matches!(&refused, Err(Error::Rejected { reason }) if reason.contains("role its author acts in")),
        "{refused:?}"
    );
    assert_eq!(
        server
            .admin()
            .documents()
            .case(&case)
            .unwrap()
            .history
            .len(),
        1
    );
}

#[test]
fn a_report_moved_before_its_first_push_is_accepted_whole() {
    let server = TestServer::start();
    let mut sv = Device::enroll(&server.url, &server.code_for("supervisor-1"), "sv");
    sv.sync().unwrap();
    // Offline: a 12345 call filed, accepted and dispatched at once.
    let case = sv
        .store
        .report_case(NewCase {
            source: CaseSource::Hotline,
            category: "0504".into(),
            location: GeoPoint::new(39.8661, 116.3451),
            shop_id: None,
            photos: vec![],
            description: "市民来电：早点摊占道".into(),
            deadline: None,
            reported_by: "supervisor-1".into(),
            reported_at: at(1),
            subdistrict: None,
            lane: None,
        })
        .unwrap();
    for to in [CaseStatus::Accepted, CaseStatus::Dispatched] {
        sv.store
            .move_case(
                &case,
                CaseMove {
                    to,
                    by: "supervisor-1".into(),
                    role: Role::Supervisor,
                    at: at(1),
                    note: None,
                    department: Some("zhifa".into()),
                    whistle: Some(Whistle::Urgent),
                },
            )
            .unwrap();
    }
    sv.sync().unwrap();
    let on_server = server.admin().documents().case(&case).unwrap();
    assert_eq!(on_server.status(), CaseStatus::Dispatched);
    assert_eq!(on_server.history.len(), 3);
}
