//! Devices and a real server on 127.0.0.1: offline work merges, every write rule
//! is enforced with nothing applied, and bad requests get clear 4xx answers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use chrono::Utc;
use common::*;
use menqian_client::DeviceSync as _;
use menqian_client::{CancelToken, SyncListener, SyncProgress};
use menqian_core::wire::{self, WireBatch};
use menqian_core::*;

fn shop(n: usize) -> String {
    menqian_fixtures::registry(n + 1).unwrap()[n].id()
}

fn report(d: &mut Device, who: &str) -> String {
    d.store
        .report_case(NewCase {
            subdistrict: None,
            lane: None,
            source: CaseSource::Steward,
            category: "0504".into(),
            location: GeoPoint::new(39.8661, 116.3452),
            shop_id: None,
            photos: vec![],
            description: "店外摆摊".into(),
            deadline: None,
            reported_by: who.into(),
            reported_at: at(1),
        })
        .unwrap()
}

fn rejected(r: Result<impl std::fmt::Debug>, needle: &str) {
    match r {
        Err(Error::Rejected { reason }) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected a rejection mentioning {needle:?}, got {other:?}"),
    }
}

#[test]
fn two_officers_and_a_steward_converge_in_any_order() {
    let server = TestServer::start();
    let mut o1 = Device::enroll(&server.url, &server.code_for("officer-1"), "o1");
    let mut o2 = Device::enroll(&server.url, &server.code_for("officer-2"), "o2");
    let mut st = Device::enroll(&server.url, &server.code_for("steward-1"), "st");
    for d in [&mut o1, &mut o2, &mut st] {
        d.sync().unwrap();
    }
    // Offline: both officers edit the same shop, on the steward's lane; each
    // inspects; the steward reports.
    let target = shop(100);
    o1.store
        .update_shop(
            &target,
            ShopPatch {
                name: Some("一号改名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    o2.store
        .update_shop(
            &target,
            ShopPatch {
                name: Some("二号改名".into()),
                add_tags: [ShopTag::School].into(),
                ..Default::default()
            },
        )
        .unwrap();
    let i1 = inspect(&mut o1, &target, "officer-1", true);
    let i2 = inspect(&mut o2, &shop(1), "officer-2", true);
    let case = report(&mut st, "steward-1");
    // Sync in a scattered order, moving the case in between: the supervisor
    // accepts and dispatches it, an officer starts handling it.
    let mut sv = Device::enroll(&server.url, &server.code_for("supervisor-1"), "sv");
    st.sync().unwrap();
    o2.sync().unwrap();
    sv.sync().unwrap();
    let step = |to, by: &str, role| CaseMove {
        to,
        by: by.into(),
        role,
        at: at(3),
        note: None,
        department: Some("zhifa".into()),
        whistle: Some(Whistle::Routine),
    };
    sv.store
        .move_case(
            &case,
            step(CaseStatus::Accepted, "supervisor-1", Role::Supervisor),
        )
        .unwrap();
    sv.store
        .move_case(
            &case,
            step(CaseStatus::Dispatched, "supervisor-1", Role::Supervisor),
        )
        .unwrap();
    sv.sync().unwrap();
    o1.sync().unwrap();
    o1.store
        .move_case(
            &case,
            step(CaseStatus::InProgress, "officer-1", Role::Officer),
        )
        .unwrap();
    o1.sync().unwrap();
    o2.sync().unwrap();
    for d in [&mut st, &mut o1, &mut o2] {
        d.sync().unwrap();
    }
    for (d, user) in [(&o1, "officer-1"), (&o2, "officer-2")] {
        assert!(
            d.store.documents_json().unwrap() == server.documents_for(user),
            "an officer's phone differs from what the server holds for them"
        );
    }
    assert!(
        st.store.documents_json().unwrap() == server.documents_for("steward-1"),
        "the steward's phone differs from what a steward may see"
    );
    assert_eq!(
        o1.store.index_snapshot().unwrap(),
        o2.store.index_snapshot().unwrap()
    );
    let merged = st.store.shop(&target).unwrap();
    assert!(merged.tags.contains(&ShopTag::School));
    let moved = st.store.case(&case).unwrap();
    assert_eq!(moved.history.len(), 4);
    assert_eq!(moved.status(), CaseStatus::InProgress);
    // Inspections reach the officers, not the steward.
    assert!(
        o2.store.inspection(&i1).unwrap().is_submitted()
            && o1.store.inspection(&i2).unwrap().is_submitted()
    );
    assert!(st.store.inspection(&i1).is_err());
}

#[test]
fn a_steward_may_not_touch_the_registry_or_inspections() {
    let server = TestServer::start();
    let mut st = Device::enroll(&server.url, &server.code_for("steward-1"), "st");
    st.sync().unwrap();
    let before = server.documents();
    // A steward's phone holds listings, not shops; a new shop is still a
    // registry change the server must refuse.
    let unregistered = menqian_fixtures::registry(122).unwrap().remove(121);
    st.store.create_shop(unregistered).unwrap();
    rejected(st.sync(), "may not change the shop registry");
    assert_eq!(server.documents(), before);
    assert_eq!(
        st.store.sync_cursors().unwrap().pushed,
        0,
        "nothing was marked pushed"
    );

    let mut st2 = Device::enroll(&server.url, &server.code_for("steward-1"), "st2");
    st2.sync().unwrap();
    inspect(&mut st2, &shop(100), "steward-1", false);
    rejected(st2.sync(), "a steward may not write inspections");
    assert_eq!(server.documents(), before);
}

#[test]
fn nobody_changes_a_submitted_inspection_or_writes_as_someone_else() {
    let server = TestServer::start();
    let mut a = Device::enroll(&server.url, &server.code_for("officer-1"), "a");
    let mut b = Device::enroll(&server.url, &server.code_for("officer-1"), "b");
    let mut o2 = Device::enroll(&server.url, &server.code_for("officer-2"), "o2");
    a.sync().unwrap();
    let id = inspect(&mut a, &shop(0), "officer-1", false);
    a.sync().unwrap();
    b.sync().unwrap();
    // a finishes and submits; b, offline, still edits the open copy.
    common::pass_every_item(&mut a.store, &id);
    a.store.submit_inspection(&id, at(2)).unwrap();
    a.sync().unwrap();
    b.store
        .record_item(
            &id,
            "BJ-01",
            ItemResult {
                outcome: ItemOutcome::Fail,
                note: None,
                photos: vec![],
            },
        )
        .unwrap();
    let before = server.documents();
    rejected(b.sync(), "submitted");
    assert_eq!(server.documents(), before);

    // officer-2 files an inspection in officer-1's name.
    o2.sync().unwrap();
    inspect(&mut o2, &shop(2), "officer-1", false);
    rejected(o2.sync(), "only by its inspector");
    assert_eq!(server.documents(), before);
}

#[test]
fn changes_from_an_actor_not_bound_to_the_device_are_refused() {
    let server = TestServer::start();
    let o1 = Device::enroll(&server.url, &server.code_for("officer-1"), "o1");
    let token = server.token_for("officer-2");
    // A store whose actor was never enrolled makes a change; o2's token carries it.
    let dir = tempfile::tempdir().unwrap();
    let mut stranger = Store::open(dir.path().join("s.sqlite"), StoreConfig::default()).unwrap();
    stranger.merge_from(&o1.store, 0).unwrap();
    let mut s = menqian_fixtures::registry(1).unwrap().remove(0);
    s.code = ShopCode::new(110106, 900_001).unwrap().to_string();
    stranger.create_shop(s).unwrap();
    let body = wire::encode(&WireBatch {
        changes: stranger.own_changes_since(0, 10).unwrap().changes,
        ..Default::default()
    })
    .unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/push", server.url))
        .bearer_auth(&token)
        .header("content-type", wire::CONTENT_TYPE)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let json: serde_json::Value = r.json().unwrap();
    assert_eq!(json["error"], "refused");
    assert_eq!(json["change"], 0);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("actor not bound")
    );
}

#[test]
fn a_revoked_device_is_refused_and_keeps_its_work() {
    let server = TestServer::start();
    let mut d = Device::enroll(&server.url, &server.code_for("officer-1"), "d");
    d.sync().unwrap();
    let case = report(&mut d, "officer-1");
    server
        .admin()
        .accounts()
        .revoke_device(&d.device_id, Utc::now())
        .unwrap();
    assert!(matches!(d.sync(), Err(Error::Unauthorized { .. })));
    assert!(
        d.store.case(&case).is_ok(),
        "the unsynced report is still on the phone"
    );
    let mut again = Device::enroll(&server.url, &server.code_for("officer-1"), "d-new");
    again.sync().unwrap();
    assert!(
        again.store.case(&case).is_err(),
        "it never reached the server"
    );
}

/// A device that asks for views gets each document's view beside it; one
/// that does not (an app from before views) gets the pages it always did.
#[test]
fn snapshot_pages_carry_views_only_when_asked() {
    let server = TestServer::start();
    let token = server.token_for("officer-1");
    let http = reqwest::blocking::Client::new();
    let page = |query: &str| {
        let r = http
            .get(format!("{}/v1/snapshot?limit=50{query}", server.url))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.bytes().unwrap().to_vec()
    };
    let plain = page("");
    assert_eq!(&plain[..4], wire::MAGIC);
    let plain = wire::decode(&plain).unwrap();
    assert!(plain.views.is_empty());
    let viewed = page("&views=1");
    assert_eq!(&viewed[..4], wire::MAGIC_VIEWS);
    let viewed = wire::decode(&viewed).unwrap();
    assert_eq!(viewed.changes, plain.changes);
    assert_eq!(viewed.views.len(), viewed.changes.len());
    for (doc, view) in viewed.changes.iter().zip(&viewed.views) {
        let view = view.as_deref().unwrap();
        assert!(view.starts_with('{'), "{}: {view}", doc.doc_id);
    }
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_stays_up() {
    let server = TestServer::start();
    let d = Device::enroll(&server.url, &server.code_for("officer-1"), "d");
    let token = server.token_for("officer-2");
    // No pooled connections: after a 413 the server closes the connection
    // without reading the rest of the body, as it should.
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let push = |body: Vec<u8>, ctype: &str, auth: Option<&str>| {
        let mut r = http
            .post(format!("{}/v1/push", server.url))
            .header("content-type", ctype)
            .body(body);
        if let Some(t) = auth {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let (s, body) = push(b"garbage".to_vec(), wire::CONTENT_TYPE, Some(&token));
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("bad_batch"));
    let valid = wire::encode(&WireBatch::default()).unwrap();
    let mut truncated = wire::encode(&WireBatch {
        changes: vec![DocChange {
            doc_id: shop(0),
            bytes: vec![1; 100],
        }],
        ..Default::default()
    })
    .unwrap();
    truncated.truncate(truncated.len() - 10);
    assert_eq!(push(truncated, wire::CONTENT_TYPE, Some(&token)).0, 400);
    let corrupt = wire::encode(&WireBatch {
        changes: vec![DocChange {
            doc_id: shop(0),
            bytes: vec![1; 100],
        }],
        ..Default::default()
    })
    .unwrap();
    let (s, body) = push(corrupt, wire::CONTENT_TYPE, Some(&token));
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("bad_change"));
    // Views travel only from the station, in snapshot pages.
    let with_views = wire::encode(&WireBatch {
        changes: vec![DocChange {
            doc_id: shop(0),
            bytes: vec![1; 100],
        }],
        views: vec![Some("{}".into())],
        ..Default::default()
    })
    .unwrap();
    let (s, body) = push(with_views, wire::CONTENT_TYPE, Some(&token));
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("bad_batch"), "{body}");
    let (s, body) = push(valid.clone(), "application/json", Some(&token));
    assert_eq!(s, 415, "{body}");
    assert_eq!(push(valid.clone(), wire::CONTENT_TYPE, None).0, 401);
    assert_eq!(
        push(valid.clone(), wire::CONTENT_TYPE, Some("not-a-token")).0,
        401
    );
    assert_eq!(push(valid, wire::CONTENT_TYPE, Some(&token)).0, 200);
    // Refused from its Content-Length, before the body is read: the client
    // sees 413, or, if it was still writing the body when the station
    // closed the connection, a broken pipe.
    let big = http
        .post(format!("{}/v1/push", server.url))
        .header("content-type", wire::CONTENT_TYPE)
        .bearer_auth(&token)
        .body(vec![0u8; 17 * 1024 * 1024])
        .send();
    match big {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }

    let enroll = |body: &str, ctype: &str| {
        let r = http
            .post(format!("{}/v1/enroll", server.url))
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(enroll("{not json", "application/json").0, 400);
    assert_eq!(enroll("{}", "application/json").0, 400);
    assert_eq!(
        enroll(
            r#"{"code":"ABCDEFGH","actor":"abcd","device_name":"x"}"#,
            "application/json"
        )
        .0,
        401
    );
    assert_eq!(enroll("code=x", "application/x-www-form-urlencoded").0, 415);
    let r = http
        .get(format!("{}/v1/pull?after=abc", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "bad_query", "{body}");

    assert_eq!(
        http.get(format!("{}/healthz", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok"
    );
    let mut d = d;
    d.sync().unwrap();
}

struct Throwing;

impl SyncListener for Throwing {
    fn on_progress(&self, _: SyncProgress) -> std::result::Result<(), String> {
        Err("the screen went away".into())
    }
}

#[test]
fn a_failing_listener_and_a_cancelled_sync_leave_the_store_sound() {
    let server = TestServer::start();
    let mut d = Device::enroll(&server.url, &server.code_for("officer-1"), "d");
    let cancel = CancelToken::default();
    cancel.cancel();
    assert!(matches!(
        d.store.sync(&d.client, None, &cancel),
        Err(Error::Cancelled)
    ));
    assert_eq!(d.store.sync_cursors().unwrap(), SyncCursors::default());
    let r = d
        .store
        .sync(&d.client, Some(&Throwing), &CancelToken::default())
        .unwrap();
    assert!(r.pulled > 120);
    assert_eq!(
        d.store.documents_json().unwrap(),
        server.documents_for("officer-1")
    );
}

#[test]
fn an_unreachable_server_is_offline_and_work_waits() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("p.sqlite"), StoreConfig::default()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut c = menqian_client::SyncClient::new(&url, Some("t".into())).unwrap();
    c.retry = menqian_client::RetryPolicy {
        attempts: 2,
        first_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(10),
    };
    assert!(matches!(
        store.sync(&c, None, &CancelToken::default()),
        Err(Error::Offline { .. })
    ));
}
