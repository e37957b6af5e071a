//! A city's station: several instances of the station binary on one
//! PostgreSQL database, behind haproxy (issue 17). Each test starts its own
//! cluster, instances and load balancer on free ports and stops them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;
mod pg;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Device, HOST, StationProcess, seed_store};
use menqian_core::ShopPatch;
use menqian_sync_server::SyncStore;
use menqian_sync_server::store::postgres::{PUSH_CONNECTIONS, PgSyncStore};

/// haproxy in front of `backends`, round robin, each checked at /readyz.
struct Haproxy {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backends: &[u16]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!("    server s{i} 127.0.0.1:{p} check inter 300ms fall 2 rise 1\n")
            })
            .collect();
        let config = format!(
            "global\n    maxconn 512\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    retries 2\n    option redispatch\n\
             frontend menqian\n    bind 127.0.0.1:{port}\n    default_backend stations\n\
             backend stations\n    balance roundrobin\n    option httpchk GET /readyz\n{servers}"
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config).unwrap();
        let child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy (scripts/system-deps.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = reqwest::blocking::get(format!("{url}/readyz"))
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "haproxy did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Haproxy {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database seeded with the demo street, and an enrollment code per user.
fn seeded(url: &str, users: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = PgSyncStore::open(url, dir.path(), vec![HOST.into()]).unwrap();
    seed_store(&mut store, menqian_fixtures::STREET_SHOPS);
    users
        .iter()
        .map(|u| {
            store
                .accounts()
                .issue_enrollment(u, Utc::now(), chrono::Duration::hours(1))
                .unwrap()
        })
        .collect()
}

fn instance(url: &str) -> StationProcess {
    StationProcess::start_in(
        tempfile::tempdir().unwrap(),
        &["--database", url, "--qr-host", HOST],
        None,
    )
}

/// Two officers' phones sync through three instances, every request to the
/// next: each phone receives what the other pushed, and both end up with the
/// same documents.
#[test]
fn three_instances_behind_haproxy_serve_one_district() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let codes = seeded(&url, &["officer-1", "officer-2"]);
    let instances: Vec<StationProcess> = (0..3).map(|_| instance(&url)).collect();
    let lb = Haproxy::start(&instances.iter().map(|i| i.port).collect::<Vec<_>>());

    let mut one = Device::enroll(&lb.url, &codes[0], "一号机");
    let mut two = Device::enroll(&lb.url, &codes[1], "二号机");
    one.sync().unwrap();
    two.sync().unwrap();
    let shops = one.store.all_shops().unwrap();
    assert_eq!(shops.len(), menqian_fixtures::STREET_SHOPS);
    let (first, second) = (shops[0].id(), shops[1].id());
    one.store
        .update_shop(
            &first,
            ShopPatch {
                name: Some("一号机改的名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    two.store
        .update_shop(
            &second,
            ShopPatch {
                name: Some("二号机改的名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    common::report_at(&mut one.store, &shops[2], "0504", "门前摆摊");
    // Each sync is several requests, each to the next instance; an instance
    // may not have taken in the other's push yet, so sync until both have
    // everything (at most a few seconds).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        one.sync().unwrap();
        two.sync().unwrap();
        let a = one.store.documents_json().unwrap();
        let b = two.store.documents_json().unwrap();
        if a == b
            && two.store.shop(&first).unwrap().name == "一号机改的名"
            && one.store.shop(&second).unwrap().name == "二号机改的名"
        {
            break;
        }
        assert!(Instant::now() < deadline, "the phones did not converge");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        two.store.cases(None, 10).unwrap().len(),
        1,
        "the report reached the other phone"
    );
    // Every instance took part (its metrics count pulls it served), and
    // every one is caught up.
    for i in &instances {
        let metrics = reqwest::blocking::get(format!("{}/metrics", i.url))
            .unwrap()
            .text()
            .unwrap();
        let pulls: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("menqian_http_requests_total{") && l.contains("route=\"/v1/pull\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(pulls > 0.0, "an instance served no pull:\n{metrics}");
        let ready = reqwest::blocking::get(format!("{}/readyz", i.url)).unwrap();
        assert!(ready.status().is_success());
    }
}

/// Phones keep editing and syncing through the load balancer while an
/// instance is killed (`kill -9`) and started again every two seconds, and
/// PostgreSQL is stopped as a crash would stop it and started again. No
/// change a phone pushed is lost or applied twice, and every phone ends with
/// the same documents and index rows.
#[test]
fn no_change_is_lost_when_instances_and_the_database_crash() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    const PHONES: usize = 4;
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let users = ["officer-1", "officer-2", "officer-1", "officer-2"];
    let codes = seeded(&url, &users);
    let args = ["--database", url.as_str(), "--qr-host", HOST];
    let mut instances: Vec<StationProcess> = (0..3)
        .map(|_| StationProcess::start_in(tempfile::tempdir().unwrap(), &args, None))
        .collect();
    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    let lb = Haproxy::start(&ports);

    let mut phones: Vec<Device> = codes
        .iter()
        .enumerate()
        .map(|(n, code)| Device::enroll(&lb.url, code, &format!("{n}号机")))
        .collect();
    for phone in &mut phones {
        phone.sync().unwrap();
    }
    let shops = phones[0].store.all_shops().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (synced, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = phones
        .into_iter()
        .enumerate()
        .map(|(n, mut phone)| {
            let (stop, synced, failed) = (stop.clone(), synced.clone(), failed.clone());
            let shop = shops[n].clone();
            let report_shop = shops[PHONES + n].clone();
            std::thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    k += 1;
                    phone
                        .store
                        .update_shop(
                            &shop.id(),
                            ShopPatch {
                                name: Some(format!("{n}号机第{k}次")),
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    // (Reports are filed as officer-1, whose phones these are.)
                    if k % 5 == 0 && n % 2 == 0 {
                        common::report_at(
                            &mut phone.store,
                            &report_shop,
                            "0504",
                            &format!("第{k}次"),
                        );
                    }
                    match phone.sync() {
                        Ok(_) => synced.fetch_add(1, Ordering::SeqCst),
                        Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                    };
                    std::thread::sleep(Duration::from_millis(30));
                }
                (phone, format!("{n}号机第{k}次"))
            })
        })
        .collect();

    // Kill an instance every two seconds and start it again on its port,
    // with its data directory (its read model) as it was; halfway, crash
    // the database and start it again.
    for round in 0..6 {
        std::thread::sleep(Duration::from_secs(2));
        let i = rand::random_range(0..instances.len());
        let (dir, port) = instances.remove(i).kill();
        if round == 3 {
            cluster.crash();
            std::thread::sleep(Duration::from_millis(1_500));
            cluster.restart();
        }
        instances.insert(i, StationProcess::start_on(dir, port, &args, None));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let mut phones: Vec<(Device, String)> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        synced.load(Ordering::SeqCst) > 20,
        "the phones kept working"
    );
    eprintln!(
        "{} syncs succeeded and {} failed during the faults",
        synced.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );

    // Afterwards every phone syncs until they all agree.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut clean = true;
        let mut errors = Vec::new();
        for (phone, _) in &mut phones {
            if let Err(e) = phone.sync() {
                clean = false;
                errors.push(e.to_string());
            }
        }
        let names_arrived = phones.iter().all(|(p, _)| {
            phones
                .iter()
                .enumerate()
                .all(|(n, (_, last))| p.store.shop(&shops[n].id()).unwrap().name == *last)
        });
        let docs: Vec<_> = phones
            .iter()
            .map(|(p, _)| p.store.documents_json().unwrap())
            .collect();
        let index: Vec<_> = phones
            .iter()
            .map(|(p, _)| p.store.index_snapshot().unwrap())
            .collect();
        if clean
            && names_arrived
            && docs.windows(2).all(|w| w[0] == w[1])
            && index.windows(2).all(|w| w[0] == w[1])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the phones did not converge after the faults: clean {clean} {errors:?}, names {names_arrived}, documents {}, index {}",
            docs.windows(2).all(|w| w[0] == w[1]),
            index.windows(2).all(|w| w[0] == w[1])
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Every change any phone made is in the feed once, and the feed's
    // positions have no holes.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT hash), count(pos), coalesce(max(pos), 0) FROM feed",
            &[],
        )
        .unwrap();
    let (rows, distinct, placed, top): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (rows, placed, top),
        (distinct, distinct, distinct),
        "each change once, every one placed, no holes"
    );
    let hashes: std::collections::HashSet<Vec<u8>> = db
        .query("SELECT hash FROM feed", &[])
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for (phone, _) in &phones {
        for change in phone.store.own_changes_since(0, u32::MAX).unwrap().changes {
            let hash = automerge::Change::from_bytes(change.bytes).unwrap().hash();
            assert!(
                hashes.contains(hash.as_ref()),
                "a phone's change is missing from the feed"
            );
        }
    }
}

/// A district's station moves from its SQLite files into PostgreSQL with
/// `migrate`: every change keeps its position, so a phone carries on with
/// its token and cursor; enrollment codes, passwords and photos move too.
#[test]
fn a_district_station_migrates_into_postgres_and_its_phones_carry_on() {
    use menqian_sync_server::SqliteSyncStore;

    let dir = tempfile::tempdir().unwrap();
    common::seed(dir.path());
    let (code, later_code) = {
        let mut s = SqliteSyncStore::open(dir.path(), vec![HOST.into()]).unwrap();
        let a = s.accounts();
        a.set_password_hash("supervisor-1", Some("$argon2id$v=19$stand-in"))
            .unwrap();
        let issue = |a: &mut dyn menqian_sync_server::store::Accounts| {
            a.issue_enrollment("officer-1", Utc::now(), chrono::Duration::hours(1))
                .unwrap()
        };
        (issue(&mut *a), issue(&mut *a))
    };
    let station = StationProcess::start_in(dir, &["--qr-host", HOST], None);
    let mut phone = Device::enroll(&station.url, &code, "一号机");
    phone.sync().unwrap();
    let shop = phone.store.all_shops().unwrap().remove(0);
    phone
        .store
        .update_shop(
            &shop.id(),
            ShopPatch {
                name: Some("迁移前改的名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    common::report_at(&mut phone.store, &shop, "0504", "迁移前的报告");
    phone.sync().unwrap();
    let (dir, port) = station.kill();
    let old_feed: Vec<(i64, Vec<u8>)> = {
        let c = rusqlite::Connection::open(dir.path().join("station.sqlite")).unwrap();
        let mut q = c
            .prepare("SELECT seq, hash FROM changes ORDER BY seq")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };

    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args(["--data", dir.path().to_str().unwrap(), "--qr-host", HOST])
        .args(["migrate", "--to", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("devices: 1 rows"), "{said}");
    // A second run refuses: the database holds a station now.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args([
            "--data",
            dir.path().to_str().unwrap(),
            "migrate",
            "--to",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());

    // Every change at the position it had.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let new_feed: Vec<(i64, Vec<u8>)> = db
        .query("SELECT pos, hash FROM feed ORDER BY pos", &[])
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(new_feed, old_feed);
    let phc: Option<String> = db
        .query_one(
            "SELECT password_hash FROM users WHERE id = 'supervisor-1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(phc.as_deref(), Some("$argon2id$v=19$stand-in"));

    // The same phone, token and cursor, on the station now on PostgreSQL.
    let station =
        StationProcess::start_on(dir, port, &["--database", &url, "--qr-host", HOST], None);
    let before = phone.store.documents_json().unwrap();
    let report = phone.sync().unwrap();
    assert_eq!(report.pulled, 0, "nothing new, nothing again");
    assert_eq!(phone.store.documents_json().unwrap(), before);
    phone
        .store
        .update_shop(
            &shop.id(),
            ShopPatch {
                name: Some("迁移后改的名".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(phone.sync().unwrap().pushed, 1);
    // A code issued before the move enrolls a second phone, which gets
    // everything.
    let mut second = Device::enroll(&station.url, &later_code, "二号机");
    second.sync().unwrap();
    phone.sync().unwrap();
    assert_eq!(second.store.shop(&shop.id()).unwrap().name, "迁移后改的名");
    assert_eq!(second.store.cases(None, 10).unwrap().len(), 1);
    assert_eq!(
        second.store.documents_json().unwrap(),
        phone.store.documents_json().unwrap()
    );
}

/// moto's S3 server (PyPI `moto[server]`, pinned; scripts/python-deps.sh
/// installs it into .tools/moto-py) on a free port, with one bucket.
struct S3 {
    child: std::process::Child,
    endpoint: String,
}

impl S3 {
    fn start(bucket: &str) -> S3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tools = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/moto-py");
        let path = std::env::var("MENQIAN_MOTO_PY").unwrap_or_else(|_| tools.to_string());
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("PYTHONPATH", path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with moto (bash scripts/python-deps.sh installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Creating the bucket is also the sign it is up.
            if let Ok(r) = reqwest::blocking::Client::new()
                .put(format!("{endpoint}/{bucket}"))
                .send()
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "moto did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        S3 { child, endpoint }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "menqian-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "menqian-test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Photos live in object storage shared by the instances: a photo whose
/// upload began through one instance, which was then killed, resumes
/// through another where the first stopped; the object store holds it once
/// complete, and the chunks kept meanwhile are gone; an instance
/// that never received it serves it to a supervisor from there.
#[test]
fn photos_are_shared_through_object_storage() {
    let city = PhotoCity::new(&["officer-1", "supervisor-1"], &[]);
    let (a, b) = (city.start(), city.start());

    let mut officer = Device::enroll(&a.url, &city.codes[0], "一号机");
    officer.sync().unwrap();
    let hashes = photographed_case(&mut officer, &["seeding_by_Clements_Engelhardt.jpg"]);
    let photo = &hashes[0];
    // The records, and half the photo, through the first instance.
    common::push_records(&a.url, &officer);
    let bytes = std::fs::read(officer.store.blob_path(photo).unwrap()).unwrap();
    let half = bytes.len() / 2;
    let (status, body) = common::put_to(
        &a.url,
        &officer.token,
        photo,
        0,
        &bytes.len().to_string(),
        &bytes[..half],
    );
    assert_eq!(status, 200, "{body}");
    drop(a.kill());
    // The second instance knows the half the first acknowledged.
    let status: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/v1/blobs/{}/status", b.url, photo))
        .bearer_auth(&officer.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (status["received"].as_u64(), status["complete"].as_bool()),
        (Some(half as u64), Some(false)),
        "{status}"
    );
    // The phone goes on through the second, from there.
    officer.client = menqian_client::SyncClient::new(&b.url, Some(officer.token.clone())).unwrap();
    let report = officer.sync().unwrap();
    assert_eq!(report.photos_uploaded, 2, "the photo and its thumbnail");
    // The object store holds the photo and its thumbnail (its listing; an
    // unsigned GET of an object is refused).
    let listing = reqwest::blocking::get(format!("{}/menqian?list-type=2", city.s3.endpoint))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        listing.contains(&format!("<Key>photos/{}</Key><LastModified>", photo))
            && listing.contains(&format!("<Size>{}</Size>", bytes.len())),
        "{listing}"
    );
    // The acknowledged chunks were kept only until the photo was whole.
    assert_eq!(listing.matches("<Key>").count(), 2, "{listing}");
    // A third instance, which never saw it, serves it to a supervisor.
    let c = city.start();
    let mut supervisor = Device::enroll(&c.url, &city.codes[1], "督查员");
    supervisor.sync().unwrap();
    let served = reqwest::blocking::Client::new()
        .get(format!("{}/v1/blobs/{}", c.url, photo))
        .bearer_auth(&supervisor.token)
        .send()
        .unwrap();
    assert!(served.status().is_success(), "{}", served.status());
    assert_eq!(served.bytes().unwrap().to_vec(), bytes);
}

/// A city's station on PostgreSQL with its photos in object storage (moto),
/// its instances started with [`PhotoCity::start`].
struct PhotoCity {
    s3: S3,
    _cluster: pg::PgCluster,
    args: Vec<String>,
    codes: Vec<String>,
}

impl PhotoCity {
    /// The demo street, an enrollment code for each of `users`, and `extra`
    /// arguments for every instance.
    fn new(users: &[&str], extra: &[&str]) -> PhotoCity {
        let s3 = S3::start("menqian");
        let cluster = pg::PgCluster::start();
        let url = cluster.database("menqian");
        let codes = seeded(&url, users);
        let args: Vec<String> = ["--database", &url, "--qr-host", HOST]
            .into_iter()
            .chain(["--blobs", "s3://menqian/photos"])
            .chain(extra.iter().copied())
            .map(String::from)
            .collect();
        PhotoCity {
            s3,
            _cluster: cluster,
            args,
            codes,
        }
    }

    fn start(&self) -> StationProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let env = self.s3.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        StationProcess::start_env(tempfile::tempdir().unwrap(), port, &args, None, &env)
    }
}

/// A case on the officer's first shop with a photo from each of `sources`
/// (files under /usr/share/backgrounds), not yet pushed; the photos' hashes.
fn photographed_case(officer: &mut Device, sources: &[&str]) -> Vec<String> {
    let shop = officer.store.all_shops().unwrap().remove(0);
    let hashes: Vec<String> = sources
        .iter()
        .map(|file| {
            let path = std::path::Path::new("/usr/share/backgrounds").join(file);
            let capture = menqian_core::store::Capture {
                at: Utc::now(),
                fix: None,
                taken_by: "王磊".into(),
                shop_id: Some(shop.id()),
                place: None,
            };
            officer.store.capture_photo(&path, capture).unwrap().hash
        })
        .collect();
    officer
        .store
        .report_case(menqian_core::NewCase {
            source: menqian_core::CaseSource::Inspection,
            category: "0504".into(),
            location: shop.zone.centroid(),
            shop_id: Some(shop.id()),
            photos: hashes.clone(),
            description: "门前堆物".into(),
            deadline: None,
            reported_by: "officer-1".into(),
            reported_at: Utc::now(),
            subdistrict: None,
            lane: None,
        })
        .unwrap();
    hashes
}

/// A device's unfinished uploads are held to one bound across the city:
/// what it began through one instance counts at every other (each instance
/// counted only its own before, so a device could keep the bound's worth at
/// each).
#[test]
fn unfinished_uploads_count_at_every_instance() {
    let city = PhotoCity::new(&["officer-1"], &["--uploads-in-progress-mib", "1"]);
    let (a, b) = (city.start(), city.start());
    let mut officer = Device::enroll(&a.url, &city.codes[0], "一号机");
    officer.sync().unwrap();
    let hashes = photographed_case(
        &mut officer,
        &[
            "Fossa_by_Jasper_Roks.jpg",
            "Painting-Colors_by__herobrine7gamer.jpg",
            "Picture_0B_by_freespace.jpg",
            "Bridge_by_Sander_Klootwijk.jpg",
            "Dragonfly_by_Bolly.jpg",
            "seeding_by_Clements_Engelhardt.jpg",
            "mate/nature/Garden.jpg",
            "mate/nature/Dune.jpg",
            "mate/nature/Wood.jpg",
            "mate/nature/Storm.jpg",
            "mate/nature/GreenMeadow.jpg",
            "mate/nature/RainDrops.jpg",
        ],
    );
    common::push_records(&a.url, &officer);
    // Through the first instance, each photo but its last byte, while they
    // fit the bound (1 MiB).
    let mut held = 0;
    let mut refused = None;
    for hash in &hashes {
        let bytes = officer.store.blobs().read(hash).unwrap();
        if held + bytes.len() > 1 << 20 {
            refused = Some((hash, bytes));
            break;
        }
        let total = bytes.len().to_string();
        let (status, body) = common::put_to(
            &a.url,
            &officer.token,
            hash,
            0,
            &total,
            &bytes[..bytes.len() - 1],
        );
        assert_eq!(status, 200, "{body}");
        held += bytes.len() - 1;
    }
    let (hash, bytes) =
        refused.unwrap_or_else(|| panic!("the photos come to {held} bytes, within the bound"));
    assert!(held > 0, "at least one upload is in progress");
    // The next photo would pass it: refused at the second instance, which
    // holds none of those uploads itself, as at the first. The bound is
    // judged by the photo's whole size (`total`), so its first 4 KiB are
    // enough to ask (and the station, refusing before it reads a body,
    // cannot break the pipe under a large one).
    let total = bytes.len().to_string();
    for url in [&b.url, &a.url] {
        let (status, body) = common::put_to(url, &officer.token, hash, 0, &total, &bytes[..4096]);
        assert_eq!(
            (status, body["error"].as_str()),
            (507, Some("too_many_uploads")),
            "{url}: {body}"
        );
    }
}

/// A burst of pushes larger than an instance's push connections waits for
/// them instead of opening more: every push is applied, and the database
/// never sees more push connections from the instance than its bound (a
/// city's burst of 1,000 opened connections until PostgreSQL refused them).
#[test]
fn a_burst_of_pushes_shares_a_bounded_set_of_connections() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    const PUSHES: usize = 48;
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    seeded(&url, &[]);
    let dir = tempfile::tempdir().unwrap();
    let store = PgSyncStore::open(&url, dir.path(), vec![HOST.into()]).unwrap();
    let authority = store.authority().unwrap();
    let category: Vec<_> = menqian_fixtures::categories()
        .unwrap()
        .into_iter()
        .filter(|c| c.code == "0504")
        .collect();
    // Each push from a phone of its own: 100 new reports, so that a push
    // holds its connection for a while.
    let batches: Vec<_> = (0..PUSHES)
        .map(|i| {
            let mut s = menqian_core::Store::open(":memory:", Default::default()).unwrap();
            s.import_categories(category.clone()).unwrap();
            let before = s.feed_head().unwrap();
            for k in 0..100 {
                s.report_case(menqian_core::NewCase {
                    subdistrict: Some(menqian_fixtures::SUBDISTRICTS[0].into()),
                    lane: None,
                    source: menqian_core::CaseSource::Inspection,
                    category: "0504".into(),
                    location: menqian_core::GeoPoint::new(
                        39.80 + i as f64 * 5e-4,
                        116.30 + k as f64 * 6e-4,
                    ),
                    shop_id: None,
                    photos: vec![],
                    description: format!("同时推送{i}-{k}"),
                    deadline: None,
                    reported_by: "officer-1".into(),
                    reported_at: Utc::now(),
                })
                .unwrap();
            }
            let changes = s.own_changes_since(before, 1_000).unwrap().changes;
            let writer = menqian_core::Writer {
                user: "officer-1".into(),
                role: menqian_core::Role::Officer,
                actor: s.actor_id(),
            };
            (writer, menqian_core::decode_pushed(changes).unwrap())
        })
        .collect();
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let count = |c: &mut postgres::Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let before = count(&mut watch);
    let (most, stop) = (AtomicI64::new(0), AtomicBool::new(false));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                most.fetch_max(count(&mut watch), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let pushes: Vec<_> = batches
            .into_iter()
            .map(|(writer, changes)| {
                let authority = authority.clone();
                scope.spawn(move || {
                    let push = menqian_core::GroupedPush::new(changes, writer, Utc::now());
                    authority
                        .push_group(vec![push])
                        .unwrap()
                        .pop()
                        .unwrap()
                        .unwrap()
                })
            })
            .collect();
        for p in pushes {
            assert_eq!(p.join().unwrap().applied, 100);
        }
        stop.store(true, Ordering::SeqCst);
    });
    let opened = most.load(Ordering::SeqCst) - before;
    assert!(
        (1..=PUSH_CONNECTIONS as i64).contains(&opened),
        "{opened} connections opened for {PUSHES} pushes at once"
    );
}

/// Renames a shop through an instance's own writes, as the console does:
/// made on the read model, pushed into PostgreSQL, taken back.
fn rename(store: &mut PgSyncStore, shop: &str, name: &str) {
    store
        .documents()
        .update_shop(
            shop,
            ShopPatch {
                name: Some(name.into()),
                ..Default::default()
            },
        )
        .unwrap();
    store.publish().unwrap();
    store.catch_up().unwrap();
}

/// `f`, once more if it found its database connection closed (as a phone
/// retries a `503`).
fn retried<T>(
    mut f: impl FnMut() -> Result<T, menqian_sync_server::store::StoreError>,
) -> Result<T, menqian_sync_server::store::StoreError> {
    match f() {
        Err(menqian_sync_server::store::StoreError::Postgres(_)) => f(),
        answer => answer,
    }
}

/// The read models' files in `dir` set aside as another history's.
fn set_aside(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("diverged"))
        .collect()
}

/// A database restored from a backup is an earlier point of its history,
/// and the feed positions after it are given again to other changes. An
/// instance whose read model followed the lost changes answers that it
/// follows another history (so it is not ready and takes nothing more
/// from the feed) rather than skip the new changes at positions it believes
/// it has; started again, it sets its read model aside and builds it anew,
/// and then holds what every other instance holds.
#[test]
fn a_read_model_ahead_of_a_restored_database_is_built_again() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let code = seeded(&url, &["officer-1"]).remove(0);
    let hosts = || vec![HOST.to_string()];
    let dir = tempfile::tempdir().unwrap();
    let mut a = PgSyncStore::open(&url, dir.path(), hosts()).unwrap();
    let phone = a
        .enroll(
            &code,
            "00112233445566778899aabbccddeeff",
            "一号机",
            Utc::now(),
        )
        .unwrap();
    let backup = cluster.dump("menqian");
    let shops = a.documents().all_shops().unwrap();
    let (first, second) = (shops[0].id(), shops[1].id());
    let original = shops[0].name.clone();
    rename(&mut a, &first, "备份之后改的名");
    let followed = a.head().unwrap();
    // An instance process too, which has followed the same changes.
    let served = instance(&url);
    served.wait_ready(Duration::from_secs(20));
    cluster.restore("menqian", &backup);
    // After the restore, another instance's writes take the positions again.
    let other = tempfile::tempdir().unwrap();
    let mut b = PgSyncStore::open(&url, other.path(), hosts()).unwrap();
    for k in 0..3 {
        rename(&mut b, &second, &format!("恢复之后第{k}次改的名"));
    }
    assert!(b.head().unwrap() > followed);
    // `a` still runs. The restore closed its connections (a first use may
    // find one closed: `503`, try again); it opens others, and finds the
    // feed is not what it followed.
    use menqian_sync_server::store::StoreError;
    let lag = retried(|| a.lag());
    // Nor does it answer a phone from it.
    let (device, user) = retried(|| a.accounts().authenticate(&phone.token)).unwrap();
    let pulled = a.pull(&device, &user, 0, 100).map(|_| ());
    let snapshot = a.snapshot(&device, &user, None, 100).map(|_| ());
    for answer in [lag.map(|_| ()), a.catch_up().map(|_| ()), pulled, snapshot] {
        match answer {
            Err(StoreError::Diverged(why)) => {
                assert!(why.contains("another history"), "{why}")
            }
            other => panic!("expected the instance to notice, got {other:?}"),
        }
    }
    assert_eq!(a.documents().shop(&first).unwrap().name, "备份之后改的名");
    assert!(set_aside(dir.path()).is_empty());
    // The process says so to its load balancer (while its connections are
    // opened again, it says the database is not answering).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::blocking::get(format!("{}/readyz", served.url)).unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        assert_eq!(status, 503, "{body}");
        if body.contains("must be restarted") {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz said: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(a);
    // Started again, it builds its read model anew from the database.
    let mut a = PgSyncStore::open(&url, dir.path(), hosts()).unwrap();
    assert_eq!(
        set_aside(dir.path()).len(),
        1,
        "{:?}",
        set_aside(dir.path())
    );
    assert_eq!(a.lag().unwrap(), 0);
    assert_eq!(a.documents().shop(&first).unwrap().name, original);
    assert_eq!(
        a.documents().shop(&second).unwrap().name,
        "恢复之后第2次改的名"
    );
    b.catch_up().unwrap();
    assert_eq!(
        a.documents().documents_json().unwrap(),
        b.documents().documents_json().unwrap()
    );
    // And it follows on.
    rename(&mut b, &first, "重建之后改的名");
    a.catch_up().unwrap();
    assert_eq!(a.documents().shop(&first).unwrap().name, "重建之后改的名");
}

/// With a synchronous standby (docs/operations.md), a commit is answered
/// only once the standby has it on disk: when the primary crashes and the
/// standby is promoted, an instance pointed at it finds every write it was
/// told is durable, keeps its read model (the same history), and carries on.
#[test]
fn a_synchronous_standby_takes_over_with_every_acknowledged_write() {
    let primary = pg::PgCluster::start();
    let url = primary.database("menqian");
    seeded(&url, &[]);
    let standby = primary.standby(true);
    let hosts = || vec![HOST.to_string()];
    let dir = tempfile::tempdir().unwrap();
    let mut a = PgSyncStore::open(&url, dir.path(), hosts()).unwrap();
    let shops = a.documents().all_shops().unwrap();
    for (k, shop) in shops.iter().take(5).enumerate() {
        rename(&mut a, &shop.id(), &format!("切换之前第{k}次改的名"));
    }
    let head = a.head().unwrap();
    primary.crash();
    drop(a);
    standby.promote();
    let new_url = standby.url("menqian");
    let mut a = PgSyncStore::open(&new_url, dir.path(), hosts()).unwrap();
    assert!(set_aside(dir.path()).is_empty());
    assert_eq!(a.head().unwrap(), head);
    assert_eq!(a.lag().unwrap(), 0);
    for (k, shop) in shops.iter().take(5).enumerate() {
        assert_eq!(
            a.documents().shop(&shop.id()).unwrap().name,
            format!("切换之前第{k}次改的名")
        );
    }
    rename(&mut a, &shops[5].id(), "切换之后改的名");
    // A new instance on the new primary holds the same.
    let fresh = tempfile::tempdir().unwrap();
    let mut b = PgSyncStore::open(&new_url, fresh.path(), hosts()).unwrap();
    assert_eq!(
        a.documents().documents_json().unwrap(),
        b.documents().documents_json().unwrap()
    );
}
