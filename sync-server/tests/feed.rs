//! The change feed on PostgreSQL has no gaps: every acknowledged change
//! reaches a reader exactly once, each after the changes it depends on, even
//! when transactions commit in another order than they wrote (issue 17).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use menqian_core::{Role, ShopPatch, Store, StoreConfig, Writer};
use menqian_sync_server::store::postgres::{PgDocuments, Sequencer};

mod pg;

const DEVICES: usize = 20;
const PUSHES: usize = 50;

/// A device: its own store, pulling from and pushing to the station's feed.
struct Phone {
    _dir: tempfile::TempDir,
    store: Store,
    writer: Writer,
    docs: PgDocuments,
    pulled: u64,
}

impl Phone {
    fn new(url: &str, n: usize, delay: (u64, u64)) -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("d.sqlite"), StoreConfig::default()).unwrap();
        let writer = Writer {
            user: format!("officer-{n}"),
            role: Role::Officer,
            actor: store.actor_id(),
        };
        let mut docs = PgDocuments::open(url).unwrap();
        docs.delay_commits_for_tests(delay.0, delay.1);
        Phone {
            _dir: dir,
            store,
            writer,
            docs,
            pulled: 0,
        }
    }

    fn pull(&mut self) {
        loop {
            let page = self.docs.changes_since(self.pulled, 500).unwrap();
            let changes: Vec<_> = page.changes.into_iter().map(|(_, c)| c).collect();
            self.store.apply_pulled(&changes, page.cursor).unwrap();
            self.pulled = page.cursor;
            if !page.more {
                return;
            }
        }
    }

    /// Pushes what this phone changed; returns the hashes acknowledged.
    fn push(&mut self) -> Vec<Vec<u8>> {
        let pushed = self.store.sync_cursors().unwrap().pushed;
        let batch = self.store.own_changes_since(pushed, 1_000).unwrap();
        let hashes = batch
            .changes
            .iter()
            .map(|c| {
                automerge::Change::from_bytes(c.bytes.clone())
                    .unwrap()
                    .hash()
                    .as_ref()
                    .to_vec()
            })
            .collect();
        let incoming = menqian_core::decode_pushed(batch.changes).unwrap();
        self.docs
            .push(Some(&self.writer), incoming, Utc::now())
            .unwrap();
        self.store.set_pushed(batch.cursor).unwrap();
        hashes
    }

    fn rename(&mut self, shop: &str, name: String) {
        self.store
            .update_shop(
                shop,
                ShopPatch {
                    name: Some(name),
                    ..Default::default()
                },
            )
            .unwrap();
    }
}

