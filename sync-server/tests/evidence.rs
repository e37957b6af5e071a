//! Photo evidence end to end, against a real server on 127.0.0.1: photos upload
//! after the records, resume after a cut, are verified and deduplicated, and
//! reach exactly the readers of a record that refers to them; records carry
//! the server's receive time and their clock evidence.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::sync::Mutex;

use common::{Device, TestServer, at, pass_every_item};
use menqian_client::DeviceSync as _;
use menqian_client::{SyncListener, SyncPhase, SyncProgress};
use menqian_core::evidence::sha256_hex;
use menqian_core::evidence::time::TimeCheck;
use menqian_core::store::Capture;
use menqian_core::{Error, GpsFix, ItemOutcome, ItemResult, NewInspection};

const SEEDING: &str = "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg";

/// PUTs `body` as the chunk at `offset` of a `total`-byte blob.
fn put_chunk(
    url: &str,
    token: &str,
    hash: &str,
    offset: usize,
    total: usize,
    body: &[u8],
) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .put(format!(
            "{url}/v1/blobs/{hash}?offset={offset}&total={total}"
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send()
        .unwrap()
}

/// The server's `{received, complete}` for a blob.
fn blob_status(url: &str, token: &str, hash: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(format!("{url}/v1/blobs/{hash}/status"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Records the phases a sync reports, in order.
#[derive(Default)]
struct Phases(Mutex<Vec<SyncPhase>>);

impl SyncListener for Phases {
    fn on_progress(&self, p: SyncProgress) -> Result<(), String> {
        let mut v = self.0.lock().map_err(|e| e.to_string())?;
        if v.last() != Some(&p.phase) {
            v.push(p.phase);
        }
        Ok(())
    }
}

/// A shop of the demo street that is not on the steward's lane.
fn shop_off_the_stewards_lane(d: &Device) -> menqian_core::Shop {
    let lane = menqian_fixtures::DEMO_LANES[0];
    let rows = d.store.search_shops("店", 200).unwrap();
    rows.into_iter()
        .map(|r| d.store.shop(&r.id).unwrap())
        .find(|s| s.lane.as_deref() != Some(lane))
        .unwrap()
}

/// officer-1's phone, enrolled and synced, and a shop not on the steward's lane.
fn synced_officer(server: &TestServer) -> (Device, menqian_core::Shop) {
    let mut officer = Device::enroll(&server.url, &server.code_for("officer-1"), "officer");
    officer.sync().unwrap();
    let shop = shop_off_the_stewards_lane(&officer);
    (officer, shop)
}

/// The officer photographs a failed item at `shop`, submits, and returns the
/// inspection id and the photo's hash.
fn inspect_with_photo(d: &mut Device, shop: &menqian_core::Shop) -> (String, String) {
    let centre = shop.zone.centroid();
    let fix = GpsFix {
        lat: centre.lat,
        lon: centre.lon,
        accuracy_m: 6.0,
        at: at(1),
    };
    let photo = d
        .store
        .capture_photo(
            std::path::Path::new(SEEDING),
            Capture {
                at: at(1),
                fix: Some(fix),
                taken_by: "王磊".into(),
                shop_id: Some(shop.id()),
                place: None,
            },
        )
        .unwrap();
    let id = d
        .store
        .start_inspection(NewInspection {
            shop_id: shop.id(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: "officer-1".into(),
            started_at: chrono::Utc::now(),
            fix: Some(fix),
        })
        .unwrap();
    pass_every_item(&mut d.store, &id);
    let fail = ItemResult {
        outcome: ItemOutcome::Fail,
        note: Some("门前堆物".into()),
        photos: vec![photo.hash.clone()],
    };
    d.store.record_item(&id, "BJ-04", fail).unwrap();
    d.store.submit_inspection(&id, chrono::Utc::now()).unwrap();
    (id, photo.hash)
}

#[test]
fn photos_follow_their_records_to_the_readers_of_those_records() {
    let server = TestServer::start();
    let (mut officer, shop) = synced_officer(&server);
    let (inspection, hash) = inspect_with_photo(&mut officer, &shop);
    let record = officer.store.inspection(&inspection).unwrap();
    let geofence = record.geofence.unwrap();
    assert_eq!(geofence.distance_m, 0.0, "standing in the zone");
    assert!(!geofence.flagged);
    let thumb = record.evidence[&hash].thumb.clone();
    assert_eq!(officer.store.pending_blobs().unwrap().len(), 2);

    let phases = Phases::default();
    let report = officer
        .store
        .sync(&officer.client, Some(&phases), &Default::default())
        .unwrap();
    assert_eq!(report.photos_uploaded, 2);
    let phases = phases.0.into_inner().unwrap();
    assert_eq!(
        phases,
        [SyncPhase::Push, SyncPhase::Pull, SyncPhase::Photos],
        "records first, photos after"
    );
    assert!(officer.store.pending_blobs().unwrap().is_empty());

    // The server holds the bytes under their hash, and the record's metadata.
    let blob_dir = menqian_core::store::blob_dir_for(&server.dir.path().join("station.sqlite"));
    let on_server = menqian_core::evidence::blobs::BlobDir::open(blob_dir).unwrap();
    let bytes = on_server.read(&hash).unwrap();
    assert_eq!(sha256_hex(&bytes), hash);
    assert_eq!(bytes, officer.store.blobs().read(&hash).unwrap());
    let doc = server
        .documents()
        .into_iter()
        .find(|(id, _)| *id == inspection)
        .unwrap()
        .1;
    assert_eq!(doc["evidence"][&hash]["width"], 1600);
    assert_eq!(doc["evidence"][&hash]["thumb"], thumb.as_str());

    // The supervisor sees the record and may fetch its photo and thumbnail.
    let mut supervisor = Device::enroll(&server.url, &server.code_for("supervisor-1"), "desk");
    supervisor.sync().unwrap();
    let cancel = Default::default();
    assert_eq!(
        supervisor.client.download_blob(&hash, &cancel).unwrap(),
        bytes
    );
    assert!(supervisor.client.download_blob(&thumb, &cancel).is_ok());
    // The steward of another lane does not see the record, nor its photo.
    let steward = Device::enroll(&server.url, &server.code_for("steward-1"), "steward");
    assert!(matches!(
        steward.client.download_blob(&hash, &cancel),
        Err(Error::Rejected { .. })
    ));

    // The record now carries the server's receive time, and the phone's clock
    // agrees with the server's.
    assert!(officer.store.received_at(&inspection).unwrap().is_some());
    let check = officer.store.time_check(&inspection).unwrap();
    assert!(
        matches!(check, TimeCheck::Consistent { .. }),
        "{check:?} (this machine has /proc/uptime)"
    );
}

#[test]
fn an_upload_cut_off_by_a_server_restart_resumes_where_the_server_stopped() {
    let server = TestServer::start();
    let (mut officer, shop) = synced_officer(&server);
    let (_, hash) = inspect_with_photo(&mut officer, &shop);
    let bytes = officer.store.blobs().read(&hash).unwrap();
    let total = bytes.len();
    // The record first, as a sync sends it; the first 100 kB of its photo
    // arrive; then the server goes down.
    common::push_records(&server.url, &officer);
    let first = put_chunk(
        &server.url,
        &officer.token,
        &hash,
        0,
        total,
        &bytes[..100_000],
    );
    assert_eq!(first.status(), 200);
    let server = server.restart();
    officer.client =
        menqian_client::SyncClient::new(&server.url, Some(officer.token.clone())).unwrap();
    let status = blob_status(&server.url, &officer.token, &hash);
    assert_eq!(
        status["received"], 100_000,
        "the acknowledged bytes survived"
    );
    assert_eq!(status["complete"], false);
    // A chunk at a stale offset is not written twice: the reply says where to resume.
    let stale: serde_json::Value = put_chunk(
        &server.url,
        &officer.token,
        &hash,
        0,
        total,
        &bytes[..50_000],
    )
    .json()
    .unwrap();
    assert_eq!(stale["received"], 100_000);

    let report = officer.sync().unwrap();
    assert_eq!(report.photos_uploaded, 2);
    let blob_dir = menqian_core::store::blob_dir_for(&server.dir.path().join("station.sqlite"));
    let on_server = menqian_core::evidence::blobs::BlobDir::open(blob_dir).unwrap();
    assert_eq!(on_server.read(&hash).unwrap(), bytes);
    // Sending it again is a no-op: the server already has it whole.
    let again: serde_json::Value = put_chunk(&server.url, &officer.token, &hash, 0, total, &bytes)
        .json()
        .unwrap();
    assert_eq!(again["complete"], true);
}

#[test]
fn forged_and_foreign_uploads_are_refused_and_nothing_is_kept() {
    let server = TestServer::start();
    let (mut officer, shop) = synced_officer(&server);
    let (_, hash) = inspect_with_photo(&mut officer, &shop);
    let token = officer.token.clone();
    let real = officer.store.blobs().read(&hash).unwrap();
    let put = |name: &str, token: &str, body: Vec<u8>| {
        put_chunk(&server.url, token, name, 0, body.len(), &body)
    };
    // Before the record that refers to it, the photo is refused.
    let r = put(&hash, &token, real.clone());
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["error"],
        "not_referenced"
    );
    common::push_records(&server.url, &officer);
    // Bytes that do not hash to their name.
    let mut forged = real.clone();
    forged[5000] ^= 0xFF;
    let r = put(&hash, &token, forged);
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"], "hash_mismatch");
    // Not a JPEG (under a name no record of this device refers to), a bad
    // name, a wrong token.
    let png = std::fs::read("/usr/share/backgrounds/mate/abstract/Flow.png").unwrap();
    assert_eq!(put(&sha256_hex(&png), &token, png).status(), 403);
    let mut not_jpeg = real.clone();
    not_jpeg[0] = b'P';
    assert_eq!(put(&hash, &token, not_jpeg).status(), 415);
    assert_eq!(put("not-a-hash", &token, real.clone()).status(), 400);
    assert_eq!(put(&hash, "wrong-token", real.clone()).status(), 401);
    let status = blob_status(&server.url, &token, &hash);
    assert_eq!(status["received"], 0, "nothing of the forgery was kept");
    assert_eq!(put(&hash, &token, real).status(), 200);
    // A steward, who may not see the record, learns nothing of the photo.
    let other = server.token_for("steward-1");
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/v1/blobs/{hash}", server.url))
        .bearer_auth(&other)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn a_phone_clock_set_back_is_flagged_and_an_inspection_far_away_is_off_site() {
    let server = TestServer::start();
    let (mut officer, shop) = synced_officer(&server); // the sync takes the server's time
    let centre = shop.zone.centroid();
    // The phone says it is two hours earlier than it is, and stands 300 m away.
    let wrong = chrono::Utc::now() - chrono::Duration::hours(2);
    let id = officer
        .store
        .start_inspection(NewInspection {
            shop_id: shop.id(),
            template_id: "beijing-1v5".into(),
            template_version: None,
            inspector: "officer-1".into(),
            started_at: wrong,
            fix: Some(GpsFix {
                lat: centre.lat + 300.0 / 111_195.0,
                lon: centre.lon,
                accuracy_m: 10.0,
                at: wrong,
            }),
        })
        .unwrap();
    let check = officer.store.time_check(&id).unwrap();
    match check {
        TimeCheck::Skewed { skew_ms } => {
            assert!((skew_ms + 7_200_000).abs() < 60_000, "{skew_ms}")
        }
        other => panic!("expected a skewed clock, got {other:?}"),
    }
    let g = officer.store.inspection(&id).unwrap().geofence.unwrap();
    assert!(g.flagged && g.distance_m > 250.0, "{g:?}");
    // The flags travel with the record: the station computes the same.
    officer.sync().unwrap();
    let station = server.admin();
    let mut station = station;
    let on_station = station.documents().inspection(&id).unwrap();
    assert!(on_station.geofence.unwrap().flagged);
    assert!(station.documents().time_check(&id).unwrap().is_flagged());
}
