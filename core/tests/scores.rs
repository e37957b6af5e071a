//! A fixed fortnight on two streets, with the tables it must produce: the
//! rectification ledger and its escalation, weekly and monthly scores, ranks,
//! the red flag and black list, credit grades and stars, stewards' points,
//! and an officer's plan for the next Tuesday.
//!
//! Eight open shops of the demo street; the last four moved to 右安门内大街 so that
//! there are two streets to rank. Week 46 (2026-11-09 … 15) is the scored week:
//!
//! | shop | street | week 46 |
//! | --- | --- | --- |
//! | A | 富义街 | inspected 11-10, all pass |
//! | B | 富义街 | inspected 11-10, all pass; a citizen's report 11-11 |
//! | C | 富义街 | 11-10 fails 店外经营 (same-day rule); re-check passes 11-11 (late) |
//! | D | 富义街 | not inspected |
//! | E | 右安门内大街 | inspected 11-12, all pass |
//! | F | 右安门内大街 | 11-12 fails 牌匾 (7 days): still open, not overdue |
//! | G | 右安门内大街 | 11-12 fails 乱堆物料 (1 day): never re-checked, escalated 11-14 |
//! | H | 右安门内大街 | inspected 11-13, all pass; two stewards report the same 店外经营 |

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test
#![allow(clippy::type_complexity)] // expected tables are tuples

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use menqian_core::model::rules::Department;
use menqian_core::scores::planner::Reason;
use menqian_core::store::ledger::{LedgerState, LedgerStepKind, Scope};
use menqian_core::*;

/// `h`:00 Beijing time on 2026-`m`-`d`.
fn bj(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap() - Duration::hours(8)
}

/// The test district's rules: the defaults with a two-week credit window,
/// short inspection intervals, four stops a day and a black list below 70.
fn rules() -> DistrictRules {
    let mut r = DistrictRules::default();
    r.grades.window_weeks = 2;
    r.grades.interval_days = [5, 3, 2, 1];
    r.planner.daily_stops = 4;
    r.black_list.below = 70;
    r
}

struct Fortnight {
    _dir: tempfile::TempDir,
    store: Store,
    /// Shop ids A–H.
    shops: Vec<String>,
    dir: std::path::PathBuf,
}

impl Fortnight {
    fn id(&self, letter: char) -> String {
        self.shops[(letter as u8 - b'A') as usize].clone()
    }

    fn letter(&self, id: &str) -> char {
        let i = self.shops.iter().position(|s| s == id).unwrap();
        (b'A' + i as u8) as char
    }

    /// Inspects shop `letter` at `at`, failing `fails`; submitted 5 minutes later.
    fn inspect(&mut self, letter: char, at: DateTime<Utc>, fails: &[&str]) -> String {
        let shop_id = self.id(letter);
        let id = self
            .store
            .start_inspection(new_inspection(shop_id, "officer-1", at))
            .unwrap();
        for code in self.store.inspection(&id).unwrap().applicable {
            let fail = fails.contains(&code.as_str());
            let photos = if fail {
                vec![photo(&mut self.store, &self.dir, "王伟")]
            } else {
                vec![]
            };
            let outcome = if fail {
                ItemOutcome::Fail
            } else {
                ItemOutcome::Pass
            };
            self.store
                .record_item(
                    &id,
                    &code,
                    ItemResult {
                        outcome,
                        note: None,
                        photos,
                    },
                )
                .unwrap();
        }
        self.store
            .submit_inspection(&id, at + Duration::minutes(5))
            .unwrap();
        id
    }

    fn report(&mut self, letter: char, source: CaseSource, by: &str, at: DateTime<Utc>) -> Filed {
        let shop = self.store.shop(&self.id(letter)).unwrap();
        self.store
            .file_report(doorstep_report(&shop, source, by, at))
            .unwrap()
    }

    fn step(&mut self, case: &str, to: CaseStatus, by: &str, role: Role, at: DateTime<Utc>) {
        self.store
            .move_case(
                case,
                CaseMove {
                    to,
                    by: by.into(),
                    role,
                    at,
                    note: None,
                    department: Some("zhifa".into()),
                    whistle: Some(Whistle::Urgent),
                },
            )
            .unwrap();
    }
}

