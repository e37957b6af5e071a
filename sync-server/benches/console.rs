//! The console's figures (issue 14), in a release build over loopback:
//!
//!     cargo bench -p menqian-sync-server --bench console
//!
//! The station binary serves a store built once under
//! `target/tmp/bench-data/console-84d`: the 21,728-shop district with 12
//! weeks (84 days) of generated district life (`menqian_fixtures::history`),
//! topped up with citizens' reports to 100,000 cases, then swept. Measured:
//! every page's time from request to last byte (p50/p99/max over 50 requests
//! after 3 warm-ups), the 100,000-case CSV and XLSX exports (time, and the
//! station's peak memory before and after), and the map in headless Chromium
//! (navigation to every shop drawn). `-- build` only builds the store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use menqian_core::{CaseSource, GeoPoint, NewCase, Store};
use menqian_sync_server::{SqliteSyncStore, SyncStore, User};

const CASES: u64 = 100_000;
const DAYS: i64 = 84;
const PASSWORD: &str = "bench-password-2026";

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bench-data")
        .join("console-84d")
}

fn case_count(docs: &Store) -> u64 {
    docs.case_list(
        &Default::default(),
        &menqian_core::Visibility::Everything,
        0,
        1,
    )
    .unwrap()
    .1
}

/// Builds the store once (a marker file says it is whole).
fn build(dir: &Path) {
    if dir.join("built").exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let t = Instant::now();
    let now = Utc::now();
    let district = menqian_fixtures::registry(menqian_fixtures::DISTRICT_SHOPS).unwrap();
    {
        // The station's store as `SqliteSyncStore` opens it, but without a
        // sync to disk per transaction while it is being filled.
        let mut store = Store::open(
            dir.join("station.sqlite"),
            menqian_core::StoreConfig {
                qr_hosts: vec![menqian_fixtures::DEMO_HOST.into()],
                durable: false,
                publish_listings: true,
                ..Default::default()
            },
        )
        .unwrap();
        let docs = &mut store;
        docs.import_templates(menqian_fixtures::templates().unwrap())
            .unwrap();
        docs.import_categories(menqian_fixtures::categories().unwrap())
            .unwrap();
        docs.import_registry(district.clone()).unwrap();
        let photo = menqian_fixtures::demo_photo(docs, now - chrono::Duration::days(DAYS)).unwrap();
        let stats = menqian_fixtures::history(docs, &district, DAYS, now, Some(&photo)).unwrap();
        println!(
            "history: {} inspections, {} failed items, {} reports, {} patrols in {:.0?}",
            stats.inspections,
            stats.failed_items,
            stats.reports,
            stats.patrols,
            t.elapsed()
        );
        // Citizens' reports at random shops and times until 100,000 cases.
        let mut n = case_count(docs);
        let mut k: u64 = 0;
        let categories = ["0504", "0107", "0102", "0507", "0201"];
        while n < CASES {
            k += 1;
            let shop = &district[(k.wrapping_mul(7_919) % district.len() as u64) as usize];
            let at = now - chrono::Duration::minutes(((k * 613) % (DAYS as u64 * 1_440)) as i64);
            let c = shop.zone.centroid();
            let filed = docs
                .file_report(NewCase {
                    source: CaseSource::Citizen,
                    category: categories[(k % 5) as usize].into(),
                    location: GeoPoint::new(c.lat + (k % 7) as f64 * 1e-5, c.lon),
                    shop_id: Some(shop.id()),
                    photos: vec![],
                    description: format!("{}门前市民反映 #{k}", shop.name),
                    deadline: None,
                    reported_by: "citizen-12345".into(),
                    reported_at: at,
                    subdistrict: None,
                    lane: None,
                })
                .unwrap();
            if !filed.linked {
                n += 1;
            }
        }
        let swept = docs.sweep(now, menqian_sync_server::SYSTEM_USER).unwrap();
        println!(
            "topped up with {k} citizens' reports; swept: {} escalated, {} folded; {} cases",
            swept.escalated.len(),
            swept.folded.len(),
            case_count(docs)
        );
        docs.checkpoint().unwrap();
    }
    let mut s = SqliteSyncStore::open(dir, vec![menqian_fixtures::DEMO_HOST.into()]).unwrap();
    let sub = menqian_fixtures::SUBDISTRICTS[0];
    for (id, role, area) in [
        (
            "supervisor-1",
            menqian_core::Role::Supervisor,
            menqian_core::Area::District,
        ),
        (
            "supervisor-sub",
            menqian_core::Role::Supervisor,
            menqian_core::Area::Subdistrict(sub.into()),
        ),
        (
            "admin",
            menqian_core::Role::Admin,
            menqian_core::Area::District,
        ),
    ] {
        s.accounts()
            .add_user(&User::new(id, id, role, area))
            .unwrap();
        let phc = menqian_sync_server::console::password::hash(PASSWORD).unwrap();
        s.accounts().set_password_hash(id, Some(&phc)).unwrap();
    }
    drop(s);
    std::fs::write(dir.join("built"), now.to_rfc3339()).unwrap();
    println!("built {} in {:.0?}", dir.display(), t.elapsed());
}

