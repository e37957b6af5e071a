//! The sync figures (issue 3), in a release build over loopback:
//!
//!     cargo bench -p menqian-sync-server --bench sync
//!
//! A real server (in this process, on 127.0.0.1) with the 21,728-shop district.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that fails should stop loudly

#[path = "burst/mod.rs"]
mod burst;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/pg/mod.rs"]
mod pg;

use std::sync::Mutex;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use common::{Device, TestServer};
use menqian_client::DeviceSync as _;
use menqian_core::wire::{self, WireBatch};
use menqian_core::*;
use menqian_sync_server::SyncStore;

/// A server holding the first `shops` of the demo district, sweeping every
/// minute as a station does.
fn seeded_server(shops: usize) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    common::seed_with(dir.path(), shops);
    TestServer::start_in(dir)
}

/// The district, with no sweep until the server is restarted.
fn unswept_district() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    common::seed_with(dir.path(), menqian_fixtures::DISTRICT_SHOPS);
    TestServer::start_with(
        dir,
        menqian_sync_server::Options {
            sweep_every: std::time::Duration::from_secs(86_400),
            ..Default::default()
        },
    )
}

/// The district's station as its own process, with no sweep until
/// restarted: on PostgreSQL (a private cluster, durable commits) when
/// `postgres`, else on the embedded store. With the cluster that keeps it
/// and a handle for enrolling devices.
fn district_process(
    postgres: bool,
) -> (
    Option<pg::PgCluster>,
    common::StationProcess,
    Box<dyn SyncStore>,
) {
    if !postgres {
        let dir = tempfile::tempdir().unwrap();
        common::seed_with(dir.path(), menqian_fixtures::DISTRICT_SHOPS);
        let station = common::StationProcess::start_in(dir, &NO_SWEEP, None);
        let admin = Box::new(station.admin());
        return (None, station, admin);
    }
    let (cluster, mut stations, admin) = postgres_district(1);
    (Some(cluster), stations.remove(0), admin)
}

const NO_SWEEP: [&str; 2] = ["--sweep-every-secs", "86400"];

/// The district seeded into a private PostgreSQL cluster (durable commits),
/// and `instances` stations on it, each its own process, each ready (its
/// read model caught up).
fn postgres_district(
    instances: usize,
) -> (
    pg::PgCluster,
    Vec<common::StationProcess>,
    Box<dyn SyncStore>,
) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = pg::PgCluster::start_durable();
    let url = cluster.database("menqian");
    let open = |path: &std::path::Path| {
        menqian_sync_server::store::postgres::PgSyncStore::open(
            &url,
            path,
            vec![common::HOST.into()],
        )
        .unwrap()
    };
    let t = Instant::now();
    common::seed_store(
        &mut open(&dir.path().join("seed")),
        menqian_fixtures::DISTRICT_SHOPS,
    );
    println!("seeded the district into PostgreSQL in {:.1?}", t.elapsed());
    let admin = Box::new(open(&dir.path().join("admin")));
    let mut args = vec!["--database", url.as_str()];
    args.extend(NO_SWEEP);
    let stations: Vec<_> = (0..instances)
        .map(|_| common::StationProcess::start_in(tempfile::tempdir().unwrap(), &args, None))
        .collect();
    // Ready once its read model has taken in the district.
    for station in &stations {
        station.wait_ready(std::time::Duration::from_secs(600));
    }
    drop(dir);
    (cluster, stations, admin)
}

/// A cgroup for a benchmark's processes (cgroups v1, as this machine has
/// them: the `cpu` hierarchy for a quota, `cpuacct` for the CPU time used).
/// Its processes go back to the root group when it drops.
struct CpuGroup {
    dirs: [std::path::PathBuf; 2],
}

