//! A city on PostgreSQL (issue 17), in a release build over loopback:
//!
//!     cargo bench -p menqian-sync-server --bench city
//!
//! 300,000 shops in about 150 subdistricts, three station instances on one
//! private PostgreSQL cluster (durable commits), 30,000 virtual devices
//! (each a token and a pull cursor, nothing more). While the devices that
//! do not push pull (8 threads aiming at 100 a second in all, each waiting
//! for its pull), 1,000 devices push at once, five times over; then
//! 300 officers bootstrap their subdistricts at once. It records the p99
//! latencies and how far the instances' read models fall behind the feed.
//! The load clients are this process; the requests go to the instances round
//! robin, the work a load balancer does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

#[path = "burst/mod.rs"]
mod burst;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/pg/mod.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use menqian_core::wire::{self, WireBatch};
use menqian_core::*;
use menqian_sync_server::SyncStore;
use menqian_sync_server::store::postgres::PgSyncStore;

const SHOPS: usize = 300_000;
const DEVICES: usize = 30_000;
const INSTANCES: usize = 3;
const BURST: usize = 1_000;
const BURSTS: usize = 5;
const BOOTSTRAPS: usize = 300;
/// Threads pulling for the devices that do not push, all the while.
const PULLERS: usize = 8;
/// Their pulls a second in all: 25,000 devices each syncing about every
/// four minutes.
const PULLS_PER_SECOND: f64 = 100.0;

/// A virtual device: its token and where its pulls stand.
struct Virtual {
    token: String,
    cursor: AtomicU64,
}

