//! Failures in the middle of a sync: the server killed with SIGKILL during a
//! push, and a proxy that cuts connections at random byte offsets. No change
//! the server acknowledged is lost, nothing is duplicated, and every store ends
//! identical.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::*;
use menqian_client::DeviceSync as _;
use menqian_client::{CancelToken, SyncListener, SyncPhase, SyncProgress};
use menqian_core::*;
use menqian_sync_server::{SqliteSyncStore, SyncStore};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_menqian-sync-server"))
        .args([
            "--data",
            dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            if reply.ends_with("ok") {
                return child;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not come up on port {port}");
}

/// A seeded server running as its own process, and a phone enrolled as
/// officer-1 that has synced once.
fn server_process_and_phone() -> (tempfile::TempDir, u16, Child, Device) {
    let data = tempfile::tempdir().unwrap();
    seed(data.path());
    let port = free_port();
    let server = spawn_server(data.path(), port);
    let code = SqliteSyncStore::open(data.path(), vec![])
        .unwrap()
        .accounts()
        .issue_enrollment("officer-1", Utc::now(), chrono::Duration::hours(1))
        .unwrap();
    let mut phone = Device::enroll(&format!("http://127.0.0.1:{port}"), &code, "phone");
    phone.sync().unwrap();
    (data, port, server, phone)
}

fn report_many(store: &mut Store, n: usize) {
    let at = Utc.with_ymd_and_hms(2026, 7, 1, 2, 0, 0).unwrap();
    for i in 0..n {
        store
            .report_case(NewCase {
                subdistrict: None,
                lane: None,
                source: CaseSource::Inspection,
                category: "0107".into(),
                // A grid 35 m apart around the demo street: each is its own
                // problem, not a repeat of its neighbour, and all lie in the
                // street's subdistrict.
                location: GeoPoint::new(
                    39.866 + (i % 50) as f64 * 3.2e-4,
                    116.345 + (i / 50) as f64 * 4.2e-4,
                ),
                shop_id: None,
                photos: vec![],
                description: format!("第{i}处乱堆物料"),
                deadline: None,
                reported_by: "officer-1".into(),
                reported_at: at,
            })
            .unwrap();
    }
}

/// Own changes the server acknowledged: those at or before the pushed cursor.
fn acknowledged(store: &Store) -> Vec<DocChange> {
    let pushed = store.sync_cursors().unwrap().pushed;
    let all = store.count_changes_since(0, true).unwrap();
    let after = store.count_changes_since(pushed, true).unwrap();
    store
        .own_changes_since(0, (all - after) as u32)
        .unwrap()
        .changes
}

struct KillAfter {
    changes: u64,
    fired: AtomicBool,
    child: Mutex<Option<Child>>,
}

impl SyncListener for KillAfter {
    fn on_progress(&self, p: SyncProgress) -> Result<(), String> {
        let due = p.phase == SyncPhase::Push && p.done >= self.changes;
        let first = due && !self.fired.swap(true, Ordering::SeqCst);
        if let Some(mut child) = first.then(|| self.child.lock().unwrap().take()).flatten() {
            child.kill().unwrap(); // SIGKILL: no shutdown, no flush
            child.wait().unwrap();
        }
        Ok(())
    }
}

#[test]
fn a_server_killed_during_a_push_loses_no_acknowledged_change() {
    let (data, port, server, mut phone) = server_process_and_phone();
    let url = format!("http://127.0.0.1:{port}");
    report_many(&mut phone.store, 2_400);

    // Kill the server right after the second page is acknowledged.
    let killer = KillAfter {
        changes: 1_000,
        fired: AtomicBool::new(false),
        child: Mutex::new(Some(server)),
    };
    let result = phone
        .store
        .sync(&phone.client, Some(&killer), &CancelToken::default());
    assert!(matches!(result, Err(Error::Offline { .. })), "{result:?}");
    let acked = acknowledged(&phone.store);
    assert!(
        acked.len() >= 1_000 && acked.len() < 2_400,
        "{} acknowledged",
        acked.len()
    );
    {
        // Everything acknowledged is on the server's disk: re-applying it adds nothing.
        let mut on_disk =
            Store::open(data.path().join("station.sqlite"), StoreConfig::default()).unwrap();
        assert_eq!(on_disk.apply_changes(&acked).unwrap().applied, 0);
    }

    // Restart; the phone resumes where it stopped.
    let mut server = spawn_server(data.path(), port);
    let r = phone.sync().unwrap();
    assert_eq!(r.pushed as usize, 2_400 - acked.len());
    let code = SqliteSyncStore::open(data.path(), vec![])
        .unwrap()
        .accounts()
        .issue_enrollment("officer-2", Utc::now(), chrono::Duration::hours(1))
        .unwrap();
    let mut other = Device::enroll(&url, &code, "other");
    other.sync().unwrap();
    phone.sync().unwrap();
    assert_eq!(
        other.store.documents_json().unwrap(),
        phone.store.documents_json().unwrap()
    );
    server.kill().unwrap();
    server.wait().unwrap();
    // Every document here (seeded registry, 2,400 reports) has exactly one change:
    // a change logged twice would show as more changes than documents.
    let on_disk = Store::open(data.path().join("station.sqlite"), StoreConfig::default()).unwrap();
    let (docs, changes) = on_disk.counts().unwrap();
    assert_eq!(changes, docs, "no change was logged twice");
}

/// Forwards bytes both ways; the first `cuts` connections are cut after a
/// random number of bytes (in either direction), later ones pass whole.
fn cutting_proxy(upstream: String, cuts: usize, seed: u64) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let cut_count = Arc::new(AtomicUsize::new(0));
    let counter = cut_count.clone();
    std::thread::spawn(move || {
        let mut rng = seed;
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let budget = if n < cuts {
                Some(50 + (rng % 60_000) as usize)
            } else {
                None
            };
            let sent = Arc::new(AtomicUsize::new(0));
            let counter = counter.clone();
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server.try_clone().unwrap(), client.try_clone().unwrap()),
            ] {
                let sent = sent.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(k @ 1..) = from.read(&mut buf) {
                        let total = sent.fetch_add(k, Ordering::SeqCst) + k;
                        if let Some(limit) = budget.filter(|l| total > *l) {
                            let keep = k.saturating_sub(total - limit);
                            let _ = to.write_all(&buf[..keep]);
                            counter.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if to.write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                });
            }
        }
    });
    (addr, cut_count)
}