impl CpuGroup {
    /// A new group `name`, held to `share` of one core if given.
    fn new(name: &str, share: Option<f64>) -> CpuGroup {
        let dirs = ["cpu", "cpuacct"]
            .map(|h| std::path::PathBuf::from(format!("/sys/fs/cgroup/{h}/menqian-bench-{name}")));
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (the scaling benchmark needs root and cgroups v1)",
                    d.display()
                )
            });
        }
        let period = 100_000u64;
        let quota = share.map_or(-1i64, |s| (s * period as f64) as i64);
        std::fs::write(dirs[0].join("cpu.cfs_period_us"), period.to_string()).unwrap();
        std::fs::write(dirs[0].join("cpu.cfs_quota_us"), quota.to_string()).unwrap();
        CpuGroup { dirs }
    }

    /// Moves the process `pid` (all its threads) into this group.
    fn add(&self, pid: u32) -> std::io::Result<()> {
        for d in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// CPU time its processes have used since they joined, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let ns: u64 = std::fs::read_to_string(self.dirs[1].join("cpuacct.usage"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        ns as f64 / 1e9
    }

    /// Periods in which the quota stopped the group.
    fn throttled(&self) -> u64 {
        std::fs::read_to_string(self.dirs[0].join("cpu.stat"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            let root = d.parent().unwrap().join("cgroup.procs");
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(&root, pid);
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `-- scale`: 1, 2 and 3 instances on one PostgreSQL, each instance held to
/// [`SHARE`] of a core, PostgreSQL not held; the same push load spread over
/// them round robin. Throughput, and the CPU one change costs in the
/// instances and in PostgreSQL.
fn scaling(day: chrono::DateTime<Utc>, in_flight_each: usize) {
    const SHARE: f64 = 0.3;
    const DEVICES: usize = 600;
    let mut rows = Vec::new();
    for n in 1..=3 {
        println!("== {n} instance(s), each held to {SHARE} of a core");
        let (cluster, stations, mut admin) = postgres_district(n);
        let groups: Vec<CpuGroup> = stations
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let g = CpuGroup::new(&format!("instance-{i}"), Some(SHARE));
                g.add(s.pid()).unwrap();
                g
            })
            .collect();
        let pg_group = CpuGroup::new("postgres", None);
        for pid in cluster.processes() {
            // A process that ended meanwhile is no loss.
            let _ = pg_group.add(pid);
        }
        let urls: Vec<String> = stations.iter().map(|s| s.url.clone()).collect();
        let used = |g: &[&CpuGroup]| g.iter().map(|g| g.cpu_seconds()).sum::<f64>();
        let instances: Vec<&CpuGroup> = groups.iter().collect();
        let (i0, p0) = (used(&instances), pg_group.cpu_seconds());
        let t0: u64 = groups.iter().map(|g| g.throttled()).sum();
        let r = load_test(&urls, admin.as_mut(), day, in_flight_each * n, 0, DEVICES);
        let (i1, p1) = (used(&instances), pg_group.cpu_seconds());
        let t1: u64 = groups.iter().map(|g| g.throttled()).sum();
        let changes = r.changes as f64;
        println!(
            "CPU per change: {:.0} µs in the instances, {:.0} µs in PostgreSQL ({} periods throttled)",
            (i1 - i0) / changes * 1e6,
            (p1 - p0) / changes * 1e6,
            t1 - t0
        );
        rows.push((n, r, (i1 - i0) / changes * 1e6, (p1 - p0) / changes * 1e6));
        drop(stations);
        drop(groups);
        drop(pg_group);
        drop(cluster);
    }
    let base = rows[0].1.per_second;
    println!(
        "| instances | accepted changes/s | × one | push p50 | push p99 | CPU µs/change, instances | CPU µs/change, PostgreSQL |"
    );
    for (n, r, inst, pg) in rows {
        println!(
            "| {n} | {:.0} | {:.2} | {:.0?} | {:.0?} | {inst:.0} | {pg:.0} |",
            r.per_second,
            r.per_second / base,
            r.p50,
            r.p99
        );
    }
}

fn main() {
    let mut words = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let mode = words.next();
    let number: Option<usize> = words.next().map(|n| n.parse().unwrap());
    let in_flight = number.unwrap_or(4);
    let day = Utc.with_ymd_and_hms(2026, 12, 10, 1, 0, 0).unwrap();
    match mode.as_deref() {
        // `cargo bench -p menqian-sync-server --bench sync -- flood`: only
        // the flooded pull, on the district.
        Some("flood") => {
            let server = seeded_server(menqian_fixtures::DISTRICT_SHOPS);
            let mut phone = Device::enroll(&server.url, &server.code_for("officer-1"), "other");
            phone.sync().unwrap();
            flooded_pull(&server, &mut phone);
            return;
        }
        // `-- load [N]`: only the push load, three times at N requests in
        // flight (4 by default), with no sweep: the figure to compare one
        // build of the code with another. The station is its own process
        // (the release binary), so these clients do not share its threads.
        // `-- apply [G]`: the writer's own cost of the push load, in this
        // process, G pushes a group (4 by default); every other run with
        // the pushes merged ahead first (as the station's handlers do),
        // timed apart.
        Some("apply") => {
            apply_cost(day, in_flight);
            return;
        }
        // `-- merge-steps`: what merging one pushed new case costs, step
        // by step, on one thread.
        Some("merge-steps") => {
            merge_steps(day);
            return;
        }
        Some("load") => {
            let (_cluster, station, mut admin) = district_process(false);
            three_loads(&station.url, admin.as_mut(), day, in_flight);
            return;
        }
        // `-- load-held [N]` (as root, for cgroups): the same, the station
        // held to one core's worth of CPU (a quota of 1.0 over its threads;
        // the clients are not held): a stand-in for a machine whose two
        // cores run at half this one's speed.
        Some("load-held") => {
            let (_cluster, station, mut admin) = district_process(false);
            let group = CpuGroup::new("held", Some(1.0));
            group.add(station.pid()).unwrap();
            let (cpu, throttled) = (group.cpu_seconds(), group.throttled());
            three_loads(&station.url, admin.as_mut(), day, in_flight);
            println!(
                "the station: {:.1} s of CPU over the three loads and their setup, held back in {} periods of 100 ms",
                group.cpu_seconds() - cpu,
                group.throttled() - throttled
            );
            return;
        }
        // `-- load-postgres [N]`: the same push load on a station whose
        // store is in PostgreSQL (a private cluster, durable commits), then
        // on the embedded SQLite store, side by side.
        Some("load-postgres") => {
            for postgres in [true, false] {
                println!("== {}", if postgres { "postgres" } else { "sqlite" });
                let (_cluster, station, mut admin) = district_process(postgres);
                three_loads(&station.url, admin.as_mut(), day, in_flight);
            }
            return;
        }
        // `-- burst-postgres [N]`: bursts of 1,000 one-report pushes sent
        // at once to N instances on PostgreSQL (3 by default), round robin.
        Some("burst-postgres") => {
            let (_cluster, stations, mut admin) = postgres_district(number.unwrap_or(3));
            let urls: Vec<String> = stations.iter().map(|s| s.url.clone()).collect();
            bursts(&urls, admin.as_mut(), day);
            return;
        }
        // `-- burst`: the same bursts on the embedded store.
        Some("burst") => {
            let (_cluster, station, mut admin) = district_process(false);
            bursts(std::slice::from_ref(&station.url), admin.as_mut(), day);
            return;
        }
        // `-- scale [N]`: 1, 2 and 3 instances on PostgreSQL under CPU
        // quotas, N requests in flight per instance (4 by default).
        Some("scale") => {
            scaling(day, in_flight);
            return;
        }
        // `-- bootstrap`: only the district's bootstrap, three devices.
        Some("bootstrap") => {
            let server = seeded_server(menqian_fixtures::DISTRICT_SHOPS);
            district_bootstrap(&server);
            return;
        }
        // `-- bootstrap-device`: the device's half of the district's
        // bootstrap alone: the snapshot pages are fetched once, then loaded
        // into three new stores, timed (the part to profile).
        Some("bootstrap-device") => {
            let server = seeded_server(menqian_fixtures::DISTRICT_SHOPS);
            let d = Device::enroll(&server.url, &server.code_for("supervisor-1"), "pages");
            let cancel = Default::default();
            let mut pages = vec![d.client.snapshot(None, &cancel).unwrap()];
            while let Some(last) = pages.last().filter(|p| p.more) {
                let after = last.changes.last().unwrap().doc_id.clone();
                pages.push(d.client.snapshot(Some(&after), &cancel).unwrap());
            }
            // CPU time of this process (all its threads), in seconds.
            let cpu = || -> f64 {
                let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .unwrap()
                    .1
                    .split_whitespace()
                    .collect();
                // utime and stime, fields 14 and 15 of proc(5), in ticks of 1/100 s.
                (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
            };
            let cpu_before = cpu();
            let mut times = Vec::new();
            for i in 0..9 {
                let mut phone = Device::enroll(
                    &server.url,
                    &server.code_for("supervisor-1"),
                    &format!("load-{i}"),
                );
                let t = Instant::now();
                for p in &pages {
                    phone
                        .store
                        .load_snapshot(&p.changes, &p.views, pages[0].cursor, !p.more)
                        .unwrap();
                }
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "the device's load of {} snapshot pages ({} documents): median {:.2?}, {:.2} s of CPU a load (runs {:?})",
                pages.len(),
                pages.iter().map(|p| p.changes.len()).sum::<usize>(),
                times[4],
                (cpu() - cpu_before) / 9.0,
                times
            );
            return;
        }
        // `-- sweep`: how long a push waits behind the sweep with 200,000
        // reports waiting.
        Some("sweep") => {
            sweep_wait(day);
            return;
        }
        _ => {}
    }
    // 0. Bootstrap with 2,000 shops: the size automerge-repo can be compared at.
    {
        let server = seeded_server(2_000);
        let mut times = Vec::new();
        for i in 0..3 {
            let mut d = Device::enroll(
                &server.url,
                &server.code_for("supervisor-1"),
                &format!("small-{i}"),
            );
            let t = Instant::now();
            d.sync().unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "bootstrap a new device with 2000 shops over loopback: median {:.3?} (runs {:?})",
            times[1], times
        );
    }
    let server = seeded_server(menqian_fixtures::DISTRICT_SHOPS);

    // 1. Bootstrap a new device with the whole district.
    district_bootstrap(&server);
    let mut phone = None;
    // The same server, partial replication: an officer gets one subdistrict, a
    // steward the public listings of one lane.
    for (user, what) in [
        ("officer-1", "an officer (右安门街道)"),
        ("steward-1", "a steward (one lane)"),
    ] {
        let mut times = Vec::new();
        let mut docs = 0;
        let mut last = None;
        for i in 0..3 {
            let mut d = Device::enroll(&server.url, &server.code_for(user), &format!("{user}-{i}"));
            let t = Instant::now();
            d.sync().unwrap();
            times.push(t.elapsed());
            docs = d.store.counts().unwrap().0;
            last = Some(d);
        }
        if user == "officer-1" {
            phone = last;
        }
        times.sort();
        println!(
            "bootstrap {what} from the district: {docs} documents, median {:.2?} (runs {:?})",
            times[1], times
        );
    }

    // 2. An officer's day: 60 inspections and 30 reports made offline, then one
    // sync, on the officer's phone bootstrapped above.
    let mut phone = phone.unwrap();
    let shops = menqian_fixtures::registry(60).unwrap();
    let mut day_times = Vec::new();
    for round in 0..3 {
        for (i, shop) in shops.iter().enumerate() {
            let at = day + chrono::Duration::minutes((round * 100 + i) as i64);
            let id = phone
                .store
                .start_inspection(NewInspection {
                    shop_id: shop.id(),
                    template_id: "beijing-1v5".into(),
                    template_version: None,
                    inspector: "officer-1".into(),
                    started_at: at,
                    fix: None,
                })
                .unwrap();
            common::pass_every_item(&mut phone.store, &id);
            phone
                .store
                .submit_inspection(&id, at + chrono::Duration::minutes(4))
                .unwrap();
            if i % 2 == 0 {
                phone
                    .store
                    .report_case(NewCase {
                        subdistrict: None,
                        lane: None,
                        source: CaseSource::Inspection,
                        category: "0504".into(),
                        location: shop.zone.centroid(),
                        shop_id: Some(shop.id()),
                        photos: vec![],
                        description: "店外经营".into(),
                        deadline: None,
                        reported_by: "officer-1".into(),
                        reported_at: at,
                    })
                    .unwrap();
            }
        }
        let pending = phone
            .store
            .count_changes_since(phone.store.sync_cursors().unwrap().pushed, true)
            .unwrap();
        let t = Instant::now();
        let r = phone.sync().unwrap();
        day_times.push(t.elapsed());
        assert_eq!(r.pushed, pending);
        if round == 0 {
            println!(
                "(an officer's day = {pending} changes: 60 inspections of 6 items, 30 reports)"
            );
        }
    }
    day_times.sort();
    println!(
        "an officer's day, incremental sync: median {:.2?} (runs {:?})",
        day_times[1], day_times
    );

    // 3. 2,000 devices each pushing 50 changes: 16, 8, then 4 requests in
    // flight. Each run leaves 100,000 more reports waiting for the sweep.
    for (run, concurrency) in [16, 8, 4].into_iter().enumerate() {
        let waiting = waiting_reports(&server);
        println!("({waiting} reports waiting to be swept before this run)");
        load_test(
            std::slice::from_ref(&server.url),
            server.admin().as_mut(),
            day,
            concurrency,
            run,
            2_000,
        );
    }

    // 4. One device floods the station with 200 full pulls at a time,
    // re-sending each at once whatever the answer; another device pulls its
    // one new change meanwhile.
    flooded_pull(&server, &mut phone);
}

/// Leaves 200,000 reports waiting (two load runs, no sweep), then has one
/// officer push one new report ten times a second for a minute, first with
/// no sweep, then after a restart with the sweep every second working
/// through the backlog: the difference is what a push waits behind it.
fn sweep_wait(day: chrono::DateTime<Utc>) {
    let server = unswept_district();
    for run in 0..2 {
        load_test(
            std::slice::from_ref(&server.url),
            server.admin().as_mut(),
            day,
            4,
            run,
            2_000,
        );
    }
    let probe = |server: &TestServer, label: &str| {
        let mut phone = Device::enroll(&server.url, &server.code_for("officer-1"), label);
        phone.sync().unwrap();
        let http = reqwest::blocking::Client::new();
        let before = unsearched(server);
        let mut lat = Vec::new();
        let started = Instant::now();
        for i in 0..600u32 {
            let due = started + std::time::Duration::from_millis(100 * u64::from(i));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let head = phone.store.feed_head().unwrap();
            phone
                .store
                .report_case(NewCase {
                    subdistrict: None,
                    lane: None,
                    source: CaseSource::Inspection,
                    category: "0504".into(),
                    location: GeoPoint::new(39.60 + f64::from(i) * 4e-4, 116.00),
                    shop_id: None,
                    photos: vec![],
                    description: format!("{label}第{i}条"),
                    deadline: None,
                    reported_by: "officer-1".into(),
                    reported_at: Utc::now(),
                })
                .unwrap();
            let body = wire::encode(&WireBatch {
                changes: phone.store.own_changes_since(head, 10).unwrap().changes,
                ..Default::default()
            })
            .unwrap();
            let t = Instant::now();
            let r = http
                .post(format!("{}/v1/push", server.url))
                .bearer_auth(&phone.token)
                .header("content-type", wire::CONTENT_TYPE)
                .body(body)
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().unwrap());
            lat.push(t.elapsed());
        }
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        println!(
            "one officer's one-report push, 10 a second for a minute, {label}: p50 {:.1?}, p99 {:.1?}, max {:.1?} (case changes the sweep has yet to search: {before} before, {} after)",
            p(0.5),
            p(0.99),
            lat[lat.len() - 1],
            unsearched(server)
        );
    };
    probe(&server, "no sweep");
    let server = server.restart_with(menqian_sync_server::Options {
        sweep_every: std::time::Duration::from_secs(1),
        ..Default::default()
    });
    probe(&server, "the sweep every second");
    // How long the sweep holds the writer at a time: the whole backlog again
    // from the start of the feed, slice by slice as the station runs it, on
    // the station's database with no sweep of the server's own.
    let server = server.restart_with(menqian_sync_server::Options {
        sweep_every: std::time::Duration::from_secs(86_400),
        ..Default::default()
    });
    let path = server.dir.path().join("station.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'sweep.cases'", [])
        .unwrap();
    let mut docs = Store::open(&path, StoreConfig::default()).unwrap();
    let mut sweep = docs.start_sweep(Utc::now(), "system").unwrap();
    let mut slices = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let done = docs
            .continue_sweep(&mut sweep, Some(menqian_sync_server::SWEEP_SLICE))
            .unwrap();
        slices.push(t.elapsed());
        if done {
            break;
        }
    }
    let total = started.elapsed();
    slices.sort();
    let p = |q: f64| slices[((slices.len() as f64 * q) as usize).min(slices.len() - 1)];
    println!(
        "the sweep's hold on the writer, {} slices of at most {:?} over the {} case changes: p50 {:.1?}, p99 {:.1?}, max {:.1?} ({total:.1?} in all, no rests)",
        slices.len(),
        menqian_sync_server::SWEEP_SLICE,
        unsearched_total(&server),
        p(0.5),
        p(0.99),
        slices[slices.len() - 1],
    );
}