fn fortnight() -> Fortnight {
    let (dir, mut store) = empty_store();
    store.import_templates(templates()).unwrap();
    store.import_categories(categories()).unwrap();
    // Closed shops are not scored or planned: take eight open ones.
    let mut shops: Vec<Shop> = street()
        .into_iter()
        .filter(|s| s.status == ShopStatus::Active)
        .take(8)
        .collect();
    for s in &mut shops[4..] {
        s.street = "右安门内大街".into();
    }
    shops.sort_by(|a, b| a.code.cmp(&b.code));
    let ids = shops.iter().map(|s| s.id()).collect();
    store.import_registry(shops).unwrap();
    store.publish_rules(rules()).unwrap();
    let path = dir.path().to_path_buf();
    let mut f = Fortnight {
        _dir: dir,
        store,
        shops: ids,
        dir: path,
    };
    f.inspect('A', bj(11, 10, 9), &[]);
    f.inspect('B', bj(11, 10, 10), &[]);
    f.report('B', CaseSource::Citizen, "citizen-1", bj(11, 11, 15));
    f.inspect('C', bj(11, 10, 11), &["BJ-04"]);
    f.inspect('C', bj(11, 11, 9), &[]);
    f.inspect('E', bj(11, 12, 9), &[]);
    f.inspect('F', bj(11, 12, 10), &["BJ-05"]);
    f.inspect('G', bj(11, 12, 11), &["BJ-03"]);
    f.inspect('H', bj(11, 13, 9), &[]);
    let first = f.report('H', CaseSource::Steward, "steward-1", bj(11, 13, 10));
    assert!(!first.linked);
    // Phones do not file escalations: the district platform makes them.
    let forged = f.store.file_report(NewCase {
        source: CaseSource::Rectification,
        category: "0504".into(),
        location: GeoPoint::new(39.8661, 116.3451),
        shop_id: None,
        photos: vec![],
        description: "伪造".into(),
        deadline: None,
        reported_by: "officer-1".into(),
        reported_at: bj(11, 13, 10),
        subdistrict: None,
        lane: None,
    });
    assert!(matches!(forged, Err(Error::InvalidInput { field, .. }) if field == "source"));
    // Same shop, same category, an hour later: linked to the open case.
    let second = f.report('H', CaseSource::Steward, "steward-2", bj(11, 13, 11));
    assert_eq!(
        second,
        Filed {
            case_id: first.case_id.clone(),
            linked: true
        }
    );
    let case = first.case_id;
    f.step(
        &case,
        CaseStatus::Accepted,
        "supervisor-1",
        Role::Supervisor,
        bj(11, 13, 12),
    );
    f.step(
        &case,
        CaseStatus::Dispatched,
        "supervisor-1",
        Role::Supervisor,
        bj(11, 13, 12),
    );
    f.step(
        &case,
        CaseStatus::InProgress,
        "officer-2",
        Role::Officer,
        bj(11, 13, 14),
    );
    f.step(
        &case,
        CaseStatus::AwaitingVerification,
        "officer-2",
        Role::Officer,
        bj(11, 13, 15),
    );
    f.step(
        &case,
        CaseStatus::Closed,
        "supervisor-1",
        Role::Supervisor,
        bj(11, 14, 9),
    );
    f
}

