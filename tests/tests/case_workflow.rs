//! Property: concurrent case moves made offline by people in different roles
//! merge, in any exchange order, to the same history and the same status on
//! every device, and that status is one the workflow allows: replaying the
//! merged history, every step that took effect was a move its author's role
//! may make from where the case then stood. No step made anywhere is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chrono::{DateTime, Duration, TimeZone, Utc};
use menqian_core::model::case::{WORKFLOW, may_move, step_allowed};
use menqian_core::*;
use menqian_tests::{fixtures_config, merge_between};
use proptest::prelude::*;

/// A supervisor, a lane chief, an officer and an administrator, each on a phone.
const ROLES: [Role; 4] = [
    Role::Supervisor,
    Role::LaneChief,
    Role::Officer,
    Role::Admin,
];
const TARGETS: [CaseStatus; 6] = [
    CaseStatus::Accepted,
    CaseStatus::Rejected,
    CaseStatus::Dispatched,
    CaseStatus::InProgress,
    CaseStatus::AwaitingVerification,
    CaseStatus::Closed,
];

#[derive(Debug, Clone)]
enum Op {
    Move { at: usize, to: usize },
    Sync { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..ROLES.len(), 0..TARGETS.len()).prop_map(|(at, to)| Op::Move { at, to }),
        2 => (0..ROLES.len(), 0..ROLES.len()).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

struct World {
    _dirs: Vec<tempfile::TempDir>,
    stores: Vec<Store>,
    cursors: Vec<Vec<u64>>,
    case: String,
    clock: i64,
    /// Every step a phone wrote: (by, status, at).
    made: Vec<(String, CaseStatus, DateTime<Utc>)>,
}

impl World {
    fn new() -> World {
        let mut dirs = Vec::new();
        let mut stores: Vec<Store> = Vec::new();
        for _ in ROLES {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(dir.path().join("p.sqlite"), fixtures_config()).unwrap();
            dirs.push(dir);
            stores.push(s);
        }
        stores[0]
            .import_categories(menqian_fixtures::categories().unwrap())
            .unwrap();
        let case = stores[0]
            .report_case(NewCase {
                source: CaseSource::Citizen,
                category: "0504".into(),
                location: GeoPoint::new(39.8661, 116.3452),
                shop_id: None,
                photos: vec![],
                description: "店外经营".into(),
                deadline: None,
                reported_by: "citizen-1".into(),
                reported_at: t0(),
                subdistrict: Some("右安门街道".into()),
                lane: None,
            })
            .unwrap();
        let mut w = World {
            _dirs: dirs,
            stores,
            cursors: vec![vec![0; ROLES.len()]; ROLES.len()],
            case,
            clock: 0,
            made: Vec::new(),
        };
        for to in 1..ROLES.len() {
            w.sync(0, to);
        }
        w
    }

    fn sync(&mut self, from: usize, to: usize) {
        self.cursors[to][from] = merge_between(&mut self.stores, from, to, self.cursors[to][from]);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Sync { from, to } => self.sync(from, to),
            Op::Move { at, to } => {
                self.clock += 1;
                let when = t0() + Duration::minutes(self.clock);
                let to = TARGETS[to];
                let by = format!("{}-{at}", ROLES[at].as_str());
                let before = self.stores[at].case(&self.case).unwrap();
                let from = before.status();
                let result = self.stores[at].move_case(
                    &self.case,
                    CaseMove {
                        to,
                        by: by.clone(),
                        role: ROLES[at],
                        at: when,
                        note: None,
                        department: Some("zhifa".into()),
                        whistle: Some(Whistle::Urgent),
                    },
                );
                // The phone allows exactly the moves the workflow allows from
                // the status it sees.
                assert_eq!(result.is_ok(), may_move(from, to, ROLES[at]), "{result:?}");
                if result.is_ok() {
                    self.made.push((by, to, when));
                } else {
                    assert_eq!(self.stores[at].case(&self.case).unwrap(), before);
                }
            }
        }
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 1, 0, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_moves_converge_to_an_allowed_state(ops in prop::collection::vec(op(), 1..30)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
        }
        for _ in 0..2 {
            for from in 0..ROLES.len() {
                for to in 0..ROLES.len() {
                    w.sync(from, to);
                }
            }
        }
        let case = w.stores[0].case(&w.case).unwrap();
        let replay = case.replay();
        let index = w.stores[0].index_snapshot().unwrap();
        for s in &w.stores[1..] {
            // The same history, status and index rows on every phone.
            prop_assert_eq!(&s.case(&w.case).unwrap(), &case);
            prop_assert_eq!(&s.index_snapshot().unwrap(), &index);
            prop_assert_eq!(s.cases(None, 10).unwrap()[0].status, replay.status);
        }
        // Nothing made anywhere is lost.
        prop_assert_eq!(case.history.len(), w.made.len() + 1);
        for (by, status, at) in &w.made {
            prop_assert!(case.history.iter().any(|s| &s.by == by && s.status == *status && s.at == *at));
        }
        // Replaying: each effective step is an allowed move from the status
        // the effective steps before it reached, and the status is the last.
        let mut state = CaseStatus::Reported;
        for (step, effective) in case.history.iter().zip(&replay.effective).skip(1) {
            prop_assert_eq!(*effective, step_allowed(state, step));
            if *effective {
                state = step.status;
            }
        }
        prop_assert_eq!(state, replay.status);
        prop_assert!(
            state == CaseStatus::Reported || WORKFLOW.iter().any(|(_, t, _)| *t == state)
        );
    }
}
