//! Partial replication against a real server: every role's phone ends with
//! exactly the documents the rules give it (checked against an oracle computed
//! from the documents' JSON, not the server's SQL); a steward's phone never holds
//! a shopkeeper's contact; a shop moving into an area and a user moving to
//! another area both heal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::*;
use menqian_core::*;
use menqian_fixtures::{DEMO_LANES, SUBDISTRICTS};
use menqian_sync_server::{SyncStore, User};

/// Two subdistricts: 右安门街道 (the first 2,043 shops) and a street of 太平桥街道.
const SHOPS: usize = 2_100;

struct World {
    server: TestServer,
    registry: Vec<Shop>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        seed_with(dir.path(), SHOPS);
        let mut admin =
            menqian_sync_server::SqliteSyncStore::open(dir.path(), vec![HOST.into()]).unwrap();
        for (id, role, area) in [
            (
                "officer-3",
                Role::Officer,
                Area::Subdistrict(SUBDISTRICTS[1].into()),
            ),
            (
                "chief-1",
                Role::LaneChief,
                Area::Lanes(vec![DEMO_LANES[1].into()]),
            ),
        ] {
            admin
                .accounts()
                .add_user(&User::new(id, id, role, area))
                .unwrap();
        }
        drop(admin);
        World {
            server: TestServer::start_in(dir),
            registry: menqian_fixtures::registry(SHOPS).unwrap(),
        }
    }

    fn phone(&self, user: &str) -> Device {
        let mut d = Device::enroll(&self.server.url, &self.server.code_for(user), user);
        d.sync().unwrap();
        d
    }

    /// The first shop matching `pick`.
    fn shop(&self, pick: impl Fn(&Shop) -> bool) -> Shop {
        self.registry.iter().find(|s| pick(s)).unwrap().clone()
    }

    fn assert_holds_exactly_its_share(&self, d: &Device, user: &str) {
        let got: Vec<String> = ids(d);
        let want: Vec<String> = self
            .server
            .documents_for(user)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            got, want,
            "{user}'s phone holds other documents than its share"
        );
        assert_eq!(
            d.store.documents_json().unwrap(),
            self.server.documents_for(user),
            "{user}'s documents differ from the server's"
        );
    }
}

fn ids(d: &Device) -> Vec<String> {
    d.store
        .documents_json()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn on_lane(lane: &str) -> impl Fn(&Shop) -> bool + '_ {
    move |s| s.lane.as_deref() == Some(lane)
}

fn in_subdistrict(sub: &str) -> impl Fn(&Shop) -> bool + '_ {
    move |s| s.subdistrict.as_deref() == Some(sub)
}

fn report(d: &mut Device, who: &str, shop_id: Option<String>, location: GeoPoint) -> String {
    d.store
        .report_case(NewCase {
            source: CaseSource::Steward,
            category: "0504".into(),
            location,
            shop_id,
            photos: vec![],
            description: "店外摆摊".into(),
            deadline: None,
            reported_by: who.into(),
            reported_at: at(1),
            subdistrict: None,
            lane: None,
        })
        .unwrap()
}

#[test]
fn every_role_receives_exactly_its_area_and_stewards_only_public_fields() {
    let w = World::new();
    let steward_lane = DEMO_LANES[0];
    let home = w.shop(in_subdistrict(SUBDISTRICTS[0]));
    let lane_shop = w.shop(on_lane(steward_lane));
    let far = w.shop(in_subdistrict(SUBDISTRICTS[1]));

    // Work in both subdistricts and on the steward's lane.
    let mut o1 = w.phone("officer-1");
    let mut o3 = w.phone("officer-3");
    let mut st = w.phone("steward-1");
    inspect(&mut o1, &home.id(), "officer-1", true);
    report(
        &mut o1,
        "officer-1",
        Some(lane_shop.id()),
        lane_shop.zone.centroid(),
    );
    o1.store.start_patrol("officer-1", at(1)).unwrap();
    inspect(&mut o3, &far.id(), "officer-3", true);
    // Away from any shop's door, but near one of 太平桥街道's.
    report(&mut o3, "officer-3", None, far.zone.centroid());
    report(
        &mut st,
        "steward-1",
        Some(lane_shop.id()),
        lane_shop.zone.centroid(),
    );
    for d in [&mut o1, &mut o3, &mut st] {
        d.sync().unwrap();
    }

    let mut phones = vec![
        (o1, "officer-1"),
        (o3, "officer-3"),
        (st, "steward-1"),
        (w.phone("chief-1"), "chief-1"),
        (w.phone("supervisor-1"), "supervisor-1"),
        (w.phone("admin"), "admin"),
    ];
    for (d, _) in &mut phones {
        d.sync().unwrap();
    }
    for (d, user) in &phones {
        w.assert_holds_exactly_its_share(d, user);
    }

    // The shares are what the rules say, not just what the oracle says.
    let count = |user: &str, kind: &str| {
        let d = &phones.iter().find(|(_, u)| *u == user).unwrap().0;
        ids(d).iter().filter(|id| id.starts_with(kind)).count()
    };
    let lane_shops = w
        .registry
        .iter()
        .filter(|s| on_lane(steward_lane)(s))
        .count();
    let home_shops = w
        .registry
        .iter()
        .filter(|s| in_subdistrict(SUBDISTRICTS[0])(s))
        .count();
    assert_eq!(count("steward-1", "pub/"), lane_shops);
    assert_eq!(count("steward-1", "shop/"), 0);
    assert_eq!(count("steward-1", "insp/"), 0);
    assert_eq!(count("officer-1", "shop/"), home_shops);
    assert_eq!(count("officer-3", "shop/"), SHOPS - home_shops);
    assert_eq!(
        (count("officer-1", "case/"), count("officer-3", "case/")),
        (2, 1)
    );
    assert_eq!(count("officer-3", "patrol/"), 0);
    assert_eq!(count("supervisor-1", "shop/"), SHOPS);
    assert_eq!(count("supervisor-1", "patrol/"), 1);
    assert_eq!(count("supervisor-1", "pub/"), 0);
    assert_eq!(count("admin", "case/"), 3);

    // A steward's phone works from listings: scan, search and list by lane,
    // with no contact anywhere in its documents or its index.
    let st = &phones.iter().find(|(_, u)| *u == "steward-1").unwrap().0;
    let scanned = st
        .store
        .scan(&format!("https://{HOST}/s/{}", lane_shop.code))
        .unwrap();
    assert_eq!(scanned.name, lane_shop.name);
    assert!(scanned.contact.is_empty());
    assert_eq!(
        st.store
            .shops_on("富义街", Some(steward_lane))
            .unwrap()
            .len(),
        lane_shops
    );
    for (_, doc) in st.store.documents_json().unwrap() {
        let text = doc.to_string();
        assert!(
            !text.contains("contact"),
            "a steward's document holds a contact: {text}"
        );
        assert!(!text.contains(&lane_shop.contact.phone));
    }
}