#[test]
fn the_ledger_opens_rechecks_and_escalates() {
    let mut f = fortnight();
    let before = f
        .store
        .rectification_ledger(Scope::All, bj(11, 14, 10))
        .unwrap();
    let table: Vec<(char, &str, LedgerState, DateTime<Utc>, Option<bool>)> = before
        .iter()
        .map(|i| {
            (
                f.letter(&i.shop_id),
                i.item.as_str(),
                i.state,
                i.deadline,
                i.on_time(),
            )
        })
        .collect();
    let mut expected = vec![
        // 店外经营: the same day; put right the next morning, late.
        (
            'C',
            "BJ-04",
            LedgerState::Closed,
            bj(11, 11, 0),
            Some(false),
        ),
        // 牌匾: seven days after the day of the failure.
        ('F', "BJ-05", LedgerState::Open, bj(11, 20, 0), None),
        // 乱堆物料: one day; past it and not yet escalated.
        ('G', "BJ-03", LedgerState::Overdue, bj(11, 14, 0), None),
    ];
    expected.sort_by_key(|e| f.id(e.0));
    assert_eq!(table, expected);
    let c = before.iter().find(|i| i.item == "BJ-04").unwrap();
    let kinds: Vec<_> = c.steps.iter().map(|s| (s.kind, s.by.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (LedgerStepKind::Opened, "officer-1"),
            (LedgerStepKind::Overdue, "system"),
            (LedgerStepKind::Closed, "officer-1"),
        ]
    );
    assert_eq!(c.category.as_deref(), Some("0504"));
    assert_eq!(c.photos.len(), 1);

    // The station's sweep escalates G's item into a dispatched district case,
    // and a second sweep changes nothing.
    let swept = f.store.sweep(bj(11, 14, 10), "system").unwrap();
    assert_eq!(swept.escalated.len(), 1);
    assert!(swept.folded.is_empty());
    // F's signboard is the next deadline: until it passes, and while nothing
    // new is stored, another sweep has nothing to do.
    assert_eq!(swept.next_deadline, Some(bj(11, 20, 0)));
    assert!(!f.store.sweep_due(&swept, bj(11, 14, 11)).unwrap());
    assert!(!f.store.sweep_due(&swept, bj(11, 20, 0)).unwrap());
    assert!(f.store.sweep_due(&swept, bj(11, 20, 1)).unwrap());
    let again = f.store.sweep(bj(11, 14, 11), "system").unwrap();
    assert!(again.did_nothing(), "{again:?}");
    assert_eq!(
        again.feed_head, swept.feed_head,
        "a sweep with nothing to do writes nothing"
    );
    let case = f.store.case(&swept.escalated[0]).unwrap();
    assert_eq!(case.source, CaseSource::Rectification);
    assert_eq!(case.shop_id, Some(f.id('G')));
    assert_eq!(case.category, "0107");
    assert_eq!(case.status(), CaseStatus::Dispatched);
    let replay = case.replay();
    let (department, whistle, _) = replay.dispatch.unwrap();
    // 乱堆物料 is 市容环境: the sanitation centre's.
    assert_eq!(
        (department.as_str(), whistle),
        ("huanwei", Whistle::Routine)
    );
    assert_eq!(
        case.photos.len(),
        1,
        "the failing item's photo goes with the case"
    );
    assert_eq!(case.evidence.len(), 1);
    let g = f
        .store
        .rectification_ledger(Scope::Shop(&f.id('G')), bj(11, 14, 10))
        .unwrap();
    assert_eq!(g[0].state, LedgerState::Escalated);
    assert_eq!(g[0].case_id.as_deref(), Some(case.id.as_str()));
    let kinds: Vec<_> = g[0].steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            LedgerStepKind::Opened,
            LedgerStepKind::Overdue,
            LedgerStepKind::Escalated
        ]
    );

    // Anything new stored (here a citizen's report) makes the next sweep due
    // again, deadline or not.
    f.report('A', CaseSource::Citizen, "citizen-1", bj(11, 14, 12));
    assert!(f.store.sweep_due(&swept, bj(11, 14, 13)).unwrap());
}

