//! One suite for the `SyncStore` trait, run against every backend (today the
//! embedded SQLite one; a PostgreSQL backend adds one line at the bottom).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chrono::{Duration, TimeZone, Utc};
use menqian_core::{DocChange, Role, ShopPatch, Store, StoreConfig, Writer};
use menqian_sync_server::store::StoreError;
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

fn user(id: &str, role: Role) -> User {
    User {
        id: id.into(),
        name: "测试".into(),
        role,
        area: "丰台区".into(),
    }
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
        s.pull(&who, 0, 100).unwrap().changes.len(),
        0,
        "a refused push applies nothing"
    );
    let first = s.push(&writer, &changes, now()).unwrap();
    assert_eq!((first.applied, first.duplicates), (2, 0));
    let again = s.push(&writer, &changes, now()).unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 2));
    let page1 = s.pull(&who, 0, 1).unwrap();
    assert_eq!(
        (page1.changes.len(), page1.more, page1.remaining),
        (1, true, 1)
    );
    let page2 = s.pull(&who, page1.cursor, 1).unwrap();
    assert_eq!(
        (page2.changes.len(), page2.more, page2.remaining),
        (1, false, 0)
    );
    assert_eq!([page1.changes, page2.changes].concat(), changes);
    assert!(s.pull(&who, page2.cursor, 10).unwrap().changes.is_empty());

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

#[test]
fn sqlite_backend_conforms() {
    suite(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
        (dir, Box::new(store))
    });
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
        .prepare("SELECT received_at FROM changes ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(times, vec![Some(now().timestamp_millis()); changes.len()]);
}