#[test]
fn connections_cut_at_random_offsets_resume_without_loss_or_duplicates() {
    let server = TestServer::start();
    let upstream = server.url.trim_start_matches("http://").to_string();
    let (proxy, cut) = cutting_proxy(upstream, 40, 0x5eed_1234);
    let mut a = Device::enroll(&server.url, &server.code_for("officer-1"), "a");
    let mut b = Device::enroll(&server.url, &server.code_for("officer-2"), "b");
    a.client = menqian_client::SyncClient::new(&proxy, a.client_token()).unwrap();
    b.client = menqian_client::SyncClient::new(&proxy, b.client_token()).unwrap();
    for d in [&mut a, &mut b] {
        d.client.retry = menqian_client::RetryPolicy {
            attempts: 2,
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        };
    }
    let sync_until_done = |d: &mut Device| {
        for _ in 0..200 {
            match d.sync() {
                Ok(_) => return,
                Err(Error::Offline { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("sync never completed through the proxy");
    };
    sync_until_done(&mut a);
    report_many(&mut a.store, 1_200);
    sync_until_done(&mut a);
    sync_until_done(&mut b);
    sync_until_done(&mut a);
    assert!(cut.load(Ordering::SeqCst) > 0, "the proxy cut nothing");
    assert_eq!(
        a.store.documents_json().unwrap(),
        b.store.documents_json().unwrap()
    );
    assert_eq!(
        a.store.documents_json().unwrap(),
        server.documents_for("officer-1")
    );
    let mut admin = server.admin();
    let (docs, changes) = admin.documents().counts().unwrap();
    assert_eq!(
        docs, changes,
        "every document has one change here: none was logged twice"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly_and_keeps_every_acknowledged_change() {
    let (data, _port, server, mut phone) = server_process_and_phone();
    report_many(&mut phone.store, 1_200);
    // SIGTERM once the first page is acknowledged, with more pages to come.
    struct TermOnPush(Mutex<Option<Child>>, Mutex<Option<Child>>);
    impl SyncListener for TermOnPush {
        fn on_progress(&self, p: SyncProgress) -> Result<(), String> {
            let first_page_acknowledged = p.phase == SyncPhase::Push && p.done > 0;
            let server = first_page_acknowledged
                .then(|| self.0.lock().unwrap().take())
                .flatten();
            if let Some(child) = server {
                let pid = child.id().to_string();
                Command::new("kill").args(["-TERM", &pid]).status().unwrap();
                *self.1.lock().unwrap() = Some(child);
            }
            Ok(())
        }
    }
    let term = TermOnPush(Mutex::new(Some(server)), Mutex::new(None));
    let _ = phone
        .store
        .sync(&phone.client, Some(&term), &CancelToken::default());
    let mut child = term.1.lock().unwrap().take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // Whatever the phone marked pushed is on the server's disk.
    let acked = acknowledged(&phone.store);
    assert!(acked.len() >= 500, "{} acknowledged", acked.len());
    let mut on_disk =
        Store::open(data.path().join("station.sqlite"), StoreConfig::default()).unwrap();
    assert_eq!(on_disk.apply_changes(&acked).unwrap().applied, 0);
}

#[test]
fn a_station_refuses_an_accounts_database_newer_than_itself_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteSyncStore::open(dir.path(), vec![]).unwrap());
    let accounts = dir.path().join("accounts.sqlite");
    let conn = rusqlite::Connection::open(&accounts).unwrap();
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(current >= 10, "every accounts migration applied: {current}");
    conn.pragma_update(None, "user_version", current + 1)
        .unwrap();
    drop(conn);
    let Err(refused) = SqliteSyncStore::open(dir.path(), vec![]) else {
        panic!("a newer accounts database was opened");
    };
    assert!(
        refused.to_string().contains("newer than this app supports"),
        "{refused}"
    );
    let conn = rusqlite::Connection::open(&accounts).unwrap();
    let after: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after, current + 1);
}