#[test]
fn week_46_scores_ranks_red_flag_and_black_list() {
    let mut f = fortnight();
    f.store.sweep(bj(11, 14, 10), "system").unwrap();
    let board = f
        .store
        .scoreboard(PeriodKind::Week, bj(11, 12, 12), None, bj(11, 17, 9))
        .unwrap();
    assert_eq!(board.label, "2026-W46");
    let table: Vec<(String, char, u32, u32, u32, u32, u32, u32)> = board
        .ranked
        .iter()
        .map(|r| {
            let s = &r.score;
            (
                s.street.clone(),
                f.letter(&s.shop_id),
                s.score,
                r.rank,
                s.inspections,
                s.reports,
                s.late,
                s.overdue,
            )
        })
        .collect();
    let row = |street: &str, l, score, rank, insp, rep, late, overdue| {
        (street.to_string(), l, score, rank, insp, rep, late, overdue)
    };
    assert_eq!(
        table,
        vec![
            // street, shop, score, rank, inspections, reports, late, overdue
            row("右安门内大街", 'E', 100, 1, 1, 0, 0, 0),
            row("右安门内大街", 'H', 95, 2, 1, 1, 0, 0),
            row("右安门内大街", 'F', 85, 3, 1, 0, 0, 0),
            row("右安门内大街", 'G', 65, 4, 1, 0, 0, 1),
            row("富义街", 'A', 100, 1, 1, 0, 0, 0),
            row("富义街", 'B', 95, 2, 1, 1, 0, 0),
            row("富义街", 'D', 90, 3, 0, 0, 0, 0),
            row("富义街", 'C', 85, 4, 2, 0, 1, 0),
        ]
    );
    let letters = |ids: &[String]| ids.iter().map(|i| f.letter(i)).collect::<String>();
    // Inspected, no report, nothing open, at least 90: one per street here.
    assert_eq!(letters(&board.red_flag), "EA");
    assert_eq!(letters(&board.black_list), "G");

    let month = f
        .store
        .scoreboard(PeriodKind::Month, bj(11, 20, 12), None, bj(11, 30, 9))
        .unwrap();
    assert_eq!(month.label, "2026-11");
    assert!(month.red_flag.is_empty(), "the red flag is weekly");
    let score_of = |l: char| {
        month
            .ranked
            .iter()
            .find(|r| r.score.shop_id == f.id(l))
            .map(|r| r.score.score)
    };
    // G's item is still open at the month's end: overdue.
    assert_eq!(
        ['A', 'C', 'D', 'G'].map(score_of),
        [Some(100), Some(85), Some(90), Some(65)]
    );
}

#[test]
fn credit_grades_stars_and_the_officers_plan() {
    let mut f = fortnight();
    f.store.sweep(bj(11, 14, 10), "system").unwrap();
    let now = bj(11, 17, 9); // Tuesday of week 47
    let standing: Vec<(char, u32, Grade, u8, bool)> = ('A'..='H')
        .map(|l| {
            let s = f.store.standing(&f.id(l), now).unwrap();
            (l, s.credit.score, s.credit.grade, s.credit.stars, s.exempt)
        })
        .collect();
    // Credit: the mean of weeks 45 (nothing: 90 each) and 46.
    assert_eq!(
        standing,
        vec![
            ('A', 95, Grade::A, 5, true),
            ('B', 93, Grade::A, 4, false),
            ('C', 88, Grade::B, 4, false),
            ('D', 90, Grade::B, 4, false),
            ('E', 95, Grade::A, 5, true),
            ('F', 88, Grade::B, 4, false),
            ('G', 78, Grade::C, 3, false),
            ('H', 93, Grade::A, 4, false),
        ]
    );
    // The whole list's credits are each shop's standing.
    let credits = f
        .store
        .credits_in(&menqian_core::Area::District, now)
        .unwrap();
    for l in 'A'..='H' {
        let s = f.store.standing(&f.id(l), now).unwrap();
        assert_eq!(credits.get(&f.id(l)), Some(&s.credit), "{l}");
    }
    let g = f.store.standing(&f.id('G'), now).unwrap();
    assert!(g.credit.escalated);
    assert_eq!(g.open_items, 1);
    let a = f.store.standing(&f.id('A'), now).unwrap();
    assert_eq!(a.last_week.as_ref().map(|r| (r.rank, r.of)), Some((1, 4)));

    // Standing by the street's first shop.
    let at = f.store.shop(&f.id('A')).unwrap().zone.centroid();
    let plan = f.store.plan_day(Some("右安门街道"), at, now).unwrap();
    assert_eq!(plan.date, "2026-11-17");
    // Due: G's re-check (deadline passed), D never inspected, C (B, due 11-14),
    // F (B, due 11-15), B (A, due 11-15). A and E hold the red flag. Four a day.
    let mut chosen: Vec<(char, Reason)> = plan
        .stops
        .iter()
        .map(|s| (f.letter(&s.shop_id), s.reason))
        .collect();
    chosen.sort();
    assert_eq!(
        chosen,
        vec![
            ('C', Reason::Due),
            ('D', Reason::NeverInspected),
            ('F', Reason::Due),
            ('G', Reason::Recheck),
        ]
    );
    assert_eq!(plan.left_for_later, 1);
    let exempt: String = plan.exempt.iter().map(|(id, _)| f.letter(id)).collect();
    assert_eq!(exempt, "AE");
    // The route is the shortest open path from the officer through the stops.
    let stops: Vec<GeoPoint> = plan.stops.iter().map(|s| s.location).collect();
    let best = shortest_path(at, &stops);
    assert!(plan.walk_m <= best + 0.01, "{} vs best {best}", plan.walk_m);
    assert!(plan.walk_m <= plan.nearest_neighbour_m + 1e-9);
    let legs: f64 = plan.stops.iter().map(|s| s.leg_m).sum();
    assert!(
        (legs - plan.walk_m).abs() < 0.5,
        "{legs} vs {}",
        plan.walk_m
    );
}

