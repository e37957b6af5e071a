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
use menqian_sync_server::store::postgres::PgSyncStore;

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
