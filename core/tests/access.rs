//! The write rules the sync server enforces, checked directly on a store:
//! each refused batch names its change and applies nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use chrono::{DateTime, Duration, Utc};
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

/// `r` is the refusal of an invalid `field`, its reason holding `needle`.
fn invalid<T: std::fmt::Debug>(r: Result<T>, field: &str, needle: &str) {
    match r {
        Err(Error::InvalidInput { field: f, reason }) => {
            assert_eq!(f, field);
            assert!(reason.contains(needle), "{reason}");
        }
        other => panic!("expected {field} refused ({needle}), got {other:?}"),
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

/// A reader's snapshot, read in small pages, holds exactly the documents
/// the visibility rule lets them see (`visible_ids` over every document),
/// in id order, and each page's count of what is left is right.
fn snapshot_agrees_with_the_rule(store: &Store, reader: &Visibility) {
    let every: Vec<String> = store
        .snapshot_page(None, 1_000_000)
        .unwrap()
        .docs
        .into_iter()
        .map(|d| d.doc_id)
        .collect();
    let refs: Vec<&str> = every.iter().map(String::as_str).collect();
    let allowed = store.visible_ids(&refs, reader).unwrap();
    let expected: Vec<&String> = every.iter().filter(|id| allowed.contains(*id)).collect();
    assert!(
        expected.iter().any(|id| id.starts_with("rules/")),
        "{reader:?}"
    );
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let left = store
            .count_documents_after(after.as_deref(), reader)
            .unwrap();
        assert_eq!(left as usize, expected.len() - got.len(), "{reader:?}");
        let page = store
            .visible_snapshot_page(after.as_deref(), 3, reader)
            .unwrap();
        got.extend(page.docs.iter().map(|d| d.doc_id.clone()));
        after = got.last().cloned();
        if !page.more {
            break;
        }
    }
    let got: Vec<&String> = got.iter().collect();
    assert_eq!(got, expected, "{reader:?}");
}

#[test]
fn a_console_case_list_shows_exactly_what_the_reader_would_sync() {
    let (_dir, mut store) = demo_store();
    let shops = street();
    let at = beijing(2026, 11, 2);
    let laned = shops.iter().find(|s| s.lane.is_some()).unwrap().clone();
    let lane = laned.lane.clone().unwrap();
    let other = shops.iter().find(|s| s.lane != laned.lane).unwrap().clone();
    let mut ids = vec![
        store
            .report_case(doorstep_report(&laned, CaseSource::Citizen, "c-1", at))
            .unwrap(),
        store
            .report_case(doorstep_report(
                &other,
                CaseSource::Steward,
                "steward-9",
                at,
            ))
            .unwrap(),
    ];
    // Reported in another subdistrict with no shop: where it was reported.
    let mut elsewhere = new_case("steward-8");
    elsewhere.subdistrict = Some("别处街道".into());
    elsewhere.lane = Some("别巷".into());
    ids.push(store.report_case(elsewhere).unwrap());

    // An inspection of the laned shop, a patrol of the lane chief's, and
    // every shop's public listing: each kind of document a reader may see.
    store
        .start_inspection(new_inspection(laned.id(), "officer-1", at))
        .unwrap();
    store.start_patrol("c-1", at).unwrap();
    store.publish_rules(DistrictRules::default()).unwrap();
    let shop_ids: Vec<String> = shops.iter().map(|s| s.id()).collect();
    store.publish_listings_of(&shop_ids).unwrap();

    let readers = || {
        vec![
            Visibility::for_reader(Role::Supervisor, "s", &Area::District),
            Visibility::for_reader(
                Role::Supervisor,
                "s",
                &Area::Subdistrict("右安门街道".into()),
            ),
            Visibility::for_reader(Role::Supervisor, "s", &Area::Subdistrict("别处街道".into())),
            Visibility::for_reader(Role::LaneChief, "c-1", &Area::Lanes(vec![lane.clone()])),
            Visibility::for_reader(Role::LaneChief, "c-2", &Area::Lanes(vec!["别巷".into()])),
            Visibility::for_reader(
                Role::Steward,
                "steward-9",
                &Area::Subdistrict("右安门街道".into()),
            ),
        ]
    };
    let check = |store: &Store| -> Vec<Vec<String>> {
        readers()
            .iter()
            .map(|r| {
                let (page, total) = store.case_list(&CaseFilter::default(), r, 0, 100).unwrap();
                let mut listed: Vec<String> = page.into_iter().map(|c| c.id).collect();
                listed.sort();
                let mut synced: Vec<String> = store
                    .visible_documents(&ids, r)
                    .unwrap()
                    .into_iter()
                    .map(|d| d.doc_id)
                    .collect();
                synced.sort();
                assert_eq!(listed, synced, "{r:?}");
                assert_eq!(total, listed.len() as u64, "{r:?}");
                snapshot_agrees_with_the_rule(store, r);
                listed
            })
            .collect()
    };
    let seen = check(&store);
    let sorted = |v: &[&String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(seen[0].len(), 3);
    assert_eq!(seen[1], sorted(&[&ids[0], &ids[1]]));
    assert_eq!(seen[2], sorted(&[&ids[2]]));
    assert_eq!(
        seen[3],
        sorted(&[&ids[0]]),
        "the lane's case and the chief's own"
    );
    assert_eq!(seen[4], sorted(&[&ids[2]]));
    assert_eq!(
        seen[5],
        sorted(&[&ids[1]]),
        "a steward sees their own reports"
    );

    // The shop moves to the other subdistrict and off its lane: its case
    // follows it, for the list as for sync.
    store
        .update_shop(
            &laned.id(),
            ShopPatch {
                subdistrict: Some(Some("别处街道".into())),
                lane: Some(Some("别巷".into())),
                ..ShopPatch::default()
            },
        )
        .unwrap();
    let seen = check(&store);
    assert_eq!(seen[1], sorted(&[&ids[1]]));
    assert_eq!(seen[2], sorted(&[&ids[0], &ids[2]]));
    assert_eq!(seen[3], sorted(&[&ids[0]]), "still the chief's own report");
    assert_eq!(
        seen[4],
        sorted(&[&ids[0], &ids[2]]),
        "now on this chief's lane"
    );
    // The district supervisor's filter by subdistrict agrees.
    let filter = CaseFilter {
        subdistrict: Some("别处街道".into()),
        ..CaseFilter::default()
    };
    let reader = Visibility::for_reader(Role::Supervisor, "s", &Area::District);
    assert_eq!(store.case_count(&filter, &reader).unwrap(), 2);
    // Rebuilt from the documents, the index places every case the same way.
    store.rebuild_index().unwrap();
    assert_eq!(check(&store), seen);
}

/// Two officers' devices, synced with the station, that edited the same
/// shop offline, each a different field (`a` the name, `b` the address);
/// `a` also reported a case.
struct OfflineEdits {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a: Store,
    b: Store,
    shop: String,
    /// Each device's feed head before its edits.
    head_a: u64,
    head_b: u64,
    case: String,
}

fn offline_edits(server: &Store) -> OfflineEdits {
    let (dir_a, mut a) = empty_store();
    let (dir_b, mut b) = empty_store();
    a.merge_from(server, 0).unwrap();
    b.merge_from(server, 0).unwrap();
    let shop = street()[3].id();
    let (head_a, head_b) = (a.feed_head().unwrap(), b.feed_head().unwrap());
    a.update_shop(
        &shop,
        ShopPatch {
            name: Some("甲改的店名".into()),
            ..Default::default()
        },
    )
    .unwrap();
    b.update_shop(
        &shop,
        ShopPatch {
            address: Some("前门大街甲1号".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let case = a.report_case(new_case("officer-1")).unwrap();
    OfflineEdits {
        _dirs: (dir_a, dir_b),
        a,
        b,
        shop,
        head_a,
        head_b,
        case,
    }
}

/// Pushes merged ahead of their group commit (beside the station's writer)
/// come out as if the writer had merged them: a push whose document another
/// push of the group changed first is merged again, and a refusal found
/// ahead is still the writer's answer.
#[test]
fn pushes_merged_ahead_end_as_if_merged_in_their_group() {
    let (_s, mut server) = demo_store();
    let (_c, mut control) = demo_store();
    control.merge_from(&server, 0).unwrap();
    let OfflineEdits {
        a,
        b,
        shop,
        head_a,
        head_b,
        case,
        _dirs,
    } = offline_edits(&server);
    let pushed = [
        (
            made_since(&a, head_a),
            writer(&a, "officer-1", Role::Officer),
        ),
        // A lane chief may not edit the registry: refused, ahead or not.
        (
            made_since(&b, head_b),
            writer(&b, "chief-1", Role::LaneChief),
        ),
        (
            made_since(&b, head_b),
            writer(&b, "officer-2", Role::Officer),
        ),
    ];
    let group: Vec<GroupedPush> = pushed
        .iter()
        .map(|(changes, w)| {
            let mut push = GroupedPush::new(
                decode_pushed(changes.clone()).unwrap(),
                w.clone(),
                Utc::now(),
            );
            // Every push is merged against the documents before the group.
            push.premerge(server.push_bases(&push).unwrap().unwrap());
            push
        })
        .collect();
    let answers = server.apply_group(group).unwrap();
    assert_eq!(counted(&answers), [Some((2, 0)), None, Some((1, 0))]);
    refused(answers.into_iter().nth(1).unwrap(), "shop registry");
    let edited = server.shop(&shop).unwrap();
    assert_eq!(
        (edited.name.as_str(), edited.address.as_str()),
        ("甲改的店名", "前门大街甲1号"),
        "both offline edits merged: the second push was merged again"
    );
    assert!(server.case(&case).is_ok());
    // The same pushes, each merged by the writer, give the same documents
    // and the same index rows.
    for (changes, w) in [&pushed[0], &pushed[2]] {
        control.apply_changes_as(changes, w, Utc::now()).unwrap();
    }
    converged(&server, &control);
}

/// A push whose stored documents come to more than
/// [`limits::MAX_AHEAD_BYTES`] is not merged ahead ([`Store::push_bases`]
/// reads `None`): the writer merges it in its group, beside pushes that
/// were merged ahead, and both end as if each had been merged alone.
#[test]
fn a_push_over_the_merge_ahead_cap_is_merged_by_the_writer() {
    let (_s, mut server) = demo_store();
    let (_c, mut control) = demo_store();
    control.merge_from(&server, 0).unwrap();
    let (_a, mut a) = empty_store();
    let (_b, mut b) = empty_store();
    a.merge_from(&server, 0).unwrap();
    b.merge_from(&server, 0).unwrap();
    let at = beijing(2026, 7, 1);
    let officer = writer(&a, "officer-1", Role::Officer);
    // Forty-five cases, each with a description of 200,000 random letters,
    // taken as the station's own (a device's text is held to its form's
    // length): stored compressed, about 5 MB of documents.
    let mut seed = 7u64;
    let mut big = Vec::new();
    for place in 0..45 {
        let text: String = (0..200_000)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                char::from(b'a' + ((seed >> 33) % 26) as u8)
            })
            .collect();
        big.extend(described_report(&mut a, place, text).1);
    }
    for store in [&mut server, &mut control] {
        let r = store.apply_changes(&big).unwrap();
        assert_eq!((r.applied, r.duplicates), (90, 0));
    }
    // The subject: those changes again and one new report (over the cap),
    // in a group with another device's report (merged ahead).
    let head = a.feed_head().unwrap();
    let case = a.report_case(apart(45)).unwrap();
    let mut over = big.clone();
    over.extend(made_since(&a, head));
    let head = b.feed_head().unwrap();
    let other = b.report_case(new_case("officer-2")).unwrap();
    let small = made_since(&b, head);
    let over_push = GroupedPush::new(decode_pushed(over.clone()).unwrap(), officer.clone(), at);
    assert!(server.push_bases(&over_push).unwrap().is_none());
    let b_writer = writer(&b, "officer-2", Role::Officer);
    let mut small_push =
        GroupedPush::new(decode_pushed(small.clone()).unwrap(), b_writer.clone(), at);
    small_push.premerge(server.push_bases(&small_push).unwrap().unwrap());
    let answers = server.apply_group(vec![over_push, small_push]).unwrap();
    assert_eq!(counted(&answers), [Some((1, 90)), Some((1, 0))]);
    assert!(server.case(&case).is_ok() && server.case(&other).is_ok());
    // The same pushes, each merged by the writer alone.
    control.apply_changes_as(&over, &officer, at).unwrap();
    control.apply_changes_as(&small, &b_writer, at).unwrap();
    converged(&server, &control);
}

/// A device's text is held to what its form takes (500 characters for a
/// description or a note), however the device made it, counted in
/// characters; text stored before (here the station's own) stands when a
/// device moves the record on.
#[test]
fn text_longer_than_its_form_is_refused_from_a_device() {
    let (_s, mut server) = demo_store();
    let (_a, mut a) = empty_store();
    a.merge_from(&server, 0).unwrap();
    let at = beijing(2026, 7, 1);
    let (over, too_long) = described_report(&mut a, 0, "占".repeat(501));
    let (full, just_fits) = described_report(&mut a, 1, "占".repeat(500));
    let (old, station_made) = described_report(&mut a, 2, "占".repeat(600));
    let officer = writer(&a, "officer-1", Role::Officer);
    invalid(
        server.apply_changes_as(&too_long, &officer, at),
        &format!("{over}.description"),
        "longer than 500 characters",
    );
    assert!(server.case(&over).is_err());
    server.apply_changes_as(&just_fits, &officer, at).unwrap();
    assert_eq!(server.case(&full).unwrap().description, "占".repeat(500));
    // Longer text the station took as its own stands: a supervisor's phone
    // accepts that case with a note.
    server.apply_changes(&station_made).unwrap();
    let (_b, mut b) = empty_store();
    b.merge_from(&server, 0).unwrap();
    let head = b.feed_head().unwrap();
    b.move_case(
        &old,
        CaseMove {
            to: CaseStatus::Accepted,
            by: "supervisor-1".into(),
            role: Role::Supervisor,
            at: at + Duration::minutes(5),
            note: Some("已受理".into()),
            department: None,
            whistle: None,
        },
    )
    .unwrap();
    let supervisor = writer(&b, "supervisor-1", Role::Supervisor);
    server
        .apply_changes_as(&made_since(&b, head), &supervisor, at)
        .unwrap();
    let accepted = server.case(&old).unwrap();
    assert_eq!(accepted.status(), CaseStatus::Accepted);
    assert_eq!(accepted.description.chars().count(), 600);
}

/// A record is bounded as a whole, not only change by change: a modified
/// client that grows its patrol push after push, with lists no form reads,
/// is refused once the record would hold more than `MAX_DOC_OPS`
/// operations, and the station's copy stays as it was. A device's own store
/// holds its edits to the same bound, so it never makes a change the
/// station would refuse for good.
#[test]
fn a_record_grown_past_its_bound_is_refused_from_a_device_and_on_it() {
    use automerge::transaction::Transactable as _;
    let (_s, mut server) = demo_store();
    let (_a, mut a) = empty_store();
    a.merge_from(&server, 0).unwrap();
    let at = beijing(2026, 7, 1);
    let officer = writer(&a, "officer-1", Role::Officer);
    let head = a.feed_head().unwrap();
    let patrol = a.start_patrol("officer-1", at).unwrap();
    let started = made_since(&a, head);
    server.apply_changes_as(&started, &officer, at).unwrap();
    let mut d = automerge::AutoCommit::new()
        .with_actor(automerge::ActorId::try_from(a.actor_id().as_str()).unwrap());
    d.apply_changes(
        started
            .iter()
            .filter(|c| c.doc_id == patrol)
            .map(|c| automerge::Change::from_bytes(c.bytes.clone()).unwrap()),
    )
    .unwrap();
    // 9,000 operations a change (one list, 8,999 numbers), under the bound
    // of one change and of one push.
    let junk: Vec<DocChange> = (0..6)
        .map(|k| {
            let list = d
                .put_object(
                    automerge::ROOT,
                    format!("junk{k}"),
                    automerge::ObjType::List,
                )
                .unwrap();
            d.splice(&list, 0, 0, (0..8_999).map(automerge::ScalarValue::Int))
                .unwrap();
            d.commit();
            DocChange {
                doc_id: patrol.clone(),
                bytes: d.get_last_local_change().unwrap().raw_bytes().to_vec(),
            }
        })
        .collect();
    let r = server.apply_changes_as(&junk[..5], &officer, at).unwrap();
    assert_eq!(r.applied, 5);
    let before = server.counts().unwrap();
    invalid(
        server.apply_changes_as(&junk[5..], &officer, at),
        &patrol,
        "more than 50000: it is full",
    );
    assert_eq!(server.counts().unwrap(), before);
    // On the device: a record past the bound (here taken from elsewhere, as
    // a station's own copy could be) takes no edit of its own.
    a.apply_changes(&junk).unwrap();
    let head = a.feed_head().unwrap();
    let point = TrackPoint {
        at: at + Duration::minutes(1),
        lat: 39.8661,
        lon: 116.3451,
        accuracy_m: 5.0,
    };
    invalid(a.append_track(&patrol, &[point]), &patrol, "it is full");
    assert!(a.patrol_track(&patrol).unwrap().is_empty());
    assert_eq!(a.feed_head().unwrap(), head);
}

/// An officer's report in a place of its own (reports of one place fold
/// into one case).
fn apart(place: u32) -> NewCase {
    NewCase {
        location: GeoPoint::new(39.80 + f64::from(place) * 0.01, 116.30),
        ..new_case("officer-1")
    }
}

/// A modified client's report: made on `device`, then its description set
/// to `text` before it is pushed (one new document, as a phone could send
/// it). The case's id and its two changes.
fn described_report(device: &mut Store, place: u32, text: String) -> (String, Vec<DocChange>) {
    use automerge::transaction::Transactable as _;
    let head = device.feed_head().unwrap();
    let case = device.report_case(apart(place)).unwrap();
    let created = made_since(device, head).remove(0);
    let mut d = automerge::AutoCommit::load(&created.bytes)
        .unwrap()
        .with_actor(automerge::ActorId::try_from(device.actor_id().as_str()).unwrap());
    d.put(automerge::ROOT, "description", text).unwrap();
    d.commit();
    let edited = DocChange {
        doc_id: case.clone(),
        bytes: d.get_last_local_change().unwrap().raw_bytes().to_vec(),
    };
    (case, vec![created, edited])
}

/// A group's answers as (applied, duplicates), `None` for a refusal.
fn counted(answers: &[Result<ApplyReport>]) -> Vec<Option<(usize, usize)>> {
    answers
        .iter()
        .map(|a| a.as_ref().ok().map(|r| (r.applied, r.duplicates)))
        .collect()
}

/// Pushes what `device` made since `head` to `server` as an officer's.
fn push_as(server: &mut Store, device: &Store, head: u64, user: &str, at: DateTime<Utc>) {
    server
        .apply_changes_as(
            &made_since(device, head),
            &writer(device, user, Role::Officer),
            at,
        )
        .unwrap();
}

/// The feed entries and the authority's documents (with their views) for
/// the changes of `authority` after `after` up to `upto`, as a station's
/// read model reads them from PostgreSQL.
fn authority_page(authority: &Store, after: u64, upto: u64) -> (Vec<FeedEntry>, Vec<AuthorityDoc>) {
    let batch = authority.changes_since(after, 100_000).unwrap();
    let changes = &batch.changes[..(upto - after) as usize];
    let entries: Vec<FeedEntry> = decode_changes(changes)
        .unwrap()
        .into_iter()
        .map(|c| FeedEntry {
            received_at: authority.received_at(&c.doc_id).unwrap(),
            hash: c.change.hash().as_ref().to_vec(),
            doc_id: c.doc_id,
        })
        .collect();
    let page = authority.snapshot_page(None, 100_000).unwrap();
    let docs = page
        .docs
        .into_iter()
        .zip(page.views)
        .filter(|(d, _)| entries.iter().any(|e| e.doc_id == d.doc_id))
        .map(|(d, view)| AuthorityDoc {
            doc_id: d.doc_id,
            bytes: d.bytes,
            view,
        })
        .collect();
    (entries, docs)
}

/// A read model that follows the authority's documents (as a city station's
/// instances follow PostgreSQL) ends with the documents and index rows of
/// one that merges every change, even when a page's documents are newer than
/// the page; and its own changes not yet pushed survive a page that brings
/// their document.
#[test]
fn a_read_model_following_documents_ends_as_one_that_merges_every_change() {
    let (_s, mut server) = demo_store();
    let OfflineEdits {
        a,
        mut b,
        shop,
        head_a,
        head_b,
        case,
        _dirs,
    } = offline_edits(&server);
    let received = beijing(2026, 12, 1);
    push_as(&mut server, &a, head_a, "officer-1", received);
    let first = server.feed_head().unwrap();
    push_as(&mut server, &b, head_b, "officer-2", received);
    let head = server.feed_head().unwrap();

    let (_m, mut merging) = empty_store();
    merging
        .apply_pulled(&server.changes_since(0, 100_000).unwrap().changes, head)
        .unwrap();
    let (_f, mut following) = empty_store();
    // The first page's documents are read after the second push: the shop
    // is newer than the page.
    let (entries, docs) = authority_page(&server, 0, first);
    let report = following.follow_authority(&entries, &docs, first).unwrap();
    assert_eq!(report.applied, entries.len());
    assert_eq!(following.shop(&shop).unwrap().address, "前门大街甲1号");
    let (entries, docs) = authority_page(&server, first, head);
    following.follow_authority(&entries, &docs, head).unwrap();
    assert_eq!(following.sync_cursors().unwrap().pulled, head);
    converged(&following, &merging);
    assert_eq!(
        following.received_at(&case).unwrap(),
        Some(received.timestamp_millis()),
        "the read model knows when the authority received the case"
    );

    // The follower's own edit, not pushed yet, and another device's edit
    // of the same shop meanwhile: the page merges, nothing is lost.
    let own = following.feed_head().unwrap();
    following
        .update_shop(
            &shop,
            ShopPatch {
                street: Some("本站改的街".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let head_b = b.feed_head().unwrap();
    b.update_shop(
        &shop,
        ShopPatch {
            name: Some("乙又改的店名".into()),
            ..Default::default()
        },
    )
    .unwrap();
    push_as(&mut server, &b, head_b, "officer-2", received);
    let (entries, docs) = authority_page(&server, head, server.feed_head().unwrap());
    following
        .follow_authority(&entries, &docs, server.feed_head().unwrap())
        .unwrap();
    let merged = following.shop(&shop).unwrap();
    assert_eq!(
        (merged.name.as_str(), merged.street.as_str()),
        ("乙又改的店名", "本站改的街")
    );
    assert_eq!(
        following.own_changes_since(own, 100).unwrap().changes.len(),
        1,
        "the edit still waits to be pushed"
    );
    // A page whose document is missing is refused, and nothing moves.
    let (entries, _) = authority_page(&server, head, server.feed_head().unwrap());
    let before = following.sync_cursors().unwrap();
    assert!(
        following
            .follow_authority(&entries, &[], server.feed_head().unwrap() + 1)
            .is_err()
    );
    assert_eq!(following.sync_cursors().unwrap(), before);
    // A page that repeats changes the follower has is counted as such.
    let (entries, docs) = authority_page(&server, head, server.feed_head().unwrap());
    let again = following
        .follow_authority(&entries, &docs, server.feed_head().unwrap())
        .unwrap();
    assert_eq!((again.applied, again.duplicates), (0, entries.len()));
}
