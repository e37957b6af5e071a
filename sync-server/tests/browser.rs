//! The console in a real browser (issue 14): headless Chromium driven over
//! WebDriver (chromedriver, both from Debian, installed by the test command)
//! against the station binary started as the README starts it (`--demo`).
//! Each test saves screenshots of the pages it visits under
//! `target/screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::time::Duration;

use common::StationProcess;
use common::browser::Browser;
use menqian_core::{Area, Role, Store, StoreConfig, Visibility};

/// The station as the README's main command starts it: the demo street,
/// 28 days of history, the demo's console passwords.
fn demo_station() -> StationProcess {
    StationProcess::start_in(tempfile::tempdir().unwrap(), &["--demo"], None)
}

const SUPERVISOR: (&str, &str) = ("supervisor-1", "menqian-demo-supervisor");
const ADMIN: (&str, &str) = ("admin", "menqian-demo-admin");

/// The station's documents, read beside the running server.
fn documents(station: &StationProcess) -> Store {
    Store::open_reader(
        station.dir.path().join("station.sqlite"),
        StoreConfig::default(),
    )
    .unwrap()
}

fn cell_numbers(b: &Browser, css: &str) -> Vec<u64> {
    let n = b.count(css);
    (1..=n)
        .map(|k| {
            b.text(&format!("{css}:nth-of-type({k})"))
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_supervisor_follows_the_overview_filters_cases_and_dispatches_one_to_a_phone() {
    let station = demo_station();
    let b = Browser::start(&station.url);
    b.go("/console");
    b.shot("login");
    b.sign_in(SUPERVISOR.0, SUPERVISOR.1);

    // 概况: the core's figures for the supervisor's district.
    let expected = documents(&station)
        .overview(&Visibility::Everything, &Area::District, chrono::Utc::now())
        .unwrap();
    let cases = cell_numbers(&b, "#spans td.cases");
    assert_eq!(
        cases,
        expected.spans.iter().map(|s| s.cases).collect::<Vec<_>>()
    );
    assert!(
        expected.spans[2].cases > 0,
        "the demo has reports this month"
    );
    assert_eq!(
        b.text("#open-items").parse::<u64>().unwrap(),
        expected.open_items
    );
    b.shot("overview");

    // A phone files a report; the open overview updates by itself.
    let mut officer =
        common::Device::enroll(&station.url, &station.code_for("officer-1"), "队员的手机");
    officer.sync().unwrap();
    let (street, lane, _) = officer.store.streets().unwrap().remove(0);
    let shop = officer
        .store
        .shops_on(&street, lane.as_deref())
        .unwrap()
        .remove(5);
    let before = b.text("#spans td.cases");
    let case = officer
        .store
        .report_case(menqian_core::NewCase {
            source: menqian_core::CaseSource::Steward,
            category: "0107".into(),
            location: menqian_core::GeoPoint {
                lat: shop.lat,
                lon: shop.lon,
            },
            shop_id: Some(shop.id.clone()),
            photos: vec![],
            description: "门口堆放纸箱".into(),
            deadline: None,
            reported_by: "officer-1".into(),
            reported_at: chrono::Utc::now(),
            subdistrict: None,
            lane: None,
        })
        .unwrap();
    officer.sync().unwrap();
    let expected_today = before.trim().parse::<u64>().unwrap() + 1;
    b.wait_until(
        &format!(
            "return document.querySelector('#spans td.cases').textContent.trim() === '{expected_today}'"
        ),
        Duration::from_secs(20),
    );

    // 案件: filter to 已上报 with the form; the core's count.
    b.open("nav a[href='/console/cases']");
    b.choose("#status", "reported");
    b.open("#filter");
    let reported = menqian_core::CaseFilter {
        status: Some(menqian_core::CaseStatus::Reported),
        ..Default::default()
    };
    let (_, n) = documents(&station)
        .case_list(&reported, &Visibility::Everything, 0, 10)
        .unwrap();
    assert_eq!(b.text("#total").parse::<u64>().unwrap(), n);
    assert!(b.path().contains("status=reported"));
    b.shot("cases");

    // The new report: 受理, then 派遣 to a department with an urgent whistle.
    let key = case.trim_start_matches("case/");
    b.open(&format!("a[href='/console/case/{key}']"));
    b.shot("case");
    b.open("#move-accepted");
    assert!(
        b.text("#status").starts_with("已受理"),
        "{}",
        b.text("#status")
    );
    let department = b.js("return document.querySelector('select[name=department]').value");
    b.click("input[name=whistle][value=urgent]");
    b.fill("input[name=note]", "请尽快清理");
    b.open("#move-dispatched");
    assert!(b.text("#status").starts_with("已派遣"));
    officer.sync().unwrap();
    let on_phone = officer.store.case(&case).unwrap();
    assert_eq!(on_phone.status(), menqian_core::CaseStatus::Dispatched);
    let last = on_phone.history.last().unwrap();
    assert_eq!(
        (last.by.as_str(), last.role),
        ("supervisor-1", Some(Role::Supervisor))
    );
    assert_eq!(last.department.as_deref(), department.as_str());
    assert_eq!(last.whistle, Some(menqian_core::Whistle::Urgent));

    // 整改台账: the core's open items.
    b.open("nav a[href='/console/ledger']");
    let items = documents(&station)
        .open_rectifications_in(&Area::District, chrono::Utc::now())
        .unwrap();
    assert_eq!(b.count("#ledger tbody tr"), items.len());
    b.shot("ledger");

    // 考评: the numbers `report week` prints.
    b.open("nav a[href='/console/rankings']");
    let date = chrono::Utc::now()
        .with_timezone(&menqian_core::model::template::BEIJING)
        .format("%Y-%m-%d")
        .to_string();
    let shown = common::page_rankings(&b.source());
    assert!(!shown.is_empty());
    assert_eq!(shown, common::cli_rankings(&station, "week", &date));
    b.shot("rankings");
}

#[test]
fn the_map_draws_every_demo_shop_and_the_heat_layer() {
    let station = demo_station();
    let b = Browser::start(&station.url);
    b.sign_in(SUPERVISOR.0, SUPERVISOR.1);
    b.open("nav a[href='/console/map']");
    b.wait_until(
        "return document.getElementById('map').dataset.ready === '1'",
        Duration::from_secs(20),
    );
    let docs = documents(&station);
    let shops = docs.shops_in(&Area::District).unwrap().len();
    let data = |k: &str| -> usize {
        b.js(&format!(
            "return document.getElementById('map').dataset.{k}"
        ))
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
    };
    assert_eq!(data("shops"), shops);
    let month = menqian_core::CaseFilter {
        from: Some(chrono::Utc::now() - chrono::Duration::days(30)),
        ..Default::default()
    };
    let (_, reports) = docs
        .case_list(&month, &Visibility::Everything, 0, 1)
        .unwrap();
    assert!(reports > 0);
    assert_eq!(data("heat") as u64, reports);
    // Drawn: shop clusters, and the heat layer's canvas.
    assert!(b.count(".shop-cluster") > 0, "{}", b.source());
    assert_eq!(b.count("canvas.leaflet-heatmap-layer"), 1);
    b.shot("map");
    // An escalated item's case (id `case/rect-…`) opens like any other.
    let escalated = menqian_core::CaseFilter {
        source: Some(menqian_core::CaseSource::Rectification),
        ..Default::default()
    };
    let (rect, n) = docs
        .case_list(&escalated, &Visibility::Everything, 0, 1)
        .unwrap();
    assert!(n > 0, "the demo escalates overdue items");
    b.go(&format!(
        "/console/case/{}",
        rect[0].id.trim_start_matches("case/")
    ));
    // Read once the page is there (a source asked for while the map page
    // was still being left once came back empty).
    b.wait_until(
        "return document.title.startsWith('案件') && document.body.innerText.includes('逾期未整改')",
        Duration::from_secs(10),
    );
}

#[test]
fn a_supervisor_finds_a_shop_and_edits_it_and_a_phone_receives_the_edit() {
    let station = demo_station();
    let mut officer =
        common::Device::enroll(&station.url, &station.code_for("officer-1"), "队员的手机");
    officer.sync().unwrap();
    let b = Browser::start(&station.url);
    b.sign_in(SUPERVISOR.0, SUPERVISOR.1);
    let docs = documents(&station);
    let (street, lane, _) = docs.streets().unwrap().remove(0);
    let shop = docs.shops_on(&street, lane.as_deref()).unwrap().remove(3);
    // Search with two characters of its name (the core's bigram search).
    let part: String = shop.name.chars().take(2).collect();
    b.open("nav a[href='/console/shops']");
    b.fill("#q", &part);
    b.open("#search");
    let found = docs.search_shops_in(&part, &Area::District, 100).unwrap();
    assert_eq!(b.text("#found").parse::<usize>().unwrap(), found.len());
    b.shot("shops");
    b.go(&format!("/console/shop?id={}", shop.id));
    assert_eq!(b.text("#shop-name"), shop.name);
    b.shot("shop");
    // A name with markup is saved and shown as text; no script runs.
    let hostile = "<script>alert(1)</script>";
    b.fill("#name", hostile);
    b.fill("#phone", "010-66668888");
    b.open("#save");
    assert!(b.text("#notice").contains("已保存"));
    assert_eq!(b.text("#shop-name"), hostile);
    assert!(
        b.rt.block_on(b.c().get_alert_text()).is_err(),
        "an alert opened"
    );
    assert!(b.source().contains("&lt;script&gt;") || b.source().contains("&#60;script&#62;"));
    officer.sync().unwrap();
    let on_phone = officer.store.shop(&shop.id).unwrap();
    // A shop with a failed item: its evidence photo's thumbnail loads.
    let with_photo = docs
        .shops_in(&Area::District)
        .unwrap()
        .into_iter()
        .find(|s| {
            docs.inspections_of_shop(&s.id).unwrap().iter().any(|i| {
                let sheet = docs.inspection_sheet(&i.id).unwrap();
                sheet
                    .failed()
                    .any(|l| l.result.as_ref().is_some_and(|r| !r.photos.is_empty()))
            })
        })
        .expect("the demo history fails items that need photos");
    b.go(&format!("/console/shop?id={}", with_photo.id));
    assert!(b.count("#inspections img") > 0);
    b.wait_until(
        "return [...document.querySelectorAll('#inspections img')].every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(10),
    );
    b.shot("shop-photos");
    assert_eq!(on_phone.name, hostile);
    assert_eq!(on_phone.contact.phone, "010-66668888");
}

#[test]
fn an_administrator_creates_a_user_whose_qr_code_enrolls_a_phone_then_revokes_it() {
    let station = demo_station();
    let b = Browser::start(&station.url);
    b.sign_in(ADMIN.0, ADMIN.1);
    b.go("/console/people");
    b.fill("#new-user #id", "officer-7");
    b.fill("#new-user #name", "王七");
    b.choose("#new-user #role", "officer");
    b.open("#create");
    assert!(
        b.source().contains("已新建人员 officer-7"),
        "{}",
        b.source()
    );
    b.open("button[data-code-for='officer-7']");
    b.shot("people");
    // Read the QR code off the screen, as the phone app's camera would.
    let png = b.rt.block_on(b.find("#qr svg").screenshot()).unwrap();
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the page");
    let (_, link) = grids[0].decode().unwrap();
    assert_eq!(link, b.text("#link"));
    let code = url::Url::parse(&link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap();
    assert_eq!(code, b.text("#code"));
    let mut phone = common::Device::enroll(&station.url, &code, "王七的手机");
    phone.sync().unwrap();
    // Revoke it: the phone's next sync is refused.
    b.go("/console/people");
    b.open(&format!("button[data-revoke='{}']", phone.device_id));
    assert!(
        b.source()
            .contains(&format!("已停用设备 {}", phone.device_id))
    );
    // 规则: the rules and the checklists' versions, and a copy to edit.
    b.go("/console/rules");
    assert!(b.count("#versions tbody tr") >= 2);
    b.open("a[data-edit]");
    assert!(b.text("#template").contains("\"items\""));
    b.shot("rules");
    let refused = phone.sync().unwrap_err();
    assert!(
        refused.to_string().contains("401")
            || refused.to_string().to_lowercase().contains("revoked")
            || refused.to_string().contains("unauthor"),
        "{refused}"
    );
}

#[test]
fn a_lane_chief_follows_their_week_and_a_patrols_track() {
    let station = demo_station();
    let b = Browser::start(&station.url);
    b.sign_in("chief-1", "menqian-demo-chief");
    let last_week = chrono::Utc::now() - chrono::Duration::days(7);
    let day = last_week
        .with_timezone(&menqian_core::model::template::BEIJING)
        .format("%Y-%m-%d")
        .to_string();
    b.go(&format!("/console/patrols?week={day}"));
    let week = menqian_core::model::period::Period::week_of(last_week);
    let patrols = documents(&station)
        .patrols_between("chief-1", week.start, week.end)
        .unwrap();
    assert!(
        !patrols.is_empty(),
        "the demo's lane chief patrols three days a week"
    );
    assert_eq!(b.count(".chief"), 1, "a lane chief follows only themself");
    assert_eq!(
        b.text(".chief .patrols").parse::<usize>().unwrap(),
        patrols.len()
    );
    assert_eq!(b.count(".patrol-list tbody tr"), patrols.len());
    b.shot("patrols");
    b.open(".patrol-list tbody tr a");
    b.wait_until(
        "return document.getElementById('patrol-map').dataset.ready === '1'",
        Duration::from_secs(20),
    );
    let features: usize = b
        .js("return document.getElementById('patrol-map').dataset.features")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(features >= 2, "the track and at least one lane: {features}");
    assert!(b.text("#lanes").contains(menqian_fixtures::DEMO_LANES[0]));
    b.shot("patrol");
    // The lane chief's case list holds only their lanes' cases.
    let chief = Visibility::for_reader(
        Role::LaneChief,
        "chief-1",
        &Area::Lanes(vec![menqian_fixtures::DEMO_LANES[0].into()]),
    );
    let (_, theirs) = documents(&station)
        .case_list(&Default::default(), &chief, 0, 1)
        .unwrap();
    b.open("nav a[href='/console/cases']");
    assert_eq!(b.text("#total").parse::<u64>().unwrap(), theirs);
}

#[test]
fn a_signboard_page_reads_on_a_375_px_phone_without_script() {
    let station = demo_station();
    let b = Browser::start(&station.url);
    b.rt.block_on(b.c().set_window_size(375, 812)).unwrap();
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    b.go(&format!("/s/{}", shop.code));
    assert_eq!(b.text("#shop h2"), shop.name);
    let fits = b.js(
        "return document.documentElement.scrollWidth <= window.innerWidth \
         && document.scripts.length === 0",
    );
    assert_eq!(fits, serde_json::json!(true));
    let zone = b.js("return document.querySelector('#zone svg').getBoundingClientRect().width");
    assert!(zone.as_f64().unwrap() > 200.0, "{zone}");
    b.shot("public-shop-375");
    // The report form, photo field included, fits the screen too.
    let form = b.js(
        "const f = document.querySelector('#report form'); f.scrollIntoView(); \
         const p = document.querySelector('#photo'); \
         return f.enctype === 'multipart/form-data' && p.type === 'file' \
         && p.getBoundingClientRect().right <= window.innerWidth \
         && document.documentElement.scrollWidth <= window.innerWidth",
    );
    assert_eq!(form, serde_json::json!(true));
    b.shot("public-shop-375-report");
}