#[test]
fn every_acknowledged_change_is_pulled_once_after_its_dependencies() {
    let cluster = pg::PgCluster::start();
    let url = cluster.database("menqian");
    let shops = menqian_fixtures::registry(DEVICES + 2).unwrap();
    let shared = shops[0].id();
    let acknowledged = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    {
        let mut first = Phone::new(&url, 0, (0, 0));
        first.store.create_shop(shops[0].clone()).unwrap();
        acknowledged.lock().unwrap().extend(first.push());
    }
    let _background = Sequencer::start(&url, Duration::from_millis(50)).unwrap();

    // The observer pulls as a device would, and beside it a reader that
    // follows the row id (what an outbox table's reader does), to show the
    // failure the sequencer prevents.
    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut docs = PgDocuments::open(&url).unwrap();
            let mut naive = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let (mut cursor, mut naive_cursor) = (0u64, 0i64);
            let mut seen: Vec<(u64, menqian_core::DocChange)> = Vec::new();
            let mut naive_seen: HashSet<Vec<u8>> = HashSet::new();
            loop {
                let stopping = stop.load(Ordering::SeqCst);
                let page = docs.changes_since(cursor, 300).unwrap();
                cursor = page.cursor;
                seen.extend(page.changes);
                for row in naive
                    .query(
                        "SELECT id, hash FROM feed WHERE id > $1 ORDER BY id",
                        &[&naive_cursor],
                    )
                    .unwrap()
                {
                    naive_cursor = row.get(0);
                    naive_seen.insert(row.get(1));
                }
                if stopping && !page.more {
                    return (seen, naive_seen);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // One push waits three seconds before it commits, holding rows whose
    // ids come before most others'. And a transaction unrelated to the feed
    // (a backup, a report) stays open for three seconds: the feed moves on
    // meanwhile.
    let holder = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut tx = c.transaction().unwrap();
            tx.query_one("SELECT pg_current_xact_id()", &[]).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            let placed: i64 = tx
                .query_one("SELECT count(*) FROM feed WHERE pos IS NOT NULL", &[])
                .unwrap()
                .get(0);
            tx.commit().unwrap();
            placed
        })
    };
    let slow = {
        let (url, acknowledged, shop) = (
            url.clone(),
            acknowledged.clone(),
            shops[DEVICES + 1].clone(),
        );
        std::thread::spawn(move || {
            let mut phone = Phone::new(&url, 99, (3_000, 3_000));
            phone.store.create_shop(shop).unwrap();
            let hashes = phone.push();
            acknowledged.lock().unwrap().extend(hashes);
        })
    };

    // 20 phones, 50 pushes each, every push delayed 0–20 ms before COMMIT:
    // each renames its own shop and, every other push, the shared one,
    // sometimes after pulling the others' renames (so its changes depend on
    // theirs).
    let pushes = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let phones: Vec<_> = (0..DEVICES)
        .map(|n| {
            let (url, acknowledged, pushes) = (url.clone(), acknowledged.clone(), pushes.clone());
            let (own, shared) = (shops[n + 1].clone(), shared.clone());
            std::thread::spawn(move || {
                let mut phone = Phone::new(&url, n, (0, 20));
                phone.pull();
                phone.store.create_shop(own.clone()).unwrap();
                for k in 0..PUSHES {
                    if rand::random_ratio(1, 3) {
                        phone.pull();
                    }
                    phone.rename(&own.id(), format!("店{n}-{k}"));
                    if k % 2 == 0 {
                        phone.rename(&shared, format!("共用{n}-{k}"));
                    }
                    let hashes = phone.push();
                    acknowledged.lock().unwrap().extend(hashes);
                    pushes.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for p in phones {
        p.join().unwrap();
    }
    slow.join().unwrap();
    let placed_while_held = holder.join().unwrap();
    assert!(
        placed_while_held > 1,
        "the feed moved on while an unrelated transaction was open"
    );
    let pushing = started.elapsed();
    assert_eq!(pushes.load(Ordering::SeqCst), DEVICES * PUSHES);

    // Everything acknowledged reaches the feed: the sequencer catches up.
    let mut docs = PgDocuments::open(&url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while docs.unsequenced().unwrap() > 0 {
        assert!(Instant::now() < deadline, "the sequencer did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let (seen, naive_seen) = observer.join().unwrap();

    let acknowledged = acknowledged.lock().unwrap().clone();
    let wanted: HashSet<Vec<u8>> = acknowledged.iter().cloned().collect();
    assert_eq!(wanted.len(), acknowledged.len(), "every change pushed once");
    // Exactly once, in increasing positions, each after its dependencies.
    let mut got: HashSet<Vec<u8>> = HashSet::new();
    let mut last = 0;
    for (pos, change) in &seen {
        assert!(*pos > last, "positions increase");
        last = *pos;
        let change = automerge::Change::from_bytes(change.bytes.clone()).unwrap();
        for dep in change.deps() {
            assert!(
                got.contains(dep.as_ref()),
                "a change at {pos} came before one it depends on"
            );
        }
        assert!(
            got.insert(change.hash().as_ref().to_vec()),
            "a change twice"
        );
    }
    assert_eq!(got, wanted, "the observer holds every acknowledged change");
    // The reader that followed the row id lost the changes that committed late.
    let lost = wanted.difference(&naive_seen).count();
    assert!(
        lost > 0,
        "the id-following reader should have missed the slow push's changes"
    );
    eprintln!(
        "{} changes in {} pushes over {pushing:.1?}; the id-following reader missed {lost}",
        wanted.len(),
        DEVICES * PUSHES + 2
    );
}

/// A logical backup (`pg_dump`) restored into another cluster, as when a
/// city moves its database to a new server: a change acknowledged but not yet
/// given its position when the backup was taken (its push's sequencer run
/// had not happened) still comes before a change made on it in the new
/// cluster. The new cluster numbers its transactions afresh, lower than the
/// old one's, so the feed may not be ordered by transaction ids.
#[test]
fn a_change_restored_without_a_position_comes_before_changes_made_on_it() {
    let old = pg::PgCluster::start();
    let url = old.database("menqian");
    let shop = menqian_fixtures::registry(1).unwrap().remove(0);
    let mut phone = Phone::new(&url, 0, (0, 0));
    phone.store.create_shop(shop.clone()).unwrap();
    phone.push();
    // The old cluster has run many more transactions than a new one has.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for _ in 0..2_000 {
        admin.query_one("SELECT pg_current_xact_id()", &[]).unwrap();
    }
    let xid = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT pg_current_xact_id()::text::bigint", &[])
            .unwrap()
            .get(0)
    };
    let old_xid = xid(&mut admin);
    phone.rename(&shop.id(), "备份时刚收到".into());
    let restored = phone.push();
    // Taken between that push's commit and its sequencer run.
    admin
        .execute(
            "UPDATE feed SET pos = NULL WHERE pos = (SELECT max(pos) FROM feed)",
            &[],
        )
        .unwrap();
    let backup = old.dump("menqian");

    let new = pg::PgCluster::start();
    let url = new.database("menqian");
    new.restore("menqian", &backup);
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert!(xid(&mut admin) < old_xid, "the new cluster numbers afresh");
    phone.docs = PgDocuments::open(&url).unwrap();
    phone.rename(&shop.id(), "搬到新库之后改的".into());
    let made_after = phone.push();

    let placed: Vec<(i64, Vec<u8>)> = admin
        .query("SELECT pos, hash FROM feed ORDER BY pos", &[])
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.get::<_, Option<i64>>(0).expect("every change placed"),
                r.get(1),
            )
        })
        .collect();
    let at = |hash: &Vec<u8>| placed.iter().position(|(_, h)| h == hash).unwrap();
    assert!(
        at(&restored[0]) < at(&made_after[0]),
        "the restored change must come before the one made on it: {placed:?}"
    );
    // A device bootstrapping from the new cluster's feed takes it all.
    let mut fresh = Phone::new(&url, 1, (0, 0));
    fresh.pull();
    assert_eq!(
        fresh.store.shop(&shop.id()).unwrap().name,
        "搬到新库之后改的"
    );
}
