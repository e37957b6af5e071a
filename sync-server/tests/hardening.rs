//! The station against a careless or hostile phone (issue 13), one test per
//! class of attack, each against the station binary running as its own
//! process on 127.0.0.1, memory and open files read from `/proc`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Device, StationProcess};
use menqian_core::wire::{self, WireBatch};
use menqian_core::{CaseSource, DocChange, GeoPoint, NewCase};
use menqian_sync_server::SyncStore as _;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn push_raw(url: &str, token: &str, changes: Vec<DocChange>) -> (u16, serde_json::Value) {
    let body = wire::encode(&WireBatch {
        changes,
        ..Default::default()
    })
    .unwrap();
    let r = http()
        .post(format!("{url}/v1/push"))
        .bearer_auth(token)
        .header("content-type", wire::CONTENT_TYPE)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or_default())
}

fn new_case_at(i: usize, who: &str) -> NewCase {
    NewCase {
        subdistrict: None,
        lane: None,
        source: CaseSource::Steward,
        category: "0107".into(),
        location: GeoPoint::new(
            39.866 + (i % 70) as f64 * 9.0e-4,
            116.345 + (i / 70) as f64 * 1.2e-3,
        ),
        shop_id: None,
        photos: vec![],
        description: format!("第{i}处乱堆物料"),
        deadline: None,
        reported_by: who.into(),
        reported_at: chrono::Utc::now(),
    }
}

/// 1. A push of compressed Automerge chunks that would inflate to 16 GiB, and
///    of a change whose run-length encoding claims 2⁴⁰ operations, from a
///    volunteer steward: refused with 400 before anything inflates.
#[test]
fn a_decompression_bomb_is_refused_before_it_inflates() {
    let station = StationProcess::start(&[]);
    let steward = station.phone("steward-1");
    // 16 MiB of zeros deflate to ~16 KiB; a thousand such chunks fill the
    // largest body a push may have.
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(&vec![0u8; 16 << 20]).unwrap();
    let inflates = deflate.finish().unwrap();
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut n = inflates.len();
    while n >= 0x80 {
        chunk.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    chunk.push(n as u8);
    chunk.extend(&inflates);
    let per = chunk.len() + 50;
    let bombs: Vec<DocChange> = (0..(16 << 20) / per)
        .map(|i| DocChange {
            doc_id: format!("case/{i:032x}"),
            bytes: chunk.clone(),
        })
        .collect();
    station.reset_peak();
    let before = station.status_kb("VmHWM");
    let (status, body) = push_raw(&station.url, &steward.token, bombs);
    let peak = station.status_kb("VmHWM");
    eprintln!("a 16 MiB bomb raised the peak RSS by {} kB", peak - before);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_change");
    assert!(
        peak - before < 32 * 1024,
        "peak RSS rose by {} kB",
        peak - before
    );
    // Refused for what it is, not after inflating it.
    assert!(
        body["message"].as_str().unwrap().contains("compressed"),
        "{body}"
    );
    // A run-length bomb: a boolean column whose one run says 2^40.
    let mut body = vec![0u8, 1, 0xab, 1, 1, 0, 0, 0, 1, 0x14, 6];
    body.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, body.len() as u8];
    chunk.extend(body);
    let (status, body) = push_raw(
        &station.url,
        &steward.token,
        vec![DocChange {
            doc_id: format!("case/{:032x}", 1),
            bytes: chunk,
        }],
    );
    assert_eq!(status, 400, "{body}");
    // A change found by fuzzing that panics inside Automerge (given an actor,
    // `ab`, where the one found had none), from a device enrolled with that
    // actor, so the station gets as far as applying it: refused as corrupt,
    // and the writer still works after.
    let panics = include_bytes!("../../core/tests/data/automerge-panic-actor.change").to_vec();
    let doc_id = format!("case/{:032x}", 2);
    let actor = automerge::Change::from_bytes(panics.clone())
        .unwrap()
        .actor_id()
        .to_hex_string();
    let enrolled: serde_json::Value = http()
        .post(format!("{}/v1/enroll", station.url))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "code": station.code_for("steward-1"),
                "actor": actor,
                "device_name": "fuzzer",
            })
            .to_string(),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    let fuzzer = enrolled["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{enrolled}"));
    let (status, body) = push_raw(
        &station.url,
        fuzzer,
        vec![DocChange {
            doc_id,
            bytes: panics,
        }],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_change", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("inside Automerge"),
        "{body}"
    );
    let mut steward = steward;
    steward
        .store
        .report_case(new_case_at(5, "steward-1"))
        .unwrap();
    steward.sync().unwrap();
    assert!(station.healthy());
}