/// The shortest open path from `start` through every stop, by trying every order.
fn shortest_path(start: GeoPoint, stops: &[GeoPoint]) -> f64 {
    fn go(here: GeoPoint, left: &mut Vec<GeoPoint>) -> f64 {
        if left.is_empty() {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        for i in 0..left.len() {
            let p = left.remove(i);
            best = best.min(model::place::distance_m(here, p) + go(p, left));
            left.insert(i, p);
        }
        best
    }
    go(start, &mut stops.to_vec())
}

#[test]
fn stewards_earn_points_for_valid_reports() {
    let f = fortnight();
    let points: Vec<(String, u32, u32, u32, u32, u32)> = f
        .store
        .steward_points(PeriodKind::Week, bj(11, 13, 0))
        .unwrap()
        .into_iter()
        .map(|s| (s.user, s.reports, s.valid, s.closed, s.linked, s.points))
        .collect();
    assert_eq!(
        points,
        vec![
            // user, reports, valid, closed, linked, points
            ("steward-1".to_string(), 1, 1, 1, 0, 5),
            ("steward-2".to_string(), 1, 0, 0, 1, 1),
        ]
    );
}

#[test]
fn rules_are_validated_and_published_as_data() {
    let (_dir, mut store) = empty_store();
    assert_eq!(store.rules().unwrap(), DistrictRules::default());
    let mut bad = DistrictRules::default();
    bad.departments.clear();
    assert!(matches!(
        store.publish_rules(bad),
        Err(Error::InvalidInput { .. })
    ));
    let bad = DistrictRules {
        stars: [60, 70, 80, 90],
        ..DistrictRules::default()
    };
    assert!(matches!(
        store.publish_rules(bad),
        Err(Error::InvalidInput { .. })
    ));
    let mut mine = DistrictRules::default();
    mine.rectification.days_by_category.insert("0504".into(), 2);
    mine.departments.push(Department {
        code: "jiaotong".into(),
        name: "交通支队".into(),
        categories: vec!["0506".into()],
        groups: vec![],
    });
    store.publish_rules(mine.clone()).unwrap();
    assert_eq!(store.rules().unwrap(), mine);
    assert_eq!(mine.rectification_days(Some("0504")), 2);
    assert_eq!(mine.rectification_days(None), 3);
    assert_eq!(
        mine.department_for(Some("0506"), Some("街面秩序")).code,
        "jiaotong"
    );
    assert_eq!(mine.department_for(Some("0504"), None).code, "zhifa");
    assert_eq!(
        mine.department_for(Some("X"), Some("宣传广告")).code,
        "guanggao"
    );
}