/// The station binary on `dir`, on a free port; killed on drop.
struct Station {
    child: Child,
    url: String,
}

impl Station {
    fn start(dir: &Path) -> Station {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
            .args(["--data", dir.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The public pages' per-address limit is applied to the address
            // this header names: the bench gives each request its own.
            .args(["--client-address-header", "x-bench-client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(120);
        while reqwest::blocking::get(format!("{url}/healthz")).is_err() {
            assert!(Instant::now() < deadline, "the station did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Station { child, url }
    }

    /// `VmHWM` or `VmRSS` of the station process, in MiB.
    fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Signs in and returns the session cookie.
fn session(station: &Station, user: &str) -> String {
    let c = client();
    let page = c
        .get(format!("{}/console/login", station.url))
        .send()
        .unwrap();
    let login = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("menqian_login="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = login.trim_start_matches("menqian_login=").to_string();
    let r = c
        .post(format!("{}/console/login", station.url))
        .header("cookie", &login)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("user={user}&password={PASSWORD}&csrf={csrf}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303, "signing in as {user}");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("menqian_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("menqian_session=")
        .to_string()
}

fn get(station: &Station, session: &str, path: &str) -> (u16, usize) {
    let r = client()
        .get(format!("{}{path}", station.url))
        .header("cookie", format!("menqian_session={session}"))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let n = r.bytes().unwrap().len();
    (status, n)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A page's first request (what nothing kept yet costs) and its times over
/// 50 requests after 3 warm-ups: (first, p50, p99, max) ms.
fn time_page(station: &Station, session: &str, path: &str) -> (f64, f64, f64, f64, usize) {
    let mut bytes = 0;
    let mut first = 0.0;
    for k in 0..3 {
        let t = Instant::now();
        let (status, n) = get(station, session, path);
        if k == 0 {
            first = t.elapsed().as_secs_f64() * 1e3;
        }
        assert_eq!(status, 200, "{path}");
        bytes = n;
    }
    let mut times: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let (status, _) = get(station, session, path);
            assert_eq!(status, 200, "{path}");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (
        first,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        bytes,
    )
}

fn main() {
    let mode = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = data_dir();
    build(&dir);
    if mode.as_deref() == Some("build") {
        return;
    }
    // Brought up to this code's migrations (as the station would at start).
    drop(SqliteSyncStore::open(&dir, vec![menqian_fixtures::DEMO_HOST.into()]).unwrap());
    let docs = Store::open_reader(dir.join("station.sqlite"), Default::default()).unwrap();
    let cases = case_count(&docs);
    let (first, _) = docs
        .case_list(
            &Default::default(),
            &menqian_core::Visibility::Everything,
            0,
            1,
        )
        .unwrap();
    let case_key = first[0].id.trim_start_matches("case/").to_string();
    let all_shops = docs.shops_in(&menqian_core::Area::District).unwrap();
    let shop = all_shops[5_000].clone();
    drop(docs);
    println!(
        "store: {} shops, {cases} cases, {DAYS} days ({})",
        menqian_fixtures::DISTRICT_SHOPS,
        std::fs::read_to_string(dir.join("built")).unwrap_or_default()
    );
    if mode.as_deref().is_none_or(|m| m == "alerts") {
        let secret = add_source(&dir, "sensor");
        let station = Station::start(&dir);
        alerts(&station, &all_shops, &secret, None);
        drop(station);
        if mode.is_some() {
            return;
        }
    }
    if mode.as_deref().is_none_or(|m| m == "snapshots") {
        let secret = add_source(&dir, "camera");
        let station = Station::start(&dir);
        let snapshot = snapshot_1080p();
        alerts(&station, &all_shops, &secret, Some(&snapshot));
        drop(station);
        if mode.is_some() {
            return;
        }
    }
    let station = Station::start(&dir);
    if mode.as_deref().is_none_or(|m| m == "open311") {
        open311(&station);
        if mode.is_some() {
            return;
        }
    }
    if mode.as_deref().is_none_or(|m| m == "public") {
        public_pages(&station, &all_shops);
        if mode.is_some() {
            return;
        }
    }
    if mode.as_deref() != Some("map") {
        let supervisor = session(&station, "supervisor-1");
        let sub = session(&station, "supervisor-sub");
        let admin = session(&station, "admin");
        let word: String = shop.name.chars().take(2).collect();
        let pages: Vec<(&str, &String, String)> = vec![
            ("概况 (district)", &supervisor, "/console".into()),
            ("概况 (subdistrict)", &sub, "/console".into()),
            ("cases, first page", &supervisor, "/console/cases".into()),
            (
                "cases, page 1,000",
                &supervisor,
                "/console/cases?page=1000".into(),
            ),
            (
                "cases, 已上报",
                &supervisor,
                "/console/cases?status=reported".into(),
            ),
            (
                "cases, overdue by due date",
                &supervisor,
                "/console/cases?overdue=1&sort=due".into(),
            ),
            (
                "cases, text",
                &supervisor,
                "/console/cases?q=%E5%B8%82%E6%B0%91".into(),
            ),
            ("cases (subdistrict)", &sub, "/console/cases".into()),
            ("a case", &supervisor, format!("/console/case/{case_key}")),
            ("ledger", &supervisor, "/console/ledger".into()),
            ("ledger (subdistrict)", &sub, "/console/ledger".into()),
            (
                "rankings, week (cached)",
                &supervisor,
                "/console/rankings".into(),
            ),
            (
                "rankings, month (cached)",
                &supervisor,
                "/console/rankings?period=month".into(),
            ),
            ("rankings (subdistrict)", &sub, "/console/rankings".into()),
            (
                "shop search",
                &supervisor,
                format!(
                    "/console/shops?q={}",
                    url::form_urlencoded::byte_serialize(word.as_bytes()).collect::<String>()
                ),
            ),
            (
                "a shop",
                &supervisor,
                format!("/console/shop?id={}", shop.id),
            ),
            ("map page", &supervisor, "/console/map".into()),
            (
                "map data (21,728 shops)",
                &supervisor,
                "/console/map/data.json".into(),
            ),
            ("patrols", &supervisor, "/console/patrols".into()),
            ("people and devices", &admin, "/console/people".into()),
            ("rules", &admin, "/console/rules".into()),
        ];
        println!("| page | first ms | p50 ms | p99 ms | max ms | bytes |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for (name, who, path) in &pages {
            let (first, p50, p99, max, bytes) = time_page(&station, who, path);
            println!("| {name} | {first:.1} | {p50:.1} | {p99:.1} | {max:.1} | {bytes} |");
        }
        // The rankings' first computation, without the cache: another
        // period's board (cached from then on).
        let t = Instant::now();
        let (status, _) = get(
            &station,
            &supervisor,
            "/console/rankings?period=week&date=2026-10-01",
        );
        assert_eq!(status, 200);
        println!(
            "rankings, a week not cached yet: {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );

        // The exports of every case.
        for what in ["csv", "xlsx"] {
            let before = station.memory_mib("VmHWM");
            let rss = station.memory_mib("VmRSS");
            let t = Instant::now();
            let (status, bytes) = get(&station, &supervisor, &format!("/console/cases.{what}"));
            assert_eq!(status, 200);
            println!(
                "export {what}: {cases} cases, {:.1} MB in {:.2} s; station RSS {rss:.0} MiB, peak {before:.0} → {:.0} MiB",
                bytes as f64 / 1e6,
                t.elapsed().as_secs_f64(),
                station.memory_mib("VmHWM")
            );
        }
    }
    // The map in headless Chromium: navigation to every shop drawn.
    let b = common::browser::Browser::start(&station.url);
    let user = "supervisor-1";
    b.go("/console/login");
    b.fill("#user", user);
    b.fill("#password", PASSWORD);
    b.open("form button[type=submit]");
    let mut times = Vec::new();
    for _ in 0..5 {
        b.go("/console/map");
        b.wait_until(
            "return document.getElementById('map').dataset.ready === '1'",
            Duration::from_secs(60),
        );
        let shops = b.js("return document.getElementById('map').dataset.shops");
        assert_eq!(
            shops.as_str(),
            Some(menqian_fixtures::DISTRICT_SHOPS.to_string().as_str())
        );
        let ms: f64 = b
            .js("return document.getElementById('map').dataset.readyMs")
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        times.push(ms);
    }
    b.shot("bench-map-district");
    println!(
        "map, navigation to {} shops drawn (5 loads): {:?} ms",
        menqian_fixtures::DISTRICT_SHOPS,
        times
    );
}

/// The signboard page `/s/<code>` of 500 shops spread over the district,
/// each asked twice (cold, then warm), from a new client address each time:
/// time to the first byte (the response's head) and to the last.
fn public_pages(station: &Station, shops: &[menqian_core::ShopSummary]) {
    let client = client();
    let mut first_byte = Vec::new();
    let mut whole = Vec::new();
    let mut sizes = Vec::new();
    for round in 0..2 {
        for k in 0..500usize {
            let shop = &shops[(k * 43_457) % shops.len()];
            let t = Instant::now();
            let r = client
                .get(format!("{}/s/{}", station.url, shop.code))
                .header(
                    "x-bench-client",
                    format!("10.{}.{}.{}", round, k / 250, k % 250),
                )
                .send()
                .unwrap();
            let head = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(r.status(), 200, "{}", shop.code);
            let n = r.bytes().unwrap().len();
            first_byte.push(head);
            whole.push(t.elapsed().as_secs_f64() * 1e3);
            sizes.push(n);
        }
    }
    for v in [&mut first_byte, &mut whole] {
        v.sort_by(f64::total_cmp);
    }
    sizes.sort();
    println!(
        "signboard page, 1,000 requests over 500 shops: first byte p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; whole p99 {:.1} ms; {}–{} bytes (median {})",
        percentile(&first_byte, 0.5),
        percentile(&first_byte, 0.99),
        first_byte[first_byte.len() - 1],
        percentile(&whole, 0.99),
        sizes[0],
        sizes[sizes.len() - 1],
        sizes[sizes.len() / 2]
    );
}

/// Registers a new source of `kind` (a fresh id each run): its id and secret.
fn add_source(dir: &Path, kind: &str) -> String {
    let id = format!("bench-{kind}-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", dir.to_str().unwrap()])
        .args(["alerts", "add-source", "--id", &id, "--kind", kind])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    format!("{id} {}", String::from_utf8(out.stdout).unwrap().trim())
}

/// A camera's 1080p snapshot: a real photo (Debian's lomiri-wallpapers,
/// 6028 × 3391) scaled to 1920 × 1080 and encoded at quality 85, as a
/// camera sends it.
fn snapshot_1080p() -> Vec<u8> {
    let path = "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg";
    let original = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (bash scripts/system-deps.sh installs it)"));
    let decoded = turbojpeg::decompress(&original, turbojpeg::PixelFormat::RGB).unwrap();
    let full =
        image::RgbImage::from_raw(decoded.width as u32, decoded.height as u32, decoded.pixels)
            .unwrap();
    let scaled = image::imageops::resize(&full, 1920, 1080, image::imageops::FilterType::Triangle);
    let image = turbojpeg::Image {
        pixels: scaled.as_raw().as_slice(),
        width: 1920,
        pitch: 1920 * 3,
        height: 1080,
        format: turbojpeg::PixelFormat::RGB,
    };
    turbojpeg::compress(image, 85, turbojpeg::Subsamp::Sub2x2)
        .unwrap()
        .to_vec()
}

/// 1,000 alerts from one source at 1,000 shops of the district, from 8
/// threads (200 when each carries `snapshot`): the time for all, the rate,
/// and each alert's p50 and p99.
fn alerts(
    station: &Station,
    shops: &[menqian_core::ShopSummary],
    source: &str,
    snapshot: Option<&[u8]>,
) {
    use base64::Engine as _;
    use menqian_sync_server::alerts::{SIGNATURE_HEADER, SOURCE_HEADER, TIME_HEADER, signature};
    let (id, secret) = source.split_once(' ').unwrap();
    let run = std::process::id();
    let count = if snapshot.is_some() { 200 } else { 1_000 };
    let encoded = snapshot.map(|s| base64::engine::general_purpose::STANDARD.encode(s));
    let encoded = encoded.as_deref();
    let start = Instant::now();
    let answers: Vec<(u16, f64, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    let client = client();
                    let mut out = Vec::new();
                    for k in (t..count).step_by(8) {
                        let shop = &shops[(k * 21) % shops.len()];
                        let mut body = serde_json::json!({
                            "alert_id": format!("{run}-{k}"), "category": "0104",
                            "at": chrono::Utc::now(), "lat": shop.lat, "lon": shop.lon,
                        });
                        if let Some(jpeg) = encoded {
                            body["snapshot"] = jpeg.into();
                        }
                        let body = body.to_string();
                        let ts = chrono::Utc::now().timestamp().to_string();
                        let sent = Instant::now();
                        let r = client
                            .post(format!("{}/v1/alerts", station.url))
                            .header(SOURCE_HEADER, id)
                            .header(TIME_HEADER, &ts)
                            .header(SIGNATURE_HEADER, signature(secret, &ts, body.as_bytes()))
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .unwrap();
                        let status = r.status().as_u16();
                        let answer: serde_json::Value = r.json().unwrap_or_default();
                        let outcome = answer["outcome"].as_str().unwrap_or("-").to_string();
                        out.push((status, sent.elapsed().as_secs_f64() * 1e3, outcome));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = start.elapsed().as_secs_f64();
    let ok = answers.iter().filter(|(s, _, _)| *s == 200).count();
    let mut outcomes = std::collections::BTreeMap::new();
    for (_, _, o) in &answers {
        *outcomes.entry(o.as_str()).or_insert(0) += 1;
    }
    let mut ms: Vec<f64> = answers.iter().map(|(_, t, _)| *t).collect();
    ms.sort_by(f64::total_cmp);
    let what = match snapshot {
        Some(s) => format!("with a 1920×1080 snapshot ({} KB)", s.len() / 1024),
        None => "without snapshots".to_string(),
    };
    println!(
        "alerts {what}: {count} from one source at {count} shops, 8 at a time: {took:.2} s ({:.0}/s), \
         p50 {:.1} ms, p99 {:.1} ms, {ok} answered 200 {outcomes:?}",
        count as f64 / took,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
    );
}

/// Open311 `GET requests.json` (the last 90 days, at most 1,000) and with a
/// service code and status, each 50 times after 3 warm-ups, each from its
/// own client address: p50 and p99.
fn open311(station: &Station) {
    let client = client();
    for (name, path) in [
        ("requests", "/open311/v2/requests.json"),
        (
            "requests, 0504 open",
            "/open311/v2/requests.json?service_code=0504&status=open",
        ),
        ("requests, xml", "/open311/v2/requests.xml"),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for k in 0..53 {
            let t = Instant::now();
            let r = client
                .get(format!("{}{path}", station.url))
                .header("x-bench-client", format!("10.9.{}.{}", k / 200, k % 200))
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            bytes = r.bytes().unwrap().len();
            if k >= 3 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "open311 {name}: p50 {:.1} ms, p99 {:.1} ms, {bytes} bytes",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
}