fn main() {
    let day = Utc.with_ymd_and_hms(2026, 12, 10, 1, 0, 0).unwrap();
    let t = Instant::now();
    let (shops, subdistricts) = city_registry();
    println!(
        "(the city's registry: {} shops in {} subdistricts, made in {:.1?})",
        shops.len(),
        subdistricts.len(),
        t.elapsed()
    );
    let cluster = pg::PgCluster::start_durable();
    let url = cluster.database("menqian");
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        PgSyncStore::open(&url, &dir.path().join(name), vec![common::HOST.into()]).unwrap()
    };
    let t = Instant::now();
    {
        let mut seed = open("seed");
        let docs = seed.documents();
        docs.import_templates(menqian_fixtures::templates().unwrap())
            .unwrap();
        docs.import_categories(menqian_fixtures::categories().unwrap())
            .unwrap();
        docs.import_registry(shops.clone()).unwrap();
        for (i, name) in subdistricts.iter().enumerate() {
            seed.accounts()
                .add_user(&menqian_sync_server::User::new(
                    &format!("officer-{i}"),
                    &format!("巡查员{i}"),
                    Role::Officer,
                    Area::Subdistrict(name.clone()),
                ))
                .unwrap();
        }
        seed.publish().unwrap();
    }
    println!("seeded the city into PostgreSQL in {:.1?}", t.elapsed());
    let mut args = vec!["--database", url.as_str()];
    args.extend(["--sweep-every-secs", "86400"]);
    let t = Instant::now();
    let stations: Vec<_> = (0..INSTANCES)
        .map(|_| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            common::StationProcess::start_within(
                tempfile::tempdir().unwrap(),
                port,
                &args,
                None,
                &[],
                Duration::from_secs(1_800),
            )
        })
        .collect();
    for s in &stations {
        s.wait_ready(Duration::from_secs(1_800));
    }
    let http = reqwest::blocking::Client::new();
    println!(
        "{INSTANCES} instances built their read models from the feed in {:.1?}",
        t.elapsed()
    );
    let urls: Vec<String> = stations.iter().map(|s| s.url.clone()).collect();

    // The devices: officers' phones, spread over the subdistricts. Those
    // that will push get a real store (their changes are signed by its
    // actor); the others only an actor id.
    let mut admin = open("admin");
    let head = admin.head().unwrap();
    let t = Instant::now();
    let pushers = BURST * BURSTS;
    let category: Vec<Category> = menqian_fixtures::categories()
        .unwrap()
        .into_iter()
        .filter(|c| c.code == "0504")
        .collect();
    let near: Vec<GeoPoint> = subdistricts
        .iter()
        .map(|name| {
            shops
                .iter()
                .find(|s| s.subdistrict.as_deref() == Some(name.as_str()))
                .unwrap()
                .zone
                .centroid()
        })
        .collect();
    // Device i belongs to the officer of subdistrict i mod their number.
    let made = |range: std::ops::Range<usize>| -> Vec<(String, Vec<u8>)> {
        range
            .map(|i| {
                let sub = i % subdistricts.len();
                report(i, sub, &category, near[sub], &subdistricts[sub], day)
            })
            .collect()
    };
    let bodies: Vec<(String, Vec<u8>)> = std::thread::scope(|scope| {
        let half = pushers / 2;
        let made = &made;
        let first = scope.spawn(move || made(0..half));
        let mut second = made(half..pushers);
        let mut all = first.join().unwrap();
        all.append(&mut second);
        all
    });
    let mut devices = Vec::with_capacity(DEVICES);
    let mut push_bodies = Vec::with_capacity(pushers);
    for i in 0..DEVICES {
        let user = format!("officer-{}", i % subdistricts.len());
        let actor = match bodies.get(i) {
            Some((actor, body)) => {
                push_bodies.push(body.clone());
                actor.clone()
            }
            None => format!("{:032x}", 0xC17E_0000_0000u64 + i as u64),
        };
        let code = admin
            .accounts()
            .issue_enrollment(&user, Utc::now(), chrono::Duration::hours(1))
            .unwrap();
        let token = admin
            .enroll(&code, &actor, &format!("city-{i}"), Utc::now())
            .unwrap()
            .token;
        devices.push(Virtual {
            token,
            cursor: AtomicU64::new(head),
        });
    }
    println!(
        "(enrolled {DEVICES} devices, {pushers} of them with a report to push, in {:.1?})",
        t.elapsed()
    );
    let devices = Arc::new(devices);

    // Watchers: the read models' lag, and the devices pulling meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let watched = Instant::now();
    let lag_max = Arc::new(AtomicU64::new(0));
    let lag = {
        let (stop, lag_max, urls) = (stop.clone(), lag_max.clone(), urls.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    if let Some(l) = feed_lag(&http, u) {
                        lag_max.fetch_max(l, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let pull_latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let next_puller = Arc::new(AtomicUsize::new(pushers));
    let pulls_refused = Arc::new(AtomicU64::new(0));
    let pullers: Vec<_> = (0..PULLERS)
        .map(|p| {
            let (stop, devices, lat, next, url, refused) = (
                stop.clone(),
                devices.clone(),
                pull_latencies.clone(),
                next_puller.clone(),
                urls[p % urls.len()].clone(),
                pulls_refused.clone(),
            );
            std::thread::spawn(move || {
                // Idle connections closed before the station would (10 s).
                let http = reqwest::blocking::Client::builder()
                    .pool_idle_timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let every = Duration::from_secs_f64(PULLERS as f64 / PULLS_PER_SECOND);
                let mut due = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    due += every;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    // The devices that do not push, in turn.
                    let i = pushers + next.fetch_add(1, Ordering::Relaxed) % (DEVICES - pushers);
                    let d = &devices[i];
                    let started = Instant::now();
                    let r = http
                        .get(format!(
                            "{url}/v1/pull?after={}&limit=500",
                            d.cursor.load(Ordering::Relaxed)
                        ))
                        .bearer_auth(&d.token)
                        .send();
                    // A phone tries again after a network error.
                    let Ok(r) = r else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if r.status().as_u16() == 503 || r.status().as_u16() == 429 {
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    assert!(r.status().is_success(), "pull: {}", r.status());
                    let batch: WireBatch = wire::decode(&r.bytes().unwrap()).unwrap();
                    lat.lock().unwrap().push(started.elapsed());
                    d.cursor.store(batch.cursor, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Bursts of pushes.
    let runtime = burst::runtime();
    let client = burst::client(BURST);
    let mut push_lat = Vec::new();
    // The most lag seen over the whole run (`lag_max` is per burst).
    let mut lag_all = 0u64;
    for b in 0..BURSTS {
        lag_all = lag_all.max(lag_max.swap(0, Ordering::Relaxed));
        let t = Instant::now();
        let pushes = (b * BURST..(b + 1) * BURST)
            .map(|i| burst::Push {
                url: urls[i % urls.len()].clone(),
                token: devices[i].token.clone(),
                body: push_bodies[i].clone(),
            })
            .collect();
        let (lat, retries) = burst::push_all(&runtime, &client, pushes);
        let took = t.elapsed();
        // Until every instance's read model holds the burst.
        let settle = Instant::now();
        while urls.iter().any(|u| feed_lag(&http, u) != Some(0)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut sorted = lat.clone();
        sorted.sort();
        println!(
            "burst {b}: {BURST} pushes in {took:.2?}, p50 {:.0?}, p99 {:.0?}, max {:.0?} ({retries} tries again after a 503, 429 or network error); read models caught up {:.0?} after the last answer; most lag seen {} changes",
            burst::pct(&sorted, 0.5),
            burst::pct(&sorted, 0.99),
            sorted[sorted.len() - 1],
            settle.elapsed(),
            lag_max.load(Ordering::Relaxed)
        );
        push_lat.extend(lat);
        std::thread::sleep(Duration::from_secs(2));
    }
    push_lat.sort();

    // Officers bootstrap their subdistricts, all at once: each fetches its
    // snapshot pages, then pulls on from the snapshot's cursor.
    let t = Instant::now();
    let boots = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for k in 0..BOOTSTRAPS {
            // A device of the officer of subdistrict k (the pushers' come first).
            let i = pushers + k;
            let (client, url, token) = (
                client.clone(),
                urls[k % urls.len()].clone(),
                devices[i].token.clone(),
            );
            set.spawn(async move {
                let started = Instant::now();
                let mut after: Option<String> = None;
                let mut docs = 0usize;
                let mut requests = Vec::new();
                let mut retried = 0u32;
                let cursor = loop {
                    let mut page_url = format!("{url}/v1/snapshot?limit=2000");
                    if let Some(a) = &after {
                        page_url.push_str("&after=");
                        for b in a.bytes() {
                            match b {
                                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                                    page_url.push(b as char)
                                }
                                _ => page_url.push_str(&format!("%{b:02X}")),
                            }
                        }
                    }
                    let asked = Instant::now();
                    let r = client
                        .get(page_url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    if r.status().as_u16() == 503 || r.status().as_u16() == 429 {
                        retried += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    assert!(r.status().is_success(), "snapshot: {}", r.status());
                    let page: WireBatch = wire::decode(&r.bytes().await.unwrap()).unwrap();
                    requests.push(asked.elapsed());
                    docs += page.changes.len();
                    after = page.changes.last().map(|c| c.doc_id.clone());
                    if !page.more {
                        break page.cursor;
                    }
                };
                let r = client
                    .get(format!("{url}/v1/pull?after={cursor}&limit=500"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                (started.elapsed(), docs, requests, retried)
            });
        }
        let mut all = Vec::new();
        while let Some(b) = set.join_next().await {
            all.push(b.unwrap());
        }
        all
    });
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    for p in pullers {
        p.join().unwrap();
    }
    lag.join().unwrap();
    let mut whole: Vec<Duration> = boots.iter().map(|b| b.0).collect();
    whole.sort();
    let mut pages: Vec<Duration> = boots.iter().flat_map(|b| b.2.iter().copied()).collect();
    pages.sort();
    let docs: Vec<usize> = boots.iter().map(|b| b.1).collect();
    println!(
        "{BOOTSTRAPS} subdistrict bootstraps at once ({}–{} documents each, {} in all, {:.0} a second): all done in {took:.1?}; each p50 {:.2?}, p99 {:.2?}; snapshot page p99 {:.0?} ({} answered 503/429)",
        docs.iter().min().unwrap(),
        docs.iter().max().unwrap(),
        docs.iter().sum::<usize>(),
        docs.iter().sum::<usize>() as f64 / took.as_secs_f64(),
        burst::pct(&whole, 0.5),
        burst::pct(&whole, 0.99),
        burst::pct(&pages, 0.99),
        boots.iter().map(|b| b.3).sum::<u32>()
    );
    println!(
        "pushes over all bursts: p50 {:.0?}, p99 {:.0?}; most read-model lag seen over the run {} changes",
        burst::pct(&push_lat, 0.5),
        burst::pct(&push_lat, 0.99),
        lag_all.max(lag_max.load(Ordering::Relaxed))
    );
    let mut pulls = pull_latencies.lock().unwrap().clone();
    pulls.sort();
    println!(
        "pulls throughout (aiming at {PULLS_PER_SECOND} a second): {} pulls in {:.0?}, {:.1} a second, p50 {:.0?}, p99 {:.0?} ({} answered 503/429 or failed and were tried again)",
        pulls.len(),
        watched.elapsed(),
        pulls.len() as f64 / watched.elapsed().as_secs_f64(),
        burst::pct(&pulls, 0.5),
        burst::pct(&pulls, 0.99),
        pulls_refused.load(Ordering::Relaxed)
    );
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let connections: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    println!("connections to the database at the end: {connections} (this one included)");
    drop(stations);
    drop(cluster);
}

/// The instance's `menqian_feed_lag` gauge.
fn feed_lag(http: &reqwest::blocking::Client, url: &str) -> Option<u64> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("menqian_feed_lag "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The fixture's registry of `SHOPS` shops, with its subdistricts renamed so
/// that each holds about 2,000 shops as in the demo district (the fixture
/// gives the next streets the same 14 names over again).
fn city_registry() -> (Vec<Shop>, Vec<String>) {
    let mut shops = menqian_fixtures::registry(SHOPS).unwrap();
    let mut names: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    for s in &mut shops {
        if s.subdistrict != last {
            last = s.subdistrict.clone();
            let k = names.len();
            names.push(format!(
                "{}区{}",
                k / menqian_fixtures::SUBDISTRICTS.len() + 1,
                last.as_deref().unwrap_or_default()
            ));
        }
        s.subdistrict = names.last().cloned();
    }
    (shops, names)
}

/// Device `i`'s push (a phone of `officer-{officer}`): one new case near
/// `at`, in `subdistrict`, from a store
/// of its own. Its actor id and the encoded batch.
fn report(
    i: usize,
    officer: usize,
    category: &[Category],
    at: GeoPoint,
    subdistrict: &str,
    day: chrono::DateTime<Utc>,
) -> (String, Vec<u8>) {
    let mut s = Store::open(":memory:", StoreConfig::default()).unwrap();
    s.import_categories(category.to_vec()).unwrap();
    let before = s.feed_head().unwrap();
    s.report_case(NewCase {
        subdistrict: Some(subdistrict.to_string()),
        lane: None,
        source: CaseSource::Inspection,
        category: "0504".into(),
        // Each report in its own place, 50 m apart: distinct problems.
        location: GeoPoint::new(
            at.lat + (i / 100) as f64 * 4.5e-4,
            at.lon + (i % 100) as f64 * 5.9e-4,
        ),
        shop_id: None,
        photos: vec![],
        description: format!("城市模拟第{i}条"),
        deadline: None,
        reported_by: format!("officer-{officer}"),
        reported_at: day,
    })
    .unwrap();
    let body = wire::encode(&WireBatch {
        changes: s.own_changes_since(before, 10).unwrap().changes,
        ..Default::default()
    })
    .unwrap();
    (s.actor_id(), body)
}