/// Case changes in the feed.
fn unsearched_total(server: &TestServer) -> u64 {
    let conn = rusqlite::Connection::open(server.dir.path().join("station.sqlite")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM changes WHERE doc_id >= 'case/' AND doc_id < 'case0'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
    .unsigned_abs()
}

/// Case changes after the sweep's cursor in the feed.
fn unsearched(server: &TestServer) -> u64 {
    let conn = rusqlite::Connection::open(server.dir.path().join("station.sqlite")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM changes WHERE doc_id >= 'case/' AND doc_id < 'case0'
         AND seq > coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'sweep.cases'), 0)",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
    .unsigned_abs()
}

/// Reports still 已上报 at the station.
fn waiting_reports(server: &TestServer) -> u64 {
    let conn = rusqlite::Connection::open(server.dir.path().join("station.sqlite")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM cases WHERE status = 'reported' AND rectification IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
    .unsigned_abs()
}

fn flooded_pull(server: &TestServer, other: &mut Device) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let flooder = Device::enroll(&server.url, &server.code_for("officer-2"), "flooder");
    let stop = AtomicBool::new(false);
    let (served, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut lat = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..200 {
            scope.spawn(|| {
                let http = reqwest::blocking::Client::new();
                // 200 full pulls at once, each sent again as soon as it is
                // answered, or after the second `Retry-After` asks for.
                while !stop.load(Ordering::Relaxed) {
                    match http
                        .get(format!("{}/v1/pull?after=0&limit=5000", server.url))
                        .bearer_auth(&flooder.token)
                        .send()
                    {
                        Ok(r) if r.status() == 429 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                        Ok(r) => {
                            let _ = r.bytes();
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {}
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let http = reqwest::blocking::Client::new();
        // One new change for the other officer, pulled again and again, ten
        // times a second (within a device's share).
        other
            .store
            .report_case(NewCase {
                subdistrict: None,
                lane: None,
                source: CaseSource::Inspection,
                category: "0504".into(),
                location: GeoPoint::new(39.87, 116.35),
                shop_id: None,
                photos: vec![],
                description: "拉取".into(),
                deadline: None,
                reported_by: "officer-1".into(),
                reported_at: Utc::now(),
            })
            .unwrap();
        let head = server.admin().documents().feed_head().unwrap();
        other
            .store
            .sync(&other.client, None, &Default::default())
            .unwrap();
        for _ in 0..200 {
            let t = Instant::now();
            let r = http
                .get(format!("{}/v1/pull?after={head}&limit=5000", server.url))
                .bearer_auth(&other.token)
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            let page = wire::decode(&r.bytes().unwrap()).unwrap();
            assert!(!page.changes.is_empty());
            lat.push(t.elapsed());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "another device's one-change pull while one device floods with 200 concurrent full pulls: p50 {:.1?}, p99 {:.1?}, max {:.1?} ({} flood pulls served, {} refused with 429)",
        p(0.5),
        p(0.99),
        lat[lat.len() - 1],
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
}

/// What one push load measured.
struct LoadFigures {
    changes: usize,
    per_second: f64,
    p50: std::time::Duration,
    p99: std::time::Duration,
}

/// [`load_test`] three times in a row at one station, 2,000 devices each.
/// Reports each load device pushes.
const PER_DEVICE: usize = 50;

/// Three bursts of 1,000 phones, each pushing one new report at once: how
/// long until all are answered, and their latencies.
fn bursts(urls: &[String], admin: &mut dyn SyncStore, day: chrono::DateTime<Utc>) {
    const BURST: usize = 1_000;
    let runtime = burst::runtime();
    let client = burst::client(BURST);
    for run in 0..3 {
        let pushes: Vec<burst::Push> = device_batches(day, 9, run, BURST, 1)
            .into_iter()
            .enumerate()
            .map(|(i, (actor, body))| burst::Push {
                url: urls[i % urls.len()].clone(),
                token: enroll_officer(admin, &actor, &format!("burst-{run}-{i}")).token,
                body,
            })
            .collect();
        let t = Instant::now();
        let (mut lat, retries) = burst::push_all(&runtime, &client, pushes);
        let took = t.elapsed();
        lat.sort();
        println!(
            "{BURST} one-report pushes at once to {} instance(s): all answered in {took:.2?}; p50 {} ms, p99 {} ms, max {} ms; {retries} tried again",
            urls.len(),
            burst::pct(&lat, 0.5).as_millis(),
            burst::pct(&lat, 0.99).as_millis(),
            lat[lat.len() - 1].as_millis(),
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

fn three_loads(url: &str, admin: &mut dyn SyncStore, day: chrono::DateTime<Utc>, in_flight: usize) {
    for run in 0..3 {
        load_test(&[url.to_string()], admin, day, in_flight, run, 2_000);
    }
}

/// `devices` new devices each push 50 new cases once, `concurrency` requests
/// in flight, the clients spread over `urls` round robin (a load balancer's
/// work, without its cost).
fn load_test(
    urls: &[String],
    admin: &mut dyn SyncStore,
    day: chrono::DateTime<Utc>,
    concurrency: usize,
    run: usize,
    devices: usize,
) -> LoadFigures {
    let t = Instant::now();
    let made = device_batches(day, concurrency, run, devices, PER_DEVICE);
    let batches: Vec<(String, Vec<u8>)> = made
        .into_iter()
        .enumerate()
        .map(|(i, (actor, body))| {
            let token =
                enroll_officer(admin, &actor, &format!("load-{concurrency}-{run}-{i}")).token;
            (token, body)
        })
        .collect();
    println!(
        "(prepared {devices} devices × {PER_DEVICE} changes in {:.1?})",
        t.elapsed()
    );
    let queue = Mutex::new(batches.into_iter());
    let latencies = Mutex::new(Vec::with_capacity(devices));
    let t = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..concurrency {
            let url = &urls[c % urls.len()];
            let (queue, latencies) = (&queue, &latencies);
            scope.spawn(move || {
                let http = reqwest::blocking::Client::new();
                loop {
                    let Some((token, body)) = queue.lock().unwrap().next() else {
                        return;
                    };
                    let started = Instant::now();
                    let r = http
                        .post(format!("{url}/v1/push"))
                        .bearer_auth(token)
                        .header("content-type", wire::CONTENT_TYPE)
                        .body(body)
                        .send()
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.text().unwrap());
                    latencies.lock().unwrap().push(started.elapsed());
                }
            });
        }
    });
    let elapsed = t.elapsed();
    let mut lat = latencies.into_inner().unwrap();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let figures = LoadFigures {
        changes: devices * PER_DEVICE,
        per_second: (devices * PER_DEVICE) as f64 / elapsed.as_secs_f64(),
        p50: p(0.5),
        p99: p(0.99),
    };
    println!(
        "{devices} devices × {PER_DEVICE} changes, {concurrency} requests in flight: {:.0} accepted changes/s ({} in {:.2?}); push latency p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        figures.per_second,
        figures.changes,
        elapsed,
        figures.p50,
        figures.p99,
        lat[lat.len() - 1]
    );
    figures
}

/// Three new supervisors' devices bootstrap the whole district: the median.
fn district_bootstrap(server: &TestServer) {
    let mut times = Vec::new();
    for i in 0..3 {
        let mut d = Device::enroll(
            &server.url,
            &server.code_for("supervisor-1"),
            &format!("phone-{i}"),
        );
        let t = Instant::now();
        let r = d.sync().unwrap();
        times.push(t.elapsed());
        assert!(r.pulled >= 21_728);
    }
    times.sort();
    println!(
        "bootstrap a new device with {} shops over loopback (a supervisor: the whole district): median {:.2?} (runs {:?})",
        menqian_fixtures::DISTRICT_SHOPS,
        times[1],
        times
    );
}

/// `devices` new devices' pushes of `per_device` new cases each, made on
/// both cores: (actor, encoded batch). `run` and `label` keep every report
/// of every run in its own place and words.
fn device_batches(
    day: chrono::DateTime<Utc>,
    label: usize,
    run: usize,
    devices: usize,
    per_device: usize,
) -> Vec<(String, Vec<u8>)> {
    let category = menqian_fixtures::categories()
        .unwrap()
        .into_iter()
        .filter(|c| c.code == "0504")
        .collect::<Vec<_>>();
    // Each device's reports, made on both cores.
    let device = |i: usize| {
        let mut s = Store::open(":memory:", StoreConfig::default()).unwrap();
        s.import_categories(category.clone()).unwrap();
        let before_reports = s.feed_head().unwrap();
        for k in 0..per_device {
            s.report_case(NewCase {
                subdistrict: None,
                lane: None,
                source: CaseSource::Steward,
                category: "0504".into(),
                // Every report of every run in its own place, at least
                // 44 m from any other: distinct problems, not repeats.
                location: {
                    let g = (run * devices + i) * per_device + k;
                    GeoPoint::new(
                        39.70 + (g / 600) as f64 * 4e-4,
                        116.10 + (g % 600) as f64 * 5.2e-4,
                    )
                },
                shop_id: None,
                photos: vec![],
                description: format!("并发{label}设备{i}第{k}条"),
                deadline: None,
                reported_by: "officer-1".into(),
                reported_at: day,
            })
            .unwrap();
        }
        let body = wire::encode(&WireBatch {
            changes: s
                .own_changes_since(before_reports, per_device as u32)
                .unwrap()
                .changes,
            ..Default::default()
        })
        .unwrap();
        (s.actor_id(), body)
    };
    std::thread::scope(|scope| {
        let halves: Vec<_> = [0, 1]
            .map(|h| {
                let device = &device;
                scope.spawn(move || (h..devices).step_by(2).map(device).collect::<Vec<_>>())
            })
            .into_iter()
            .collect();
        let mut halves: Vec<_> = halves.into_iter().map(|h| h.join().unwrap()).collect();
        let odd = halves.pop().unwrap();
        let even = halves.pop().unwrap();
        let mut all = Vec::with_capacity(devices);
        let mut odd = odd.into_iter();
        for e in even {
            all.push(e);
            all.extend(odd.next());
        }
        all
    })
}

/// A new device of officer-1's, bound to `actor`.
fn enroll_officer(
    admin: &mut dyn SyncStore,
    actor: &str,
    name: &str,
) -> menqian_sync_server::store::Enrolled {
    let code = admin
        .accounts()
        .issue_enrollment("officer-1", Utc::now(), chrono::Duration::hours(1))
        .unwrap();
    admin.enroll(&code, actor, name, Utc::now()).unwrap()
}

/// CPU seconds this process has used so far, all threads (user + system).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the line, in clock ticks (100 a second).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// The steps of merging a device's pushed new case into the station's
/// documents (`menqian_core::merge_pushed`, what the push handlers run
/// ahead of the committer), each timed alone on one thread over 2,000 of
/// the load's changes, three rounds: reading the change, Automerge
/// applying it to a new document, reading the document back (the hydrate
/// the entity is read from) and saving it; then the whole merge with its
/// checks and view.
fn merge_steps(day: chrono::DateTime<Utc>) {
    let batches = device_batches(day, 0, 0, 40, PER_DEVICE);
    let bodies: Vec<Vec<menqian_core::DocChange>> = batches
        .iter()
        .map(|(_, body)| wire::decode(body).unwrap().changes)
        .collect();
    let n = bodies.iter().map(Vec::len).sum::<usize>() as f64;
    let per = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / n;
    for round in 0..3 {
        let t = Instant::now();
        let decoded: Vec<Vec<menqian_core::Incoming>> = bodies
            .iter()
            .map(|b| menqian_core::decode_pushed(b.clone()).unwrap())
            .collect();
        let decode = per(t);
        let t = Instant::now();
        let docs: Vec<automerge::Automerge> = decoded
            .iter()
            .flatten()
            .map(|c| {
                let mut d = automerge::Automerge::new();
                d.apply_changes([c.change.clone()]).unwrap();
                d
            })
            .collect();
        let apply = per(t);
        let t = Instant::now();
        for d in &docs {
            std::hint::black_box(d.hydrate(None));
        }
        let hydrate = per(t);
        let t = Instant::now();
        for d in &docs {
            std::hint::black_box(d.save());
        }
        let save = per(t);
        let t = Instant::now();
        for ((actor, _), batch) in batches.iter().zip(decoded) {
            let writer = Writer {
                user: "officer-1".into(),
                role: Role::Officer,
                actor: actor.clone(),
            };
            for (doc_id, incoming) in menqian_core::group_by_document(batch) {
                let merged =
                    menqian_core::merge_pushed(&doc_id, None, incoming, Some(&writer)).unwrap();
                assert!(merged.merged.is_some());
            }
        }
        let whole = per(t);
        println!(
            "round {round}, µs a change: reading {decode:.1}, applying {apply:.1}, \
             hydrate {hydrate:.1}, saving {save:.1}; the whole merge {whole:.1}"
        );
    }
}

/// Each push merged ahead against the store's documents, on two threads
/// with a reader each.
fn merge_ahead(
    store: &menqian_sync_server::SqliteSyncStore,
    pushes: Vec<menqian_core::GroupedPush>,
) -> Vec<menqian_core::GroupedPush> {
    use menqian_sync_server::SyncStore as _;
    let mut first = pushes;
    let second = first.split_off(first.len().div_ceil(2));
    let mut halves = [first, second];
    std::thread::scope(|scope| {
        for h in &mut halves {
            let reader = store.reader().unwrap();
            scope.spawn(move || {
                for p in h.iter_mut() {
                    let bases = reader.push_bases(p).unwrap().unwrap();
                    p.premerge(bases);
                }
            });
        }
    });
    halves.into_iter().flatten().collect()
}

/// What the station's writer spends on a push, without HTTP or decoding:
/// the district's store in this process, 2,000 devices' pushes of 50 new
/// cases, applied `group` at a time as one group commit, four times over;
/// the second and fourth time merged ahead first ([`merge_ahead`], timed
/// apart), as the station's push handlers do. CPU time is the process's
/// (the writer and its merge workers), a figure that a busy machine
/// disturbs less than throughput.
fn apply_cost(day: chrono::DateTime<Utc>, group: usize) {
    let dir = tempfile::tempdir().unwrap();
    common::seed_with(dir.path(), menqian_fixtures::DISTRICT_SHOPS);
    let mut store =
        menqian_sync_server::SqliteSyncStore::open(dir.path(), vec![common::HOST.into()]).unwrap();
    for run in 0..4 {
        let ahead = run % 2 == 1;
        let pushes: Vec<menqian_core::GroupedPush> = device_batches(day, 0, run, 2_000, PER_DEVICE)
            .into_iter()
            .enumerate()
            .map(|(i, (actor, body))| {
                let enrolled = enroll_officer(&mut store, &actor, &format!("apply-{run}-{i}"));
                let changes =
                    menqian_core::decode_pushed(wire::decode(&body).unwrap().changes).unwrap();
                menqian_core::GroupedPush::new(
                    changes,
                    Writer {
                        user: enrolled.user.id.clone(),
                        role: enrolled.user.role,
                        actor,
                    },
                    Utc::now(),
                )
            })
            .collect();
        let changes: usize = pushes.iter().map(|p| p.changes.len()).sum();
        let pushes = if ahead {
            println!("(merging ahead)");
            let (cpu, t) = (process_cpu_seconds(), Instant::now());
            let merged = merge_ahead(&store, pushes);
            let (cpu, wall) = (process_cpu_seconds() - cpu, t.elapsed());
            println!(
                "merged {changes} changes ahead on 2 threads: {:.0} changes/s, {:.1} µs CPU a change",
                changes as f64 / wall.as_secs_f64(),
                cpu * 1e6 / changes as f64,
            );
            merged
        } else {
            pushes
        };
        println!("(applying)");
        let (cpu, t) = (process_cpu_seconds(), Instant::now());
        let mut pushes = pushes.into_iter();
        loop {
            let next: Vec<_> = pushes.by_ref().take(group).collect();
            if next.is_empty() {
                break;
            }
            for answer in store.push_group(next).unwrap() {
                answer.unwrap();
            }
        }
        let (cpu, wall) = (process_cpu_seconds() - cpu, t.elapsed());
        println!(
            "applied {changes} changes {group} pushes a group{}: {:.0} changes/s, {:.1} µs CPU a change ({:.2?}, {cpu:.2} s CPU)",
            if ahead { ", merged ahead" } else { "" },
            changes as f64 / wall.as_secs_f64(),
            cpu * 1e6 / changes as f64,
            wall,
        );
    }
}
