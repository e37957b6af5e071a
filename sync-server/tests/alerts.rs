//! Cameras and sensors against the station binary: signed alerts become
//! reminders (on the shop's page and at a webhook), a repeat after the
//! deadline a dispatched case on a supervisor's phone, replays and bad
//! signatures are refused, and a burst makes one reminder per alert.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::io::{BufRead, BufReader, Read, Write};

use chrono::{Duration, Utc};
use common::StationProcess;
use menqian_sync_server::alerts::{SIGNATURE_HEADER, SOURCE_HEADER, TIME_HEADER, signature};
use menqian_sync_server::{SqliteSyncStore, SyncStore as _};

/// A real photo as a camera's snapshot (Debian's lomiri-wallpapers).
const SNAPSHOT: &str = "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg";

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", dir.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Posts `body` as `source`, signed with `secret` at `timestamp`.
fn post(
    url: &str,
    source: &str,
    secret: &str,
    timestamp: i64,
    body: &str,
) -> (u16, serde_json::Value) {
    let ts = timestamp.to_string();
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/alerts"))
        .header(SOURCE_HEADER, source)
        .header(TIME_HEADER, &ts)
        .header(SIGNATURE_HEADER, signature(secret, &ts, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

/// A one-request HTTP server: the body of the first POST it receives.
fn webhook() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            let _ = tx.send(String::from_utf8(body).unwrap());
        }
    });
    (url, rx)
}

#[test]
fn an_alert_reminds_the_shop_and_a_repeat_after_the_deadline_is_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    let shops = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS).unwrap();
    let shop = shops
        .iter()
        .find(|s| s.status == menqian_core::ShopStatus::Active)
        .unwrap()
        .clone();
    let secret = cli(
        dir.path(),
        &[
            "alerts",
            "add-source",
            "--id",
            "cam-1",
            "--shop",
            &shop.code,
        ],
    );
    assert_eq!(secret.len(), 64);
    let (hook, received) = webhook();
    let station = StationProcess::start_in(dir, &["--alert-webhook", &hook], None);
    let mut phone = common::Device::enroll(
        &station.url,
        &station.code_for("supervisor-1"),
        "督查员的手机",
    );
    phone.sync().unwrap();
    let now = Utc::now();
    // A snapshot that is no photo: refused, and the alert id stays unused.
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let bad = serde_json::json!({
        "alert_id": "a-1", "category": "0504", "at": now - Duration::minutes(20),
        "snapshot": b64(b"not a jpeg")
    })
    .to_string();
    let (status, answer) = post(&station.url, "cam-1", &secret, now.timestamp(), &bad);
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_snapshot"))
    );
    // Seen twenty minutes ago with a snapshot (a real camera photo): 店外经营
    // has 15 minutes by the default rules.
    let snapshot = std::fs::read(SNAPSHOT).unwrap();
    let first = serde_json::json!({
        "alert_id": "a-1", "category": "0504", "at": now - Duration::minutes(20),
        "snapshot": b64(&snapshot)
    })
    .to_string();
    let (status, answer) = post(&station.url, "cam-1", &secret, now.timestamp(), &first);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "reminded");
    assert_eq!(answer["shop_id"], shop.id());
    let note: serde_json::Value = serde_json::from_str(
        &received
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(note["shop_id"], shop.id());
    assert_eq!(note["category_name"], "店外经营");
    let page = reqwest::blocking::get(format!("{}/s/{}", station.url, shop.code))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("摄像头提醒") && page.contains("店外经营"),
        "{page}"
    );

    // The same request again, a wrong signature, an old one, a stranger.
    let (status, _) = post(&station.url, "cam-1", &secret, now.timestamp(), &first);
    assert_eq!(status, 409, "a replay is refused");
    let (status, _) = post(
        &station.url,
        "cam-1",
        &"0".repeat(64),
        now.timestamp(),
        &first,
    );
    assert_eq!(status, 401);
    let (status, _) = post(
        &station.url,
        "cam-1",
        &secret,
        now.timestamp() - 3_600,
        &first,
    );
    assert_eq!(status, 401);
    let (status, _) = post(&station.url, "cam-9", &secret, now.timestamp(), &first);
    assert_eq!(status, 401);

    // Seen again now, past the deadline: a case, dispatched by the rules.
    let again = serde_json::json!({"alert_id": "a-2", "category": "0504", "at": now}).to_string();
    let (status, answer) = post(&station.url, "cam-1", &secret, now.timestamp(), &again);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "escalated");
    let case_id = answer["case_id"].as_str().unwrap().to_string();
    phone.sync().unwrap();
    let case = phone.store.case(&case_id).unwrap();
    assert_eq!(case.source, menqian_core::CaseSource::Camera);
    assert_eq!(case.replay().status, menqian_core::CaseStatus::Dispatched);
    assert_eq!(case.shop_id.as_deref(), Some(shop.id().as_str()));
    // The first sighting's snapshot is its evidence, re-encoded without EXIF.
    assert_eq!(case.photos.len(), 1, "{:?}", case.photos);
    let cancel = menqian_client::CancelToken::default();
    let evidence = phone
        .client
        .download_blob(&case.photos[0], &cancel)
        .unwrap();
    assert!(evidence.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(!evidence.windows(6).any(|w| w == b"Exif\0\0"));
    assert_eq!(case.evidence[&case.photos[0]].width, 1600);
    // Its reminder left the shop's page (it is a case now).
    let page = reqwest::blocking::get(format!("{}/s/{}", station.url, shop.code))
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("摄像头提醒"));
    // A third sighting is the same case's business, not a new one.
    let third = serde_json::json!({"alert_id": "a-3", "category": "0504", "at": now}).to_string();
    let (status, answer) = post(&station.url, "cam-1", &secret, now.timestamp(), &third);
    assert_eq!(status, 200);
    assert_eq!(
        answer["outcome"], "reminded",
        "a new reminder after the case: {answer}"
    );
}