#[test]
fn a_shop_moving_into_an_area_arrives_whole() {
    let w = World::new();
    let far = w.shop(in_subdistrict(SUBDISTRICTS[1]));
    let mut admin = w.phone("admin");
    let mut o1 = w.phone("officer-1");
    let mut st = w.phone("steward-1");
    // Its history before the move was never sent to officer-1 or the steward.
    for name in ["改名一", "改名二"] {
        admin
            .store
            .update_shop(
                &far.id(),
                ShopPatch {
                    name: Some(name.into()),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    admin.sync().unwrap();
    o1.sync().unwrap();
    st.sync().unwrap();
    assert!(o1.store.shop(&far.id()).is_err());

    // The district moves it to 右安门街道, onto the steward's lane.
    admin
        .store
        .update_shop(
            &far.id(),
            ShopPatch {
                subdistrict: Some(Some(SUBDISTRICTS[0].into())),
                street: Some("富义街".into()),
                lane: Some(Some(DEMO_LANES[0].into())),
                ..Default::default()
            },
        )
        .unwrap();
    admin.sync().unwrap();
    o1.sync().unwrap();
    st.sync().unwrap();
    assert_eq!(o1.store.shop(&far.id()).unwrap().name, "改名二");
    assert_eq!(st.store.shop(&far.id()).unwrap().name, "改名二");
    w.assert_holds_exactly_its_share(&o1, "officer-1");
    w.assert_holds_exactly_its_share(&st, "steward-1");

    // Later edits arrive as plain changes.
    admin
        .store
        .update_shop(
            &far.id(),
            ShopPatch {
                name: Some("改名三".into()),
                ..Default::default()
            },
        )
        .unwrap();
    admin.sync().unwrap();
    o1.sync().unwrap();
    st.sync().unwrap();
    assert_eq!(st.store.shop(&far.id()).unwrap().name, "改名三");
    w.assert_holds_exactly_its_share(&o1, "officer-1");
}

#[test]
fn a_user_moved_to_another_area_reloads_it_and_keeps_unsynced_work() {
    let w = World::new();
    let mut o3 = w.phone("officer-3");
    let home = w.shop(in_subdistrict(SUBDISTRICTS[0]));
    assert!(o3.store.shop(&home.id()).is_err());
    // Offline work in the old area, not yet pushed.
    let far = w.shop(in_subdistrict(SUBDISTRICTS[1]));
    let inspection = inspect(&mut o3, &far.id(), "officer-3", true);

    w.server
        .admin()
        .accounts()
        .set_area("officer-3", &Area::Subdistrict(SUBDISTRICTS[0].into()))
        .unwrap();
    o3.sync().unwrap();
    // The new area arrived in full; the old one stays on the phone.
    assert_eq!(o3.store.shop(&home.id()).unwrap().name, home.name);
    let mine = ids(&o3);
    for (id, _) in w.server.documents_for("officer-3") {
        assert!(mine.contains(&id), "{id} missing after the move");
    }
    // The offline inspection reached the server.
    let on_server = w.server.documents();
    assert!(on_server.iter().any(|(id, _)| *id == inspection));
    // A second sync has nothing to reload.
    let again = o3.sync().unwrap();
    assert_eq!((again.pushed, again.pulled), (0, 0));
}