/// 2 and 3. Uploads: only of photos the device's own records refer to, kept
/// per device (another device's junk cannot spoil them), capped, expired,
/// refused when the disk is short, and their status shown only to those who
/// may see the photo.
#[test]
fn uploads_cannot_fill_the_disk_or_be_sabotaged() {
    let station = StationProcess::start(&["--partial-upload-hours", "0.0005"]);
    let officer = station.phone("officer-1");
    let partial_dir = station.dir.path().join("station.sqlite-blobs/partial");
    let url = station.url.clone();
    let put = |token: &str, hash: &str, offset: usize, total: &str, body: &[u8]| {
        common::put_to(&url, token, hash, offset, total, body)
    };
    // 200 uploads of photos no record refers to: all refused, nothing kept.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF];
    jpeg.resize(1 << 20, 7);
    // (Past the device's burst of requests, 429 comes first.)
    for i in 0..200u32 {
        let hash = menqian_core::evidence::sha256_hex(&i.to_be_bytes());
        let (status, body) = put(&officer.token, &hash, 0, &(16u32 << 20).to_string(), &jpeg);
        match status {
            403 => assert_eq!(body["error"], "not_referenced"),
            0 => {}
            429 => assert!(i >= 50, "{i}: {body}"),
            other => panic!("{other}: {body}"),
        }
    }
    // The device waits out its rate share before going on.
    std::thread::sleep(Duration::from_secs(3));
    let files = walk(&partial_dir);
    assert!(files.is_empty(), "{files:?}");

    // A record with a photo; its first half arrives.
    let mut officer = officer;
    let hash = photo_record(&mut officer);
    common::push_records(&station.url, &officer);
    let photo = officer.store.blobs().read(&hash).unwrap();
    let total = photo.len().to_string();
    let half = photo.len() / 2;
    assert_eq!(put(&officer.token, &hash, 0, &total, &photo[..half]).0, 200);
    // Another officer PUTs junk under the same name: refused, and the
    // upload is undisturbed.
    let other = station.phone("officer-2");
    let (status, _) = put(&other.token, &hash, 0, &total, &vec![0xFF; photo.len()]);
    assert_eq!(status, 403);
    // Who may ask how far it is: the uploader and those who may see the
    // record; a steward of another lane gets 404 as if it did not exist.
    let status_of = |token: &str| {
        http()
            .get(format!("{}/v1/blobs/{hash}/status", station.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let mine: serde_json::Value = status_of(&officer.token).json().unwrap();
    assert_eq!(mine["received"], half);
    let steward = station.phone("steward-1");
    assert_eq!(status_of(&steward.token).status(), 404);
    // Empty and malformed totals and offsets.
    let (status, body) = put(&officer.token, &hash, 0, "0", b"");
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_total")));
    let (status, body) = put(&officer.token, &hash, 0, "lots", b"");
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_query")));
    let (status, body) = put(&officer.token, &hash, 99_999_999, &total, b"x");
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_offset")));
    let (status, body) = put(&officer.token, &hash, 0, &(1u64 << 40).to_string(), &photo);
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_total")));
    // The rest arrives: the upload is whole and verified.
    let (status, body) = put(&officer.token, &hash, half, &total, &photo[half..]);
    assert_eq!(
        (status, body["complete"].as_bool()),
        (200, Some(true)),
        "{body}"
    );

    // An unfinished upload nobody continues is deleted (here after ~2 s).
    let second = photo_record(&mut officer);
    common::push_records(&station.url, &officer);
    let bytes = officer.store.blobs().read(&second).unwrap();
    let t = bytes.len().to_string();
    assert_eq!(put(&officer.token, &second, 0, &t, &bytes[..1000]).0, 200);
    assert_eq!(walk(&partial_dir).len(), 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !walk(&partial_dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        walk(&partial_dir).is_empty(),
        "the stale upload was collected"
    );
    drop(station);

    // A station short of disk, and one whose devices have their share of
    // unfinished uploads in progress already, refuse with 507.
    for (args, code) in [
        (["--min-free-disk-mib", "999999999"], "disk_full"),
        (["--uploads-in-progress-mib", "0"], "too_many_uploads"),
    ] {
        let station = StationProcess::start(&args);
        let mut officer = station.phone("officer-1");
        let hash = photo_record(&mut officer);
        common::push_records(&station.url, &officer);
        let bytes = officer.store.blobs().read(&hash).unwrap();
        let (status, body) = common::put_to(
            &station.url,
            &officer.token,
            &hash,
            0,
            &bytes.len().to_string(),
            &bytes,
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (507, Some(code)),
            "{body}"
        );
    }
}

/// A case with a photo on `d`'s phone (not yet pushed); the photo's hash.
static SHOT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn photo_record(d: &mut Device) -> String {
    // A shop off the steward's lane: the steward may not see this record.
    let lane = menqian_fixtures::DEMO_LANES[0];
    let shop = d
        .store
        .search_shops("店", 200)
        .unwrap()
        .into_iter()
        .map(|r| d.store.shop(&r.id).unwrap())
        .find(|s| s.lane.as_deref() != Some(lane))
        .unwrap();
    let photo = d
        .store
        .capture_photo(
            std::path::Path::new("/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg"),
            menqian_core::store::Capture {
                // Each photo a minute apart: the watermark carries the time,
                // so two captures of one file within a second would be one
                // blob.
                at: chrono::Utc::now()
                    + chrono::Duration::minutes(i64::from(
                        SHOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    )),
                fix: None,
                taken_by: "王磊".into(),
                shop_id: Some(shop.id()),
                place: None,
            },
        )
        .unwrap();
    d.store
        .report_case(NewCase {
            photos: vec![photo.hash.clone()],
            shop_id: Some(shop.id()),
            ..new_case_at(0, "officer-1")
        })
        .unwrap();
    photo.hash
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// 4. Connections: trickled headers and idle keep-alives are closed after the
///    header timeout, a tokenless push is refused before its body is read,
///    more connections than the soft limit of 1,024 open files does not stop
///    `/healthz`, the connection cap closes the excess, and memory and open
///    files return to their baseline.
#[test]
fn connections_are_bounded_in_time_number_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    let station = StationProcess::start_in(dir, &["--header-timeout", "2"], Some(1024));
    let (soft, hard) = station.nofile_limits();
    assert_eq!(soft, hard, "the soft limit was raised to the hard one");
    let officer = station.phone("officer-1");
    std::thread::sleep(Duration::from_millis(300));
    let files_before = station.open_files();
    let rss_before = station.status_kb("VmRSS");

    // 1,100 idle connections and 200 trickling headers.
    let connect = || TcpStream::connect(("127.0.0.1", station.port)).unwrap();
    let idle: Vec<TcpStream> = (0..1_100).map(|_| connect()).collect();
    let mut trickling: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    assert!(
        station.healthy(),
        "/healthz answers beside 1,300 connections"
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut idle = idle;
    for s in trickling.iter_mut().chain(idle.iter_mut().take(10)) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(
            n == 0 || reply.starts_with("HTTP/1.1 408"),
            "closed after the header timeout, got {reply:?}"
        );
    }
    drop(idle);
    drop(trickling);

    // A tokenless push declaring 16 MiB gets 401 before a byte of body.
    let mut s = connect();
    s.write_all(
        b"POST /v1/push HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-menqian-changes\r\ncontent-length: 16777216\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    drop(s);

    // Sixteen tokenless 16 MiB uploads, then four authenticated 16 MiB
    // bodies of junk at once: memory comes back once they close.
    let junk = vec![0x55u8; 16 << 20];
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (url, junk) = (station.url.clone(), junk.clone());
            let token = (i >= 16).then(|| officer.token.clone());
            std::thread::spawn(move || {
                let mut r = http()
                    .post(format!("{url}/v1/push"))
                    .header("content-type", wire::CONTENT_TYPE)
                    .body(junk);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                r.send().map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses[..16].iter().all(|s| *s == 401 || *s == 0),
        "{statuses:?}"
    );
    assert!(
        statuses[16..].iter().all(|s| *s == 400 || *s == 429),
        "{statuses:?}"
    );
    // Freed bodies go back to the system when the blocking pool's idle
    // threads end (10 s), at the latest. The allocator returns freed pages
    // a second after they were freed, at its next work: a station keeps
    // answering meanwhile, as one in service does.
    let deadline = Instant::now() + Duration::from_secs(20);
    while station.status_kb("VmRSS") >= rss_before + 24 * 1024 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let healthy = http().get(format!("{}/healthz", station.url)).send();
        assert!(healthy.is_ok_and(|r| r.status().is_success()));
    }
    let rss_after = station.status_kb("VmRSS");
    assert!(
        rss_after < rss_before + 24 * 1024,
        "RSS {rss_before} kB before, {rss_after} kB after"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while station.open_files() > files_before + 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        station.open_files() <= files_before + 8,
        "{} files open, {files_before} before",
        station.open_files()
    );
    drop(station);

    // With a cap of 50 connections, the 51st is closed at once and the
    // station still answers once one is free.
    let station = StationProcess::start(&["--max-connections", "50"]);
    let held: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(("127.0.0.1", station.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(("127.0.0.1", station.port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(extra.read(&mut buf).unwrap_or(0), 0, "closed at once");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert!(station.healthy());
}

/// 5. One device floods the station with 200 concurrent full pulls; another
///    device's pull is answered meanwhile, and the flood gets 429 with
///    `Retry-After` beyond its share.
#[test]
fn one_device_cannot_starve_another() {
    let station = StationProcess::start(&[]);
    let flooder = station.phone("officer-1");
    let other = station.phone("officer-2");
    let pull = |token: &str| {
        http()
            .get(format!("{}/v1/pull?after=0&limit=5000", station.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let (url, token) = (station.url.clone(), flooder.token.clone());
            std::thread::spawn(move || {
                let r = http()
                    .get(format!("{url}/v1/pull?after=0&limit=5000"))
                    .bearer_auth(token)
                    .send()
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.headers().get("retry-after").is_some(),
                )
            })
        })
        .collect();
    let started = Instant::now();
    let r = pull(&other.token);
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    let answers: Vec<(u16, bool)> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    let busy = answers.iter().filter(|(s, _)| *s == 429).count();
    assert!(busy > 100, "{busy} of 200 over the device's share got 429");
    assert!(
        answers
            .iter()
            .all(|(s, retry)| *s == 200 || (*s == 429 && *retry))
    );
    // Not a speed figure (docs/benchmarks.md has that): it was 16 s before.
    assert!(
        took < Duration::from_secs(5),
        "the other pull took {took:?}"
    );
}

/// 6. Enrollment codes cannot be guessed at speed: one address is throttled
///    after a burst, and so is the station as a whole.
#[test]
fn enrollment_guessing_is_throttled() {
    let station = StationProcess::start(&[
        "--client-address-header",
        "x-real-ip",
        "--enroll-per-minute",
        "20",
    ]);
    let try_code = |address: &str| {
        let r = http()
            .post(format!("{}/v1/enroll", station.url))
            .header("content-type", "application/json")
            .header("x-real-ip", address)
            .body(r#"{"code":"ABCDEFGH","actor":"abcd","device_name":"x"}"#)
            .send()
            .unwrap();
        (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok()),
        )
    };
    let one: Vec<_> = (0..15).map(|_| try_code("10.1.1.1")).collect();
    assert!(one[..10].iter().all(|(s, _)| *s == 401), "{one:?}");
    assert!(
        one[10..]
            .iter()
            .all(|(s, r)| *s == 429 && r.is_some_and(|r| r >= 1)),
        "{one:?}"
    );
    // Twenty addresses: the station's own budget (20 a minute, 10 spent
    // above) runs out too.
    let many: Vec<_> = (0..20).map(|i| try_code(&format!("10.2.0.{i}"))).collect();
    assert!(many.iter().any(|(s, _)| *s == 429), "{many:?}");
    assert!(
        many.iter().filter(|(s, _)| *s == 401).count() <= 10,
        "{many:?}"
    );
}

/// 7. Neither the station's own actor nor one already in the feed can be
///    bound to a new device.
#[test]
fn an_actor_in_the_feed_cannot_be_enrolled_again() {
    let station = StationProcess::start(&[]);
    let mut officer = station.phone("officer-1");
    officer
        .store
        .report_case(new_case_at(1, "officer-1"))
        .unwrap();
    officer.sync().unwrap();
    let station_actor = station.admin().documents().actor_id();
    for actor in [station_actor, officer.store.actor_id()] {
        let r = http()
            .post(format!("{}/v1/enroll", station.url))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "code": station.code_for("officer-2"),
                    "actor": actor,
                    "device_name": "假手机",
                })
                .to_string(),
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 409, "{actor}");
    }
}

/// 8. A device's own report pushed again under ids that are not ids is
///    refused with `bad_change` naming the id; nothing is stored.
#[test]
fn document_ids_must_fit_their_kind() {
    let station = StationProcess::start(&[]);
    let steward = station.phone("steward-1");
    let mut phone = steward;
    let id = phone
        .store
        .report_case(new_case_at(2, "steward-1"))
        .unwrap();
    let change = phone
        .store
        .own_changes_since(0, 100)
        .unwrap()
        .changes
        .into_iter()
        .find(|c| c.doc_id == id)
        .unwrap();
    let before = station.admin().documents().counts().unwrap();
    for bad in [
        "case/../../etc/passwd",
        "case/",
        "case/0123456789abcdef0123456789abcde\u{1b}",
        "case/0123456789ABCDEF0123456789ABCDEF",
        "shop/110106000001",
    ] {
        let (status, body) = push_raw(
            &station.url,
            &phone.token,
            vec![DocChange {
                doc_id: bad.into(),
                bytes: change.bytes.clone(),
            }],
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_change")),
            "{bad:?}: {body}"
        );
        assert!(body["doc_id"].as_str().is_some(), "{body}");
    }
    assert_eq!(station.admin().documents().counts().unwrap(), before);
    phone.sync().unwrap();
}

/// 9. Control characters: refused in device names at enrollment and in
///    records' text at the phone and the station (line breaks in notes
///    aside); the CLI escapes whatever an older station stored.
#[test]
fn free_text_reaches_no_terminal_raw() {
    let station = StationProcess::start(&[]);
    let enroll = |name: &str| {
        http()
            .post(format!("{}/v1/enroll", station.url))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({
                    "code": station.code_for("officer-2"),
                    "actor": "00112233445566778899aabbccddeeff",
                    "device_name": name,
                })
                .to_string(),
            )
            .send()
            .unwrap()
    };
    let r = enroll("手机\u{1b}]0;pwned\u{7}\nroot");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("control character"));
    // The phone refuses an escape sequence in a description, keeps a line break.
    let mut phone = station.phone("officer-1");
    let mut bad = new_case_at(3, "officer-1");
    bad.description = "堆物\u{1b}[2J".into();
    assert!(phone.store.report_case(bad).is_err());
    let mut lines = new_case_at(4, "officer-1");
    lines.description = "门前堆物\n已提醒".into();
    phone.store.report_case(lines).unwrap();
    phone.sync().unwrap();
    // A phone that skips its own checks: the station refuses the change.
    let case_id = phone.store.cases(None, 1).unwrap()[0].id.clone();
    let saved: Vec<u8> = rusqlite::Connection::open(phone.path())
        .unwrap()
        .query_row(
            "SELECT data FROM documents WHERE id = ?1",
            [&case_id],
            |r| r.get(0),
        )
        .unwrap();
    let actor = menqian_core::hex::decode(&phone.store.actor_id()).unwrap();
    let edit = |description: &str| {
        let mut doc = automerge::AutoCommit::load(&saved)
            .unwrap()
            .with_actor(automerge::ActorId::from(actor.clone()));
        use automerge::transaction::Transactable as _;
        doc.put(automerge::ROOT, "description", description)
            .unwrap();
        let bytes = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
        push_raw(
            &station.url,
            &phone.token,
            vec![DocChange {
                doc_id: case_id.clone(),
                bytes,
            }],
        )
    };
    // … and text longer than its form takes, in characters.
    for (bad, why) in [
        ("堆物\u{1b}[2J".to_string(), "control character"),
        ("堆".repeat(501), "longer than 500 characters"),
    ] {
        let (status, body) = edit(&bad);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_change")),
            "{body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("description") && message.contains(why),
            "{body}"
        );
    }
    // The longest description the phone's form takes reaches the station.
    let mut longest = new_case_at(5, "officer-1");
    longest.description = "堆".repeat(500);
    let id = phone.store.report_case(longest).unwrap();
    phone.sync().unwrap();
    let stored = station.admin().documents().case(&id).unwrap();
    assert_eq!(stored.description, "堆".repeat(500));
    // A device name an older station accepted, printed by `device list`.
    let accounts = rusqlite::Connection::open(station.dir.path().join("accounts.sqlite")).unwrap();
    accounts
        .execute(
            "UPDATE devices SET name = ?1 WHERE id = ?2",
            ["旧\u{1b}[31m手机\nroot", phone.device_id.as_str()],
        )
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args([
            "--data",
            station.dir.path().to_str().unwrap(),
            "device",
            "list",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("旧\\u{1b}[31m手机\\nroot"), "{text}");
}

/// 10. With thousands of reports waiting and the sweep running every second,
///     no push waits behind it: the sweep works in short slices.
#[test]
fn the_sweep_never_holds_up_a_push() {
    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    {
        let mut store = menqian_core::Store::open(
            dir.path().join("station.sqlite"),
            menqian_core::StoreConfig::default(),
        )
        .unwrap();
        for i in 0..5_000 {
            store.report_case(new_case_at(i, "steward-1")).unwrap();
        }
    }
    let station = StationProcess::start_in(dir, &["--sweep-every-secs", "1"], None);
    let mut officer = station.phone("officer-1");
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        officer
            .store
            .report_case(new_case_at(9_000, "officer-1"))
            .unwrap();
        let t = Instant::now();
        officer.sync().unwrap();
        slowest = slowest.max(t.elapsed());
    }
    // Not a speed figure: before, a push waited for the whole sweep (17
    // minutes of CPU at 100,000 reports).
    assert!(slowest < Duration::from_secs(2), "a sync took {slowest:?}");
    assert!(station.healthy());
}
