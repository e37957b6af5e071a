//! Property: three replicas doing random offline work and exchanging change
//! feeds in random orders converge to identical documents and identical index
//! tables, and no record made anywhere is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use menqian_core::evidence::photo::sample_jpeg;
use menqian_core::store::Capture;
use menqian_core::*;
use menqian_tests::{fixtures_config, merge_between, shop_pool};
use proptest::prelude::*;

const REPLICAS: usize = 3;
const SHOPS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    CreateShop {
        at: usize,
        shop: usize,
    },
    EditShop {
        at: usize,
        shop: usize,
        field: u8,
        value: u8,
    },
    ReportCase {
        at: usize,
    },
    MoveCase {
        at: usize,
        case: usize,
        status: u8,
    },
    Inspect {
        at: usize,
        shop: usize,
        fail: bool,
    },
    Patrol {
        at: usize,
        points: u8,
        stop: bool,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    prop_oneof![
        (r.clone(), 0..SHOPS).prop_map(|(at, shop)| Op::CreateShop { at, shop }),
        (r.clone(), 0..SHOPS, 0u8..5, any::<u8>()).prop_map(|(at, shop, field, value)| {
            Op::EditShop {
                at,
                shop,
                field,
                value,
            }
        }),
        r.clone().prop_map(|at| Op::ReportCase { at }),
        (r.clone(), 0usize..8, 0u8..6).prop_map(|(at, case, status)| Op::MoveCase {
            at,
            case,
            status
        }),
        (r.clone(), 0..SHOPS, any::<bool>()).prop_map(|(at, shop, fail)| Op::Inspect {
            at,
            shop,
            fail
        }),
        (r.clone(), 1u8..20, any::<bool>()).prop_map(|(at, points, stop)| Op::Patrol {
            at,
            points,
            stop
        }),
        (r.clone(), r).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

struct World {
    _dirs: Vec<tempfile::TempDir>,
    stores: Vec<Store>,
    /// cursors[to][from]: how far `to` has read `from`'s feed.
    cursors: [[u64; REPLICAS]; REPLICAS],
    cases: Vec<String>,
    inspections: Vec<String>,
    patrols: Vec<String>,
    shops: BTreeSet<String>,
    clock: i64,
    /// One photo per replica, taken on first need: failed items refer to it.
    photos: [Option<String>; REPLICAS],
}

impl World {
    fn new() -> World {
        let mut dirs = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..REPLICAS {
            let dir = tempfile::tempdir().unwrap();
            let mut s = Store::open(dir.path().join("r.sqlite"), fixtures_config()).unwrap();
            // Each replica publishes the same reference data on its own: the
            // independent creations must merge too.
            s.import_templates(menqian_fixtures::templates().unwrap())
                .unwrap();
            s.import_categories(menqian_fixtures::categories().unwrap())
                .unwrap();
            dirs.push(dir);
            stores.push(s);
        }
        World {
            _dirs: dirs,
            stores,
            cursors: [[0; REPLICAS]; REPLICAS],
            cases: vec![],
            inspections: vec![],
            patrols: vec![],
            shops: BTreeSet::new(),
            clock: 0,
            photos: Default::default(),
        }
    }

    fn now(&mut self) -> chrono::DateTime<Utc> {
        self.clock += 1;
        Utc.with_ymd_and_hms(2026, 7, 1, 2, 0, 0).unwrap() + Duration::seconds(self.clock)
    }

    fn sync(&mut self, from: usize, to: usize) {
        self.cursors[to][from] = merge_between(&mut self.stores, from, to, self.cursors[to][from]);
    }

    fn apply(&mut self, op: &Op, pool: &[Shop]) {
        match *op {
            Op::CreateShop { at, shop } => {
                let s = &pool[shop];
                if self.stores[at].shop(&s.id()).is_err() {
                    self.stores[at].create_shop(s.clone()).unwrap();
                    self.shops.insert(s.id());
                }
            }
            Op::EditShop {
                at,
                shop,
                field,
                value,
            } => {
                let id = pool[shop].id();
                if self.stores[at].shop(&id).is_err() {
                    return;
                }
                let mut patch = ShopPatch::default();
                match field {
                    0 => patch.name = Some(format!("改名{value}号店")),
                    1 => {
                        patch.contact = Some(Contact {
                            person: format!("联系人{value}"),
                            phone: format!("1380000{value:04}"),
                        })
                    }
                    2 => {
                        patch.add_tags =
                            [[ShopTag::School, ShopTag::Hospital, ShopTag::TransportHub]
                                [value as usize % 3]]
                            .into()
                    }
                    3 => {
                        patch.remove_tags =
                            [[ShopTag::School, ShopTag::Hospital, ShopTag::TransportHub]
                                [value as usize % 3]]
                            .into()
                    }
                    _ => {
                        patch.status = Some(if value % 2 == 0 {
                            ShopStatus::Active
                        } else {
                            ShopStatus::Closed
                        })
                    }
                }
                self.stores[at].update_shop(&id, patch).unwrap();
            }
            Op::ReportCase { at } => {
                let now = self.now();
                let id = self.stores[at]
                    .report_case(NewCase {
                        subdistrict: None,
                        lane: None,
                        source: CaseSource::Steward,
                        category: "0504".into(),
                        location: GeoPoint::new(39.8661, 116.3452),
                        shop_id: None,
                        photos: vec![],
                        description: format!("随手拍 {at}"),
                        deadline: None,
                        reported_by: format!("steward-{at}"),
                        reported_at: now,
                    })
                    .unwrap();
                // A repeat of an open case is linked to it, not filed again.
                if !self.cases.contains(&id) {
                    self.cases.push(id);
                }
            }
            Op::MoveCase { at, case, status } => {
                let Some(id) = self.cases.get(case).cloned() else {
                    return;
                };
                if self.stores[at].case(&id).is_err() {
                    return;
                }
                let status = [
                    CaseStatus::Accepted,
                    CaseStatus::Rejected,
                    CaseStatus::Dispatched,
                    CaseStatus::InProgress,
                    CaseStatus::AwaitingVerification,
                    CaseStatus::Closed,
                ][status as usize];
                let now = self.now();
                // Replica 0 is a supervisor's phone, 1 a lane chief's, 2 an officer's.
                let role = [Role::Supervisor, Role::LaneChief, Role::Officer][at];
                let moved = self.stores[at].move_case(
                    &id,
                    CaseMove {
                        to: status,
                        by: format!("user-{at}"),
                        role,
                        at: now,
                        note: None,
                        department: Some("zhifa".into()),
                        whistle: Some(Whistle::Routine),
                    },
                );
                // A move the workflow does not allow from here is refused, and
                // writes nothing.
                if let Err(e) = moved {
                    assert!(matches!(e, Error::NotAllowed { .. }), "{e}");
                }
            }
            Op::Inspect { at, shop, fail } => {
                let shop_id = pool[shop].id();
                if self.stores[at].shop(&shop_id).is_err() {
                    return;
                }
                let now = self.now();
                let store = &mut self.stores[at];
                let id = store
                    .start_inspection(NewInspection {
                        shop_id,
                        template_id: "beijing-1v5".into(),
                        template_version: None,
                        inspector: format!("officer-{at}"),
                        started_at: now,
                        fix: None,
                    })
                    .unwrap();
                for (i, code) in store.inspection(&id).unwrap().applicable.iter().enumerate() {
                    let outcome = if fail && i == 1 {
                        ItemOutcome::Fail
                    } else {
                        ItemOutcome::Pass
                    };
                    let photos = if outcome == ItemOutcome::Fail {
                        let taken = &mut self.photos[at];
                        if taken.is_none() {
                            let camera = self._dirs[at].path().join("camera.jpg");
                            std::fs::write(&camera, sample_jpeg(64, 48).unwrap()).unwrap();
                            let capture = Capture {
                                at: now,
                                fix: None,
                                taken_by: format!("巡查员{at}"),
                                shop_id: None,
                                place: None,
                            };
                            *taken = Some(store.capture_photo(&camera, capture).unwrap().hash);
                        }
                        taken.iter().cloned().collect()
                    } else {
                        vec![]
                    };
                    store
                        .record_item(
                            &id,
                            code,
                            ItemResult {
                                outcome,
                                note: None,
                                photos,
                            },
                        )
                        .unwrap();
                }
                store
                    .submit_inspection(&id, now + Duration::minutes(1))
                    .unwrap();
                self.inspections.push(id);
            }
            Op::Patrol { at, points, stop } => {
                let start = self.now();
                let store = &mut self.stores[at];
                let id = store.start_patrol(&format!("chief-{at}"), start).unwrap();
                let track: Vec<TrackPoint> = (0..points)
                    .map(|i| TrackPoint {
                        at: start + Duration::seconds(i64::from(i)),
                        lat: 39.866,
                        lon: 116.345 + f64::from(i) * 1e-5,
                        accuracy_m: 4.0,
                    })
                    .collect();
                store.append_track(&id, &track).unwrap();
                if stop {
                    store
                        .stop_patrol(&id, start + Duration::minutes(1))
                        .unwrap();
                }
                self.patrols.push(id);
            }
            Op::Sync { from, to } => self.sync(from, to),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_lose_nothing(ops in prop::collection::vec(op(), 1..40)) {
        let pool = shop_pool(SHOPS);
        let mut w = World::new();
        for op in &ops {
            w.apply(op, &pool);
        }
        // Everyone talks to everyone until nothing new arrives.
        for _ in 0..2 {
            for from in 0..REPLICAS {
                for to in 0..REPLICAS {
                    w.sync(from, to);
                }
            }
        }
        let docs = w.stores[0].documents_json().unwrap();
        let index = w.stores[0].index_snapshot().unwrap();
        for s in &w.stores[1..] {
            prop_assert_eq!(&s.documents_json().unwrap(), &docs);
            prop_assert_eq!(&s.index_snapshot().unwrap(), &index);
        }
        for s in &w.stores {
            for id in &w.shops { prop_assert!(s.shop(id).is_ok()); }
            for id in &w.cases { prop_assert!(s.case(id).is_ok()); }
            for id in &w.inspections { prop_assert!(s.inspection(id).unwrap().is_submitted()); }
            for id in &w.patrols { prop_assert!(s.patrol_track(id).is_ok()); }
        }
        let expected_docs = w.shops.len() + w.cases.len() + w.inspections.len() + w.patrols.len() + 2 + 14;
        prop_assert_eq!(docs.len(), expected_docs);
    }
}
