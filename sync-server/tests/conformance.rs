//! One suite for the storage traits, run against every backend: the embedded
//! SQLite one, and the accounts on PostgreSQL (a private cluster per test,
//! started and stopped here).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chrono::{Duration, TimeZone, Utc};
use menqian_core::{Area, DocChange, GroupedPush, Role, ShopPatch, Store, StoreConfig, Writer};
use menqian_sync_server::store::postgres::{PgAccounts, PgSyncStore};
use menqian_sync_server::store::{AlertEvent, AlertRecorded, StoreError};
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

mod pg;

/// What keeps a backend's files or server alive while a suite runs.
type Guard = Box<dyn std::any::Any>;

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

fn suite(make: &dyn Fn() -> (Guard, Box<dyn SyncStore>)) {
    // Users: create, list, refuse duplicates and bad ids.
    let (_guard, mut s) = make();
    s.accounts()
        .add_user(&user("officer-1", Role::Officer))
        .unwrap();
    assert!(matches!(
        s.accounts().add_user(&user("officer-1", Role::Steward)),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.accounts().add_user(&user("has space", Role::Officer)),
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(s.accounts().users().unwrap().len(), 1);

    // Enrollment: one-time, expiring codes; actor bound to one device.
    assert!(matches!(
        s.accounts()
            .issue_enrollment("nobody", now(), Duration::hours(1)),
        Err(StoreError::NotFound { .. })
    ));
    let code = s
        .accounts()
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
        .accounts()
        .issue_enrollment("officer-1", now(), Duration::hours(1))
        .unwrap();
    assert!(matches!(
        s.enroll(&late, "abcd", "late", now() + Duration::hours(2)),
        Err(StoreError::Unauthorized(_))
    ));
    let other = s
        .accounts()
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
    let (dev, who) = s.accounts().authenticate(&enrolled.token).unwrap();
    assert_eq!(
        (dev.actor.as_str(), who.role),
        (actor.as_str(), Role::Officer)
    );
    assert!(matches!(
        s.accounts().authenticate("wrong"),
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

    // A group of pushes (group commit): each answered on its own, a refused
    // one applying nothing and holding up none of the others.
    let dir2 = tempfile::tempdir().unwrap();
    let mut device2 = Store::open(dir2.path().join("d.sqlite"), StoreConfig::default()).unwrap();
    let shop = menqian_fixtures::registry(2).unwrap().remove(1);
    device2.create_shop(shop.clone()).unwrap();
    device2
        .update_shop(
            &shop.id(),
            ShopPatch {
                name: Some("又改名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let code2 = s
        .accounts()
        .issue_enrollment("officer-1", now(), Duration::hours(1))
        .unwrap();
    s.enroll(&code2, &device2.actor_id(), "第二台", now())
        .unwrap();
    let writer2 = Writer {
        actor: device2.actor_id(),
        ..writer.clone()
    };
    let changes2 = device2.own_changes_since(0, 10).unwrap().changes;
    // Each merged ahead where the backend lets a reader do it, against the
    // documents before the group: the last two share their documents.
    let reader = s.reader().unwrap();
    let grouped = |w: &Writer, c: &[DocChange]| {
        let mut push = GroupedPush::new(
            menqian_core::decode_pushed(c.to_vec()).unwrap(),
            w.clone(),
            now(),
        );
        if let Some(bases) = reader.push_bases(&push).unwrap() {
            push.premerge(bases);
        }
        push
    };
    let answers = s
        .push_group(vec![
            grouped(
                &Writer {
                    role: Role::Steward,
                    ..writer2.clone()
                },
                &changes2,
            ),
            grouped(&writer, &changes),
            grouped(&writer2, &changes2),
            grouped(&writer2, &changes2),
        ])
        .unwrap();
    let reports: Vec<Option<(usize, usize)>> = answers
        .iter()
        .map(|a| a.as_ref().ok().map(|r| (r.applied, r.duplicates)))
        .collect();
    assert_eq!(
        reports,
        [None, Some((0, 2)), Some((2, 0)), Some((0, 2))],
        "refused, already had, applied, then a duplicate within the group"
    );
    assert!(matches!(
        answers[0],
        Err(StoreError::Core(menqian_core::Error::Refused { .. }))
    ));
    let all = s.pull(&dev, &who, 0, 100).unwrap().changes;
    assert_eq!(all.len(), 4, "every change accepted exactly once");
    assert_eq!(&all[2..], &changes2[..]);

    s.accounts()
        .revoke_device(&enrolled.device_id, now())
        .unwrap();
    assert!(matches!(
        s.accounts().authenticate(&enrolled.token),
        Err(StoreError::Unauthorized(_))
    ));
    assert!(matches!(
        s.accounts().revoke_device("dev-none", now()),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.accounts().devices().unwrap().len(), 2);
}

/// Areas and listings through the trait: what each reader may fetch, the
/// listing only the server writes, and a moved user's devices told to reload.
fn area_suite(make: &dyn Fn() -> (Guard, Box<dyn SyncStore>)) {
    let (_guard, mut s) = make();
    let shops = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS).unwrap();
    s.documents().import_registry(shops.clone()).unwrap();
    s.publish().unwrap();
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
    s.accounts().add_user(&steward).unwrap();
    s.accounts().add_user(&user("admin", Role::Admin)).unwrap();
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
        .accounts()
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
        .accounts()
        .issue_enrollment("steward-1", now(), Duration::hours(1))
        .unwrap();
    let phone = s.enroll(&code, "abcd", "phone", now()).unwrap();
    let (dev, who) = s.accounts().authenticate(&phone.token).unwrap();
    assert!(s.pull(&dev, &who, 0, 10).is_ok());
    let moved = Area::Lanes(vec![menqian_fixtures::DEMO_LANES[1].into()]);
    s.accounts().set_area("steward-1", &moved).unwrap();
    s.accounts().set_area("steward-1", &moved).unwrap();
    let (dev, who) = s.accounts().authenticate(&phone.token).unwrap();
    assert_eq!((who.area.clone(), who.area_epoch), (moved, 1));
    assert!(matches!(
        s.pull(&dev, &who, 0, 10),
        Err(StoreError::AreaChanged(_))
    ));
    let first = s.snapshot(&dev, &who, None, 500).unwrap();
    assert!(first.changes.iter().all(|d| !d.doc_id.starts_with("shop/")));
    let (dev, who) = s.accounts().authenticate(&phone.token).unwrap();
    assert!(s.pull(&dev, &who, first.cursor, 10).is_ok());
    assert!(matches!(
        s.accounts().set_area("nobody", &Area::District),
        Err(StoreError::NotFound { .. })
    ));
}

/// Console passwords and sessions.
fn session_suite(make: &dyn Fn() -> (Guard, Box<dyn SyncStore>)) {
    let (_guard, mut s) = make();
    s.accounts()
        .add_user(&user("sup", Role::Supervisor))
        .unwrap();
    assert_eq!(s.accounts().password_hash("sup").unwrap().1, None);
    assert!(matches!(
        s.accounts().password_hash("nobody"),
        Err(StoreError::NotFound { .. })
    ));
    s.accounts()
        .set_password_hash("sup", Some("$argon2id$stand-in"))
        .unwrap();
    assert_eq!(
        s.accounts().password_hash("sup").unwrap().1.as_deref(),
        Some("$argon2id$stand-in")
    );
    let reader = s.reader().unwrap();
    let one = s
        .accounts()
        .open_session("sup", now(), Duration::hours(12))
        .unwrap();
    let two = s
        .accounts()
        .open_session("sup", now(), Duration::hours(12))
        .unwrap();
    assert_ne!(one.token, two.token);
    assert_ne!(one.csrf, two.csrf);
    assert_eq!(one.expires_at, now() + Duration::hours(12));
    let (who, csrf) = reader
        .accounts()
        .session(&one.token, now())
        .unwrap()
        .unwrap();
    assert_eq!((who.id.as_str(), csrf.as_str()), ("sup", one.csrf.as_str()));
    // Expired at its end; unknown tokens are no one.
    assert!(
        reader
            .accounts()
            .session(&one.token, now() + Duration::hours(12))
            .unwrap()
            .is_none()
    );
    assert!(
        reader
            .accounts()
            .session(&"0".repeat(64), now())
            .unwrap()
            .is_none()
    );
    // Closing ends one session; a new password ends them all.
    s.accounts().close_session(&one.token).unwrap();
    assert!(
        reader
            .accounts()
            .session(&one.token, now())
            .unwrap()
            .is_none()
    );
    assert!(
        reader
            .accounts()
            .session(&two.token, now())
            .unwrap()
            .is_some()
    );
    s.accounts().set_password_hash("sup", None).unwrap();
    assert!(
        reader
            .accounts()
            .session(&two.token, now())
            .unwrap()
            .is_none()
    );
    assert_eq!(s.accounts().password_hash("sup").unwrap().1, None);

    // When a device was last seen: kept, and never moved back.
    s.accounts().add_user(&user("off", Role::Officer)).unwrap();
    let code = s
        .accounts()
        .issue_enrollment("off", now(), Duration::hours(1))
        .unwrap();
    let device = s.enroll(&code, "0a0b", "手机", now()).unwrap().device_id;
    assert_eq!(s.accounts().devices().unwrap()[0].last_seen_ms, None);
    let t = now().timestamp_millis();
    s.accounts().record_seen(&[(device.clone(), t)]).unwrap();
    s.accounts()
        .record_seen(&[(device.clone(), t - 1_000), ("no-such-device".into(), t)])
        .unwrap();
    assert_eq!(s.accounts().devices().unwrap()[0].last_seen_ms, Some(t));
}

/// Alerts, reminders, receipts, stewards' requests and Open311 keys.
fn registry_suite(make: &dyn Fn() -> (Guard, Box<dyn SyncStore>)) {
    let (_guard, mut s) = make();
    let a = s.accounts();
    let secret = a
        .add_alert_source("cam-1", "camera", Some("shop-1"), None, now())
        .unwrap();
    assert_eq!(secret.len(), 64);
    assert!(matches!(
        a.add_alert_source("cam-1", "camera", None, None, now()),
        Err(StoreError::Conflict(_))
    ));
    let source = a.alert_source("cam-1").unwrap().unwrap();
    assert_eq!(
        (
            source.kind.as_str(),
            source.shop_id.as_deref(),
            source.secret
        ),
        ("camera", Some("shop-1"), secret)
    );
    assert_eq!(a.alert_source("cam-2").unwrap(), None);

    let event = |id: &'static str, minutes_later: i64, photo: Option<&'static str>| AlertEvent {
        source: "cam-1",
        alert_id: id,
        shop_id: "shop-1",
        category: "店外经营",
        at: now() + Duration::minutes(minutes_later),
        minutes: 30,
        photo,
    };
    let AlertRecorded::Reminded(first) =
        a.record_alert(&event("e1", 0, Some("p1")), now()).unwrap()
    else {
        panic!("a first alert makes a reminder");
    };
    assert_eq!(first.deadline, now() + Duration::minutes(30));
    assert_eq!(
        a.record_alert(&event("e1", 5, None), now()).unwrap(),
        AlertRecorded::Duplicate
    );
    let AlertRecorded::Again { reminder, due } =
        a.record_alert(&event("e2", 10, Some("p2")), now()).unwrap()
    else {
        panic!("the same problem again is a repeat");
    };
    assert_eq!((reminder.id, reminder.alerts, due), (first.id, 2, false));
    for (i, id) in ["e3", "e4", "e5"].into_iter().enumerate() {
        let photo = ["p3", "p2", "p4"][i];
        a.record_alert(&event(id, 20 + i as i64, Some(photo)), now())
            .unwrap();
    }
    let AlertRecorded::Again { due, .. } = a.record_alert(&event("e6", 31, None), now()).unwrap()
    else {
        panic!("a repeat");
    };
    assert!(due, "seen again after its deadline");
    assert_eq!(a.reminder_photos(first.id).unwrap(), ["p3", "p2", "p4"]);
    assert_eq!(a.reminders_of("shop-1", now()).unwrap().len(), 1);
    a.set_reminder_case(first.id, "case-1").unwrap();
    assert!(a.reminders_of("shop-1", now()).unwrap().is_empty());
    assert!(matches!(
        a.record_alert(&event("e7", 40, None), now()).unwrap(),
        AlertRecorded::Reminded(r) if r.id != first.id
    ));
    assert_eq!(a.reminder_count().unwrap(), 2);

    // Receipts: the token leads to the case; phone numbers for staff only.
    let t1 = a.add_receipt("case-1", Some("13800000000"), now()).unwrap();
    let t2 = a.add_receipt("case-1", None, now()).unwrap();
    assert_ne!(t1, t2);
    assert_eq!(a.receipt(&t1).unwrap().as_deref(), Some("case-1"));
    assert_eq!(a.receipt("nope").unwrap(), None);
    assert_eq!(a.receipt_phones("case-1").unwrap(), ["13800000000"]);

    // A steward's request, approved once into a user of that lane.
    let req = a
        .add_steward_request("梧桐巷", "李阿姨", "13900000000", now())
        .unwrap();
    assert_eq!(a.steward_requests().unwrap()[0].user_id, None);
    let user = a.approve_steward(req, "steward-li").unwrap();
    assert_eq!(
        (user.role, user.area.to_string()),
        (Role::Steward, "lanes:梧桐巷".to_string())
    );
    assert!(matches!(
        a.approve_steward(req, "steward-li2"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        a.approve_steward(req + 100, "x"),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        a.steward_requests().unwrap()[0].user_id.as_deref(),
        Some("steward-li")
    );

    // Open311 keys: only the named client's key works.
    let key = a.add_open311_key("12345热线", now()).unwrap();
    assert_eq!(
        a.open311_client(&key).unwrap().as_deref(),
        Some("12345热线")
    );
    assert_eq!(a.open311_client("other").unwrap(), None);

    // Who a token belongs to changes the version a reader's remembered
    // authentications are checked against.
    let reader = a.reader().unwrap();
    let before = reader.accounts_version().unwrap();
    a.add_user(&user_of("off-9")).unwrap();
    let code = a
        .issue_enrollment("off-9", now(), Duration::hours(1))
        .unwrap();
    let device = s.enroll(&code, "0c0d", "手机", now()).unwrap().device_id;
    let a = s.accounts();
    let enrolled = reader.accounts_version().unwrap();
    assert_ne!(before, enrolled);
    a.revoke_device(&device, now()).unwrap();
    assert_ne!(enrolled, reader.accounts_version().unwrap());
    // Uploads: a device may upload what its records refer to, once allowed.
    assert!(!a.may_upload(&device, "h1").unwrap());
    a.allow_uploads("0c0d", &["h1".into(), "h1".into()])
        .unwrap();
    a.allow_uploads("0c0d", &["h1".into()]).unwrap();
    assert!(a.may_upload(&device, "h1").unwrap());
    // A group's grants at once: each device only its own; an actor bound to
    // no device is granted nothing.
    a.allow_uploads_all(&[
        ("0c0d".into(), vec!["h2".into(), "h3".into()]),
        ("0e0f".into(), vec!["h4".into()]),
        ("0c0d".into(), vec![]),
    ])
    .unwrap();
    let may = |h: &str| a.may_upload(&device, h).unwrap();
    assert_eq!([may("h2"), may("h3"), may("h4")], [true, true, false]);
}

fn user_of(id: &str) -> User {
    user(id, Role::Officer)
}

fn sqlite() -> (Guard, Box<dyn SyncStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
    (Box::new(dir), Box::new(store))
}

/// The documents in SQLite, the accounts in a private PostgreSQL cluster.
fn postgres() -> (Guard, Box<dyn SyncStore>) {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let dir = tempfile::tempdir().unwrap();
    let accounts = PgAccounts::open(&url).unwrap();
    let store = SqliteSyncStore::open_with(dir.path(), vec![], Box::new(accounts)).unwrap();
    (Box::new((dir, cluster)), Box::new(store))
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
fn sqlite_backend_conforms_on_alerts_receipts_and_requests() {
    registry_suite(&sqlite);
}

/// The whole station on PostgreSQL: accounts, documents and feed in the
/// database, a read model beside them. One cluster for all four suites, each
/// with its own database.
#[test]
fn postgres_backend_conforms() {
    let cluster = std::rc::Rc::new(pg::PgCluster::start());
    let n = std::cell::Cell::new(0);
    let make = || -> (Guard, Box<dyn SyncStore>) {
        n.set(n.get() + 1);
        let url = cluster.database(&format!("suite{}", n.get()));
        let dir = tempfile::tempdir().unwrap();
        let store = PgSyncStore::open(&url, dir.path(), vec![]).unwrap();
        (Box::new(dir), Box::new(store))
    };
    suite(&make);
    session_suite(&make);
    area_suite(&make);
    registry_suite(&make);
}

/// Instances sharing one database: an alert delivered to several of them at
/// once is recorded once, and a shop's problem makes one reminder.
#[test]
fn postgres_accounts_record_each_alert_once_across_instances() {
    let (guard, _) = postgres();
    let url = {
        let (_, cluster) = guard
            .downcast_ref::<(tempfile::TempDir, pg::PgCluster)>()
            .unwrap();
        cluster.url("menqian")
    };
    let mut first = PgAccounts::open(&url).unwrap();
    use menqian_sync_server::store::{Accounts as _, AccountsRead as _};
    first
        .add_alert_source("cam-1", "camera", Some("shop-1"), None, now())
        .unwrap();
    let outcomes: Vec<AlertRecorded> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                scope.spawn(move || {
                    let mut a = PgAccounts::open(&url).unwrap();
                    (0..50)
                        .map(|i| {
                            let id = format!("e{i}");
                            a.record_alert(
                                &AlertEvent {
                                    source: "cam-1",
                                    alert_id: &id,
                                    shop_id: "shop-1",
                                    category: "占道",
                                    at: now(),
                                    minutes: 30,
                                    photo: None,
                                },
                                now(),
                            )
                            .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let reminded = outcomes
        .iter()
        .filter(|o| matches!(o, AlertRecorded::Reminded(_)))
        .count();
    let again = outcomes
        .iter()
        .filter(|o| matches!(o, AlertRecorded::Again { .. }))
        .count();
    let duplicate = outcomes
        .iter()
        .filter(|o| **o == AlertRecorded::Duplicate)
        .count();
    assert_eq!((reminded, again, duplicate), (1, 49, 150));
    assert_eq!(first.reminder_count().unwrap(), 1);
    assert_eq!(first.reminders_of("shop-1", now()).unwrap()[0].alerts, 50);
}

/// A database migrated by a newer program is refused, not half-used.
#[test]
fn postgres_accounts_refuse_a_newer_schema() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    drop(PgAccounts::open(&url).unwrap());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE schema_version SET version = 99")
        .unwrap();
    let refused = PgAccounts::open(&url).unwrap_err().to_string();
    assert!(refused.contains("99"), "{refused}");
}

#[test]
fn sqlite_backend_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let mut s = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
        s.accounts()
            .add_user(&user("officer-1", Role::Officer))
            .unwrap();
        let code = s
            .accounts()
            .issue_enrollment("officer-1", now(), Duration::hours(1))
            .unwrap();
        s.enroll(&code, "abcd", "phone", now()).unwrap().token
    };
    let s = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
    assert_eq!(
        s.accounts_read().authenticate(&token).unwrap().1.id,
        "officer-1"
    );
}

#[test]
fn sqlite_backend_records_the_server_receive_time_of_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteSyncStore::open(dir.path(), vec![]).unwrap();
    s.accounts()
        .add_user(&user("officer-1", Role::Officer))
        .unwrap();
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

/// Two instances on one database: a device enrolls through one, pushes
/// through the other, and its changes are pulled through the first; both
/// read models end up holding the same documents.
#[test]
fn two_postgres_instances_serve_one_station() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = PgSyncStore::open(&url, dir_a.path(), vec![]).unwrap();
    let mut b = PgSyncStore::open(&url, dir_b.path(), vec![]).unwrap();
    a.documents()
        .import_registry(menqian_fixtures::registry(3).unwrap())
        .unwrap();
    a.publish().unwrap();
    a.accounts()
        .add_user(&user("officer-1", Role::Officer))
        .unwrap();
    let code = a
        .accounts()
        .issue_enrollment("officer-1", now(), Duration::hours(1))
        .unwrap();
    let (_dd, device, changes) = device_with_edit();
    let phone = b.enroll(&code, &device.actor_id(), "手机", now()).unwrap();
    let writer = Writer {
        user: "officer-1".into(),
        role: Role::Officer,
        actor: device.actor_id(),
    };
    let report = b.push(&writer, &changes, now()).unwrap();
    assert_eq!(report.applied, 2);
    // Through the first instance, once it has caught up.
    a.refresh().unwrap();
    let (dev, who) = a.accounts_read().authenticate(&phone.token).unwrap();
    let pulled = a.pull(&dev, &who, 0, 1_000).unwrap();
    for c in &changes {
        assert!(pulled.changes.contains(c), "a change pushed through b");
    }
    assert!(!pulled.more);
    // Where the first left off, the second has nothing more.
    b.refresh().unwrap();
    assert!(
        b.pull(&dev, &who, pulled.cursor, 1_000)
            .unwrap()
            .changes
            .is_empty()
    );
    assert_eq!(
        a.documents().documents_json().unwrap(),
        b.documents().documents_json().unwrap()
    );
    assert_eq!((a.lag().unwrap(), b.lag().unwrap()), (0, 0));
}