#[test]
fn a_burst_of_a_thousand_alerts_makes_one_reminder_per_alert_id() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    // A sensor on a vehicle: its alerts say where they are.
    let secret = cli(
        dir.path(),
        &[
            "alerts",
            "add-source",
            "--id",
            "truck-3",
            "--kind",
            "sensor",
        ],
    );
    let station = StationProcess::start_in(dir, &[], None);
    let shops: Vec<_> = menqian_fixtures::registry(menqian_fixtures::STREET_SHOPS)
        .unwrap()
        .into_iter()
        .filter(|s| s.status == menqian_core::ShopStatus::Active)
        .take(100)
        .collect();
    let bodies: Vec<String> = shops
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let c = s.zone.centroid();
            serde_json::json!({
                "alert_id": format!("dust-{k}"), "category": "0104", "at": Utc::now(),
                "lat": c.lat, "lon": c.lon,
                "reading": {"kind": "dust", "value": 180.0, "threshold": 150.0}
            })
            .to_string()
        })
        .collect();
    let url = station.url.clone();
    let start = std::time::Instant::now();
    let results: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (bodies, url, secret) = (&bodies, &url, &secret);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for n in (t..1_000).step_by(8) {
                        let body = &bodies[n % bodies.len()];
                        out.push(post(url, "truck-3", secret, Utc::now().timestamp(), body).0);
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
    let took = start.elapsed();
    assert_eq!(results.len(), 1_000);
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        100,
        "{results:?}"
    );
    assert_eq!(results.iter().filter(|s| **s == 409).count(), 900);
    let reader = SqliteSyncStore::open(station.dir.path(), vec![common::HOST.into()])
        .unwrap()
        .reader()
        .unwrap();
    assert_eq!(reader.accounts().reminder_count().unwrap(), 100);
    eprintln!("1,000 alerts in {took:?}");
    // Under its threshold a reading is no alert.
    let quiet = serde_json::json!({
        "alert_id": "dust-quiet", "category": "0104", "at": Utc::now(),
        "lat": 39.87, "lon": 116.35,
        "reading": {"kind": "dust", "value": 40.0, "threshold": 150.0}
    })
    .to_string();
    let (status, answer) = post(
        &station.url,
        "truck-3",
        &secret,
        Utc::now().timestamp(),
        &quiet,
    );
    assert_eq!((status, answer["outcome"].as_str()), (200, Some("ignored")));
}
