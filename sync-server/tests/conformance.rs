//! One suite for the `SyncStore` trait, run against every backend (today the
//! embedded SQLite one; a PostgreSQL backend adds one line at the bottom).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chrono::{Duration, TimeZone, Utc};
use menqian_core::{Area, DocChange, Role, ShopPatch, Store, StoreConfig, Writer};
use menqian_sync_server::store::StoreError;
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

fn user(id: &str, role: Role) -> User {
    User::new(id, "测试", role, Area::District)
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 2, 0, 0).unwrap()
}

/// A device store whose first shop edit we can push.
fn device_with_edit() -> (tempfile::TempDir, Store, Vec<DocChange>) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("d.sqlite"), StoreConfig::default()).unwrap();
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    s.create_shop(shop.clone()).unwrap();
    s.update_shop(
        &shop.id(),
        ShopPatch {
            name: Some("改名".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let changes = s.own_changes_since(0, 10).unwrap().changes;
    (dir, s, changes)
}

fn suite(make: &dyn Fn() -> (tempfile::TempDir, Box<dyn SyncStore>)) {
    // Users: create, list, refuse duplicates and bad ids.
    let (_d, mut s) = make();
    s.add_user(&user("officer-1", Role::Officer)).unwrap();
    assert!(matches!(
        s.add_user(&user("officer-1", Role::Steward)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.add_user(&user("has space", Role::Officer)),
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(s.users().unwrap().len(), 1);

    // Enrollment: one-time, expiring codes; actor bound to one device.
    assert!(matches!(
        s.issue_enrollment("nobody", now(), Duration::hours(1)),
        Err(StoreError::NotFound { .. })
    ));
    let code = s
        .issue_enrollment("officer-1", now(), Duration::hours(1))
        .unwrap();
    assert!(matches!(
        s.enroll(&code, "not-hex", "phone", now()),
        Err(StoreError::Invalid { .. })
    ));
    let (_dd, device, changes) = device_with_edit();
    let actor = device.actor_id();
    let enrolled = s
        .enroll(&code.to_lowercase(), &actor, "王伟的手机", now())
        .unwrap();
    assert_eq!(enrolled.user.id, "officer-1");
    assert!(matches!(
        s.enroll(&code, &actor, "again", now()),
        Err(StoreError::Unauthorized(_))
    ));
    let late = s
        .issue_enrollment("officer-1", now(), Duration::hours(1))
        .unwrap();
    assert!(matches!(
        s.enroll(&late, "abcd", "late", now() + Duration::hours(2)),
        Err(StoreError::Unauthorized(_))
    ));
    let other = s
        .issue_enrollment("officer-1", now(), Duration::hours(1))
        .unwrap();
    assert!(matches!(
        s.enroll(&other, &actor, "same actor", now()),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.enroll("NOSUCHCD", "abcd", "x", now()),
        Err(StoreError::Unauthorized(_))
    ));

    // Authentication and revocation.
    let (dev, who) = s.authenticate(&enrolled.token).unwrap();
    assert_eq!(
        (dev.actor.as_str(), who.role),
        (actor.as_str(), Role::Officer)
    );
    assert!(matches!(
        s.authenticate("wrong"),
        Err(StoreError::Unauthorized(_))
    ));

    // Push is all or nothing and idempotent; pull pages in server order.
    let writer = Writer {
        user: "officer-1".into(),
        role: Role::Officer,
        actor: actor.clone(),
    };
    let steward = Writer {
        role: Role::Steward,
        ..writer.clone()
    };
    assert!(s.push(&steward, &changes, now()).is_err());
    assert_eq!(
        s.pull(&dev, &who, 0, 100).unwrap().changes.len(),
        0,
        "a refused push applies nothing"
    );
    let first = s.push(&writer, &changes, now()).unwrap();
    assert_eq!((first.applied, first.duplicates), (2, 0));
    let again = s.push(&writer, &changes, now()).unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 2));
    let page1 = s.pull(&dev, &who, 0, 1).unwrap();
    assert_eq!(
        (page1.changes.len(), page1.more, page1.remaining),
        (1, true, 1)
    );
    let page2 = s.pull(&dev, &who, page1.cursor, 1).unwrap();
    assert_eq!(
        (page2.changes.len(), page2.more, page2.remaining),
        (1, false, 0)
    );
    assert_eq!([page1.changes, page2.changes].concat(), changes);
    assert!(
        s.pull(&dev, &who, page2.cursor, 10)
            .unwrap()
            .changes
            .is_empty()
    );

    s.revoke_device(&enrolled.device_id, now()).unwrap();
    assert!(matches!(
        s.authenticate(&enrolled.token),
        Err(StoreError::Unauthorized(_))
    ));
    assert!(matches!(
        s.revoke_device("dev-none", now()),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.devices().unwrap().len(), 1);
}

/// Areas and listings through the trait: what each reader may fetch, the
/// listing only the server writes, and a moved user's devices told to reload.
fn area_suite(make: &dyn Fn() -> (tempfile::TempDir, Box<dyn SyncStore>)) {
    let (_dir, mut s) = make();
    let shops = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS).unwrap();
    s.documents().import_registry(shops.clone()).unwrap();
    let on_lane = shops
        .iter()
        .find(|x| x.lane.as_deref() == Some(menqian_fixtures::DEMO_LANES[0]))
        .unwrap();
    let steward = User::new(
        "steward-1",
        "张秀英",
        Role::Steward,
        Area::Lanes(vec![menqian_fixtures::DEMO_LANES[0].into()]),
    );
    s.add_user(&steward).unwrap();
    s.add_user(&user("admin", Role::Admin)).unwrap();
    let ask =
        |s: &dyn SyncStore, who: &User, id: String| s.documents_by_id(who, &[id]).unwrap().changes;
    // The steward may fetch the lane shop's listing, never the shop itself.
    let listing = ask(&*s, &steward, on_lane.listing_id());
    assert_eq!(listing.len(), 1);
    assert!(ask(&*s, &steward, on_lane.id()).is_empty());
    assert!(
        ask(&*s, &steward, shops[0].listing_id()).is_empty(),
        "not on the lane"
    );
    let admin = s
        .users()
        .unwrap()
        .into_iter()
        .find(|u| u.id == "admin")
        .unwrap();
    assert!(
        ask(&*s, &admin, on_lane.listing_id()).is_empty(),
        "listings are for stewards"
    );
    assert_eq!(ask(&*s, &admin, on_lane.id()).len(), 1);

    // Nobody else writes a listing, an administrator included.
    let mut doc = automerge::AutoCommit::load(&listing[0].bytes).unwrap();
    let actor = automerge::ActorId::random();
    doc.set_actor(actor.clone());
    automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "name", "假名").unwrap();
    let edit = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let writer = Writer {
        user: "admin".into(),
        role: Role::Admin,
        actor: actor.to_hex_string(),
    };
    let pushed = s.push(
        &writer,
        &[DocChange {
            doc_id: on_lane.listing_id(),
            bytes: edit,
        }],
        now(),
    );
    assert!(
        matches!(&pushed, Err(StoreError::Core(menqian_core::Error::Refused { reason, .. })) if reason.contains("station server")),
        "{pushed:?}"
    );

    // Moving a user to another area makes their devices reload.
    let code = s
        .issue_enrollment("steward-1", now(), Duration::hours(1))
        .unwrap();
    let phone = s.enroll(&code, "abcd", "phone", now()).unwrap();
    let (dev, who) = s.authenticate(&phone.token).unwrap();
    assert!(s.pull(&dev, &who, 0, 10).is_ok());
    let moved = Area::Lanes(vec![menqian_fixtures::DEMO_LANES[1].into()]);
    s.set_area("steward-1", &moved).unwrap();
    s.set_area("steward-1", &moved).unwrap();
    let (dev, who) = s.authenticate(&phone.token).unwrap();
    assert_eq!((who.area.clone(), who.area_epoch), (moved, 1));
    assert!(matches!(
        s.pull(&dev, &who, 0, 10),
        Err(StoreError::AreaChanged(_))
    ));
    let first = s.snapshot(&dev, &who, None, 500).unwrap();
    assert!(first.changes.iter().all(|d| !d.doc_id.starts_with("shop/")));
    let (dev, who) = s.authenticate(&phone.token).unwrap();
    assert!(s.pull(&dev, &who, first.cursor, 10).is_ok());
    assert!(matches!(
        s.set_area("nobody", &Area::District),
        Err(StoreError::NotFound { .. })
    ));
}

/// Console passwords and sessions.
fn session_suite(make: &dyn Fn() -> (tempfile::TempDir, Box<dyn SyncStore>)) {
    let (_dir, mut s) = make();
    s.add_user(&user("sup", Role::Supervisor)).unwrap();
    assert_eq!(s.password_hash("sup").unwrap().1, None);
    assert!(matches!(
        s.password_hash("nobody"),
        Err(StoreError::NotFound { .. })
    ));
    s.set_password_hash("sup", Some("$argon2id$stand-in"))
        .unwrap();
    assert_eq!(
        s.password_hash("sup").unwrap().1.as_deref(),
        Some("$argon2id$stand-in")
    );
    let reader = s.reader().unwrap();
    let one = s.open_session("sup", now(), Duration::hours(12)).unwrap();
    let two = s.open_session("sup", now(), Duration::hours(12)).unwrap();
    assert_ne!(one.token, two.token);
    assert_ne!(one.csrf, two.csrf);
    assert_eq!(one.expires_at, now() + Duration::hours(12));
    let (who, csrf) = reader.session(&one.token, now()).unwrap().unwrap();
    assert_eq!((who.id.as_str(), csrf.as_str()), ("sup", one.csrf.as_str()));
    // Expired at its end; unknown tokens are no one.
    assert!(
        reader
            .session(&one.token, now() + Duration::hours(12))
            .unwrap()
            .is_none()
    );
    assert!(reader.session(&"0".repeat(64), now()).unwrap().is_none());
    // Closing ends one session; a new password ends them all.
    s.close_session(&one.token).unwrap();
    assert!(reader.session(&one.token, now()).unwrap().is_none());
    assert!(reader.session(&two.token, now()).unwrap().is_some());
    s.set_password_hash("sup", None).unwrap();
    assert!(reader.session(&two.token, now()).unwrap().is_none());
    assert_eq!(s.password_hash("sup").unwrap().1, None);

    // When a device was last seen: kept, and never moved back.
    s.add_user(&user("off", Role::Officer)).unwrap();
    let code = s
        .issue_enrollment("off", now(), Duration::hours(1))
        .unwrap();
    let device = s.enroll(&code, "0a0b", "手机", now()).unwrap().device_id;
    assert_eq!(s.devices().unwrap()[0].last_seen_ms, None);
    let t = now().timestamp_millis();
    s.record_seen(&[(device.clone(), t)]).unwrap();
    s.record_seen(&[(device.clone(), t - 1_000), ("no-such-device".into(), t)])
        .unwrap();
    assert_eq!(s.devices().unwrap()[0].last_seen_ms, Some(t));
}

fn sqlite() -> (tempfile::TempDir, Box<dyn SyncStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
    (dir, Box::new(store))
}

#[test]
fn sqlite_backend_conforms() {
    suite(&sqlite);
}

#[test]
fn sqlite_backend_conforms_on_sessions() {
    session_suite(&sqlite);
}

#[test]
fn sqlite_backend_conforms_on_areas() {
    area_suite(&sqlite);
}

#[test]
fn sqlite_backend_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let mut s = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
        s.add_user(&user("officer-1", Role::Officer)).unwrap();
        let code = s
            .issue_enrollment("officer-1", now(), Duration::hours(1))
            .unwrap();
        s.enroll(&code, "abcd", "phone", now()).unwrap().token
    };
    let s = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
    assert_eq!(s.authenticate(&token).unwrap().1.id, "officer-1");
}

#[test]
fn sqlite_backend_records_the_server_receive_time_of_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
    s.add_user(&user("officer-1", Role::Officer)).unwrap();
    let (_dd, device, changes) = device_with_edit();
    let writer = Writer {
        user: "officer-1".into(),
        role: Role::Officer,
        actor: device.actor_id(),
    };
    // Whatever the device clock said, the server records when it accepted each change.
    s.push(&writer, &changes, now()).unwrap();
    drop(s);
    let conn = rusqlite::Connection::open(dir.path().join("station.sqlite")).unwrap();
    let times: Vec<Option<i64>> = conn
        // (The server's own listing changes are made, not received.)
        .prepare("SELECT received_at FROM changes WHERE doc_id NOT LIKE 'pub/%' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(times, vec![Some(now().timestamp_millis()); changes.len()]);
}
