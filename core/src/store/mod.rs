//! The device store: Automerge documents in SQLite, index tables for screens,
//! and a change feed for merging with other stores.

mod cases;
mod district;
mod evidence;
mod index;
mod inspections;
pub mod ledger;
pub mod migrations;
mod overview;
mod patrols;
mod public;
mod publish;
mod registry;
mod scores;
pub(crate) mod search;
mod signboard;
mod sync;

use std::path::Path;

use automerge::{ActorId, AutoCommit, ChangeHash};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::{Error, Result};

pub use cases::{CaseFilter, CaseOrder, CaseSummary, Filed};
pub use district::{Sweep, SweepReport};
pub use evidence::{Capture, CapturedPhoto, PendingBlob};
pub use inspections::{InspectionRef, InspectionSheet, SheetLine, Submitted};
pub use overview::{Overview, SpanFigures};
pub use patrols::{MAX_POINTS_PER_APPEND, PatrolRef, RESUME_WITHIN_HOURS};
pub use public::{PublicLookup, PublicShop};
pub use registry::{ImportReport, ShopSummary};
pub use scores::{
    DayPlan, LaneChiefWeek, PlanStop, RED_FLAG_BADGE_ZH, ShopExtra, Standing, StewardScore,
};
pub use signboard::{LaneBoard, Signboard, zone_words};
pub use sync::{
    ApplyReport, AuthorityDoc, ChangeBatch, DocChange, FeedEntry, GroupedPush, Incoming, MergedDoc,
    MergedPush, NewChange, PushBases, SnapshotPage, SyncCursors, check_incoming, decode_changes,
    decode_pushed, group_by_document, merge_pushed,
};

/// The schema version a store has after opening (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = migrations::LATEST_VERSION;

/// How a store is opened.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// This district's signboard hosts, e.g. `mq.fengtai.example.cn`: a scanned
    /// link to any other host is refused as foreign.
    pub qr_hosts: Vec<String>,
    /// Sync every commit to disk before returning (`synchronous = FULL`). The
    /// sync server sets this: it acknowledges a change only once it is durable.
    /// Devices keep WAL's `NORMAL`, which survives an app crash.
    pub durable: bool,
    /// Keep a public listing (`pub/<code>`, the shop without its contact) for
    /// every shop, written by this store: the sync server sets this so it can
    /// send stewards listings instead of shops.
    pub publish_listings: bool,
    /// Records whose device clock is off from the server's by more than this
    /// are flagged 时间存疑 (default five minutes).
    pub clock_skew_bound_ms: Option<i64>,
    /// An inspection fix farther than its accuracy plus this from the shop's
    /// zone is flagged 不在现场 (default 30 m).
    pub geofence_margin_m: Option<f64>,
    /// Memory for each handle's page cache and for reading the file through
    /// a memory map, in MiB (SQLite's defaults when 0: 2 MiB, no map). The
    /// station sets this: a district's indexes do not fit 2 MiB, and every
    /// page read again is a system call and a copy.
    pub cache_mib: u32,
    /// Leave copying the WAL back into the database file (checkpoints) to
    /// another connection instead of doing it inside a commit once the WAL
    /// passes 1,000 pages: the station checkpoints on a thread of its own,
    /// so a push never waits for one. Whoever sets this must checkpoint, or
    /// the WAL grows without end.
    pub background_checkpoints: bool,
}

impl StoreConfig {
    pub fn clock_skew_bound_ms(&self) -> i64 {
        self.clock_skew_bound_ms
            .unwrap_or(crate::evidence::time::DEFAULT_SKEW_BOUND_MS)
    }

    pub fn geofence_margin_m(&self) -> f64 {
        self.geofence_margin_m
            .unwrap_or(crate::model::place::DEFAULT_GEOFENCE_MARGIN_M)
    }
}

/// One device's (or the server's) store. Every public method runs in one SQLite
/// transaction: it either does all of its work or returns an error and writes
/// nothing.
pub struct Store {
    conn: Connection,
    actor: ActorId,
    config: StoreConfig,
    /// Photos and thumbnails by SHA-256, beside the database file.
    blobs: crate::evidence::blobs::BlobDir,
    uptime: crate::evidence::time::UptimeSource,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("actor", &self.actor)
            .field("config", &self.config)
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`, upgrading its schema.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        Self::open_at_version(path.as_ref(), config, migrations::LATEST_VERSION)
    }

    /// A second, read-only handle on a store that another handle writes (the
    /// same file; SQLite's WAL lets it read while the other commits): the
    /// station answers pulls and downloads on these, never waiting for a push.
    /// The writer must have opened (and migrated) the file first.
    pub fn open_reader(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let path = path.as_ref();
        let mut conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        wait_for_locks(&mut conn)?;
        set_cache(&conn, &config)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != migrations::LATEST_VERSION {
            return Err(Error::corrupt(
                path.display().to_string(),
                format!("schema version {version}: open it for writing first"),
            ));
        }
        let hex: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'actor'", [], |r| {
                r.get(0)
            })?;
        let actor = ActorId::try_from(hex.as_str()).map_err(|e| Error::corrupt("meta.actor", e))?;
        Ok(Store {
            conn,
            actor,
            config,
            blobs: crate::evidence::blobs::BlobDir::open(blob_dir_for(path))?,
            uptime: std::sync::Arc::new(crate::evidence::time::system_uptime),
        })
    }

    /// Opens the store migrated only up to `version`: for upgrade tests.
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, config: StoreConfig, version: i64) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if config.durable { "FULL" } else { "NORMAL" },
        )?;
        conn.pragma_update(None, "foreign_keys", true)?;
        wait_for_locks(&mut conn)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        set_cache(&conn, &config)?;
        if config.background_checkpoints {
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // A WAL started over is cut back to this (it grew under load).
            conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
            // A transaction takes the write lock when it begins, waiting for
            // a checkpoint that restarts the WAL; one begun as a reader could
            // not become a writer after that restart, and would fail at once.
            conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        }
        let rebuild = migrations::migrate(&mut conn, version)?;
        if version >= 2 {
            index::create_search_buffer(&conn)?;
        }
        let actor = load_or_create_actor(&mut conn)?;
        if config.publish_listings && version >= 4 {
            let publishes = get_meta(&conn, publish::PUBLISHES)?;
            if publishes.as_deref() != Some("1") {
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, '1')",
                    [publish::PUBLISHES],
                )?;
                // Shops stored before publishing began get their listings now.
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT OR IGNORE INTO temp.publish_queue (id) SELECT id FROM shops",
                    [],
                )?;
                commit(tx)?;
            }
        }
        let blobs = crate::evidence::blobs::BlobDir::open(blob_dir_for(path))?;
        let mut store = Store {
            conn,
            actor,
            config,
            blobs,
            uptime: std::sync::Arc::new(crate::evidence::time::system_uptime),
        };
        if rebuild {
            store.rebuild_index()?;
        }
        Ok(store)
    }

    /// This store's Automerge actor id (hex). The sync server binds it to the device.
    pub fn actor_id(&self) -> String {
        self.actor.to_hex_string()
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Rebuilds every index table from the documents.
    pub fn rebuild_index(&mut self) -> Result<()> {
        let tx = self.conn.transaction()?;
        index::clear(&tx)?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare("SELECT id FROM documents ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for id in ids {
            if let Some(mut doc) = load_doc(&tx, &id, &self.actor)? {
                index::reindex(&tx, &id, &doc)?;
                let actors: std::collections::BTreeSet<Vec<u8>> = doc
                    .get_changes(&[])
                    .iter()
                    .map(|c| c.actor_id().to_bytes().to_vec())
                    .collect();
                record_actors(&tx, actors.iter().map(Vec::as_slice))?;
            }
        }
        record_actors(&tx, [self.actor.to_bytes()])?;
        commit(tx)?;
        Ok(())
    }

    /// Runs `f` on the document `id` (a new empty one if `create` and it is
    /// missing), then saves, logs the change and re-indexes, all in one transaction.
    fn mutate<R>(
        &mut self,
        id: &str,
        create: bool,
        f: impl FnOnce(&Transaction<'_>, &mut AutoCommit) -> Result<R>,
    ) -> Result<R> {
        let tx = self.conn.transaction()?;
        let out = edit(&tx, &self.actor, id, create, f)?;
        commit(tx)?;
        Ok(out)
    }

    /// [`Store::mutate`] on two existing documents in one transaction: both
    /// change or neither (a fold links a report on one case and closes
    /// another; half of it, retried, would link the report twice).
    fn mutate_both(
        &mut self,
        (a, fa): (&str, impl FnOnce(&mut AutoCommit) -> Result<()>),
        (b, fb): (&str, impl FnOnce(&mut AutoCommit) -> Result<()>),
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        edit(&tx, &self.actor, a, false, |_, d| fa(d))?;
        edit(&tx, &self.actor, b, false, |_, d| fb(d))?;
        commit(tx)
    }

    /// Moves everything in the write-ahead log into the database file, so the file
    /// alone is a complete copy (before a backup, or to measure its size).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Number of documents and of logged changes: for diagnostics and tests.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let count = |table: &str| -> Result<u64> {
            let n: i64 =
                self.conn
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(n.unsigned_abs())
        };
        Ok((count("documents")?, count("changes")?))
    }

    /// Every document as JSON, sorted by id: two converged stores return equal
    /// values. Loads every document, so it is for tests and diagnostics only.
    pub fn documents_json(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let mut stmt = self.conn.prepare("SELECT id FROM documents ORDER BY id")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(doc) = load_doc(&self.conn, &id, &self.actor)? {
                out.push((id.clone(), crate::doc::to_json(&doc, &id)?));
            }
        }
        Ok(out)
    }

    /// Every row of every index table as text, sorted: two converged stores
    /// return equal values (rowids, which depend on arrival order, are left out).
    pub fn index_snapshot(&self) -> Result<Vec<String>> {
        index::snapshot(&self.conn)
    }
}

/// Runs `f` on document `id` inside `tx` (a new empty one if `create` and it
/// is missing), then saves it, logs the change and re-indexes it.
fn edit<R>(
    tx: &Transaction<'_>,
    actor: &ActorId,
    id: &str,
    create: bool,
    f: impl FnOnce(&Transaction<'_>, &mut AutoCommit) -> Result<R>,
) -> Result<R> {
    let mut doc = match load_doc(tx, id, actor)? {
        Some(doc) => doc,
        None if create => AutoCommit::new().with_actor(actor.clone()),
        None => return Err(Error::not_found(kind_name(id), id)),
    };
    let out = f(tx, &mut doc)?;
    if let Some(hash) = doc.commit() {
        persist(tx, id, &mut doc, &[hash], Origin::Local)?;
    }
    Ok(out)
}

/// Notes that changes by these actors are in this store.
pub(crate) fn record_actors<'a>(
    tx: &Transaction<'_>,
    actors: impl IntoIterator<Item = &'a [u8]>,
) -> Result<()> {
    let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO actors (actor) VALUES (?1)")?;
    for actor in actors {
        insert.execute([actor])?;
    }
    Ok(())
}

impl Store {
    /// Whether changes by `actor` (hex) are in this store, or it is this
    /// store's own: the station binds no such actor to a new device.
    pub fn actor_in_feed(&self, actor: &str) -> Result<bool> {
        let Some(bytes) = crate::hex::decode(actor) else {
            return Ok(false);
        };
        if bytes == self.actor.to_bytes() {
            return Ok(true);
        }
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM actors WHERE actor = ?1")?
            .query_row([bytes], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// Where a store keeps its blobs: `<database file>-blobs/`.
pub fn blob_dir_for(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-blobs");
    std::path::PathBuf::from(name)
}

fn load_or_create_actor(conn: &mut Connection) -> Result<ActorId> {
    let hex: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'actor'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(hex) = hex {
        return ActorId::try_from(hex.as_str()).map_err(|e| Error::corrupt("meta.actor", e));
    }
    let actor = ActorId::random();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('actor', ?1)",
        [actor.to_hex_string()],
    )?;
    Ok(actor)
}

/// The page cache and memory map of [`StoreConfig::cache_mib`].
fn set_cache(conn: &Connection, config: &StoreConfig) -> Result<()> {
    if config.cache_mib > 0 {
        let mib = i64::from(config.cache_mib);
        // A negative cache_size is in KiB.
        conn.pragma_update(None, "cache_size", -mib * 1024)?;
        conn.pragma_update(None, "mmap_size", mib * 4 * 1024 * 1024)?;
    }
    Ok(())
}

/// Commits a transaction after moving buffered search rows into the index.
/// Every writing transaction ends here.
pub(crate) fn commit(tx: Transaction<'_>) -> Result<()> {
    publish::flush(&tx)?;
    index::flush_search(&tx)?;
    tx.commit()?;
    Ok(())
}

/// Loads a document, or `None` if this store has none with that id.
pub(crate) fn load_doc(conn: &Connection, id: &str, actor: &ActorId) -> Result<Option<AutoCommit>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM documents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match data {
        None => Ok(None),
        Some(bytes) => AutoCommit::load(&bytes)
            .map(|d| Some(d.with_actor(actor.clone())))
            .map_err(|e| Error::corrupt(id, e)),
    }
}

/// Where a logged change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Made by this store: a device pushes these.
    Local,
    /// Received from another store; the server records when it accepted it.
    Received { at_ms: Option<i64> },
}

/// Saves the document, appends its new changes to the log and re-indexes it.
pub(crate) fn persist(
    tx: &Transaction<'_>,
    id: &str,
    doc: &mut AutoCommit,
    new_changes: &[ChangeHash],
    origin: Origin,
) -> Result<()> {
    let entity = index::read_entity(id, doc)?;
    let view = index::view_of(&entity)?;
    let saved = doc.save();
    // This store's own edit may not make a record a station would refuse
    // from a device (it could never be pushed).
    if origin == Origin::Local {
        use automerge::ReadDoc as _;
        crate::limits::check_record_size(doc.stats().num_ops, saved.len())
            .map_err(|why| Error::invalid(id, why))?;
    }
    write_document(tx, id, &saved, Some(&view), new_changes, origin)?;
    index::write_rows(tx, id, &entity)
}

/// Stores a saved document with its view (`index::view_of`, `None` when it
/// is not indexed) and logs its new changes (the caller writes the index
/// rows).
pub(crate) fn write_document(
    tx: &Transaction<'_>,
    id: &str,
    saved: &[u8],
    view: Option<&str>,
    new_changes: &[ChangeHash],
    origin: Origin,
) -> Result<()> {
    crate::ids::check_doc_id(id).map_err(|why| Error::invalid("id", why))?;
    tx.prepare_cached(
        "INSERT INTO documents (id, data, view) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, view = excluded.view",
    )?
    .execute(params![id, saved, view])?;
    let (local, received_at) = match origin {
        Origin::Local => (true, None),
        Origin::Received { at_ms } => (false, at_ms),
    };
    let mut log = tx.prepare_cached(
        "INSERT INTO changes (doc_id, hash, local, received_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for hash in new_changes {
        log.execute(params![id, hash.as_ref(), local, received_at])?;
    }
    Ok(())
}

/// The entity kind of a document id, for error messages.
pub(crate) fn kind_name(id: &str) -> &'static str {
    match id.split_once('/').map(|(k, _)| k) {
        Some("shop") => "shop",
        Some("pub") => "public listing",
        Some("tmpl") => "checklist template",
        Some("cat") => "category",
        Some("insp") => "inspection",
        Some("case") => "case",
        Some("patrol") => "patrol",
        Some("rules") => "district rules",
        _ => "record",
    }
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute([key, value])?;
    Ok(())
}

impl Store {
    /// A device setting kept in the `meta` table (not synced).
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        get_meta(&self.conn, key)
    }

    /// Sets (or, with `None`, removes) a device setting.
    pub fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let tx = self.conn.transaction()?;
        match value {
            Some(v) => set_meta(&tx, key, v)?,
            None => {
                tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
            }
        }
        commit(tx)
    }
}

/// A time stored in an index table as milliseconds since the Unix epoch.
pub(crate) fn time_from_ms(id: &str, ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::corrupt(id, "bad time in index"))
}

/// A comma-separated list stored in an index table (photo ids, item codes).
pub(crate) fn split_list(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// A new document id of `kind`: a UUIDv7 (48 bits of Unix milliseconds,
/// then 74 random bits), so that ids made about the same time sort together
/// and a store's B-trees (the documents, the feed, each index keyed by id)
/// take new records at a few pages near their end instead of one random
/// page each.
pub(crate) fn new_id(kind: &str) -> String {
    format!("{kind}/{}", uuid::Uuid::now_v7().simple())
}

/// Steps of a millisecond a handle waits for another's lock: about 5 s.
const LOCK_WAIT_STEPS: i32 = 5_000;

/// Makes `conn` wait for another handle's lock in steps of a millisecond,
/// for about five seconds, then fail as busy. SQLite's own handler
/// (`busy_timeout`) sleeps longer and longer, up to 100 ms a step: a commit
/// waiting for a checkpoint, or a checkpoint that holds commits back while
/// it waits for readers, would wait out most of a step after the lock was
/// free.
pub fn wait_for_locks(conn: &mut Connection) -> rusqlite::Result<()> {
    fn step(tries: i32) -> bool {
        std::thread::sleep(std::time::Duration::from_millis(1));
        tries < LOCK_WAIT_STEPS
    }
    conn.busy_handler(Some(step))
}

/// Runs `build` over `items` on worker threads (one per core) and hands each
/// result to `write` on this thread, in input order. Automerge document
/// construction is the costly half of an import and SQLite writing the other;
/// this overlaps them. The first error stops the workers and is returned.
pub(crate) fn build_in_parallel<'a, T: Sync, R: Send>(
    items: &'a [T],
    build: impl Fn(&'a T) -> Result<R> + Sync,
    mut write: impl FnMut(R) -> Result<()>,
) -> Result<()> {
    /// Items a worker builds per hand-over: one hand-over (a channel send
    /// and a thread wake-up) costs more than a cheap build.
    const CHUNK: usize = 32;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    if items.len() < 16 || workers == 1 {
        return items.iter().try_for_each(|item| write(build(item)?));
    }
    let chunks: Vec<&'a [T]> = items.chunks(CHUNK).collect();
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<(usize, Vec<Result<R>>)>(16);
        for w in 0..workers {
            let send = send.clone();
            let build = &build;
            let chunks = &chunks;
            scope.spawn(move || {
                for i in (w..chunks.len()).step_by(workers) {
                    // A chunk stops at its first error: nothing after it is written.
                    let mut built = Vec::with_capacity(chunks[i].len());
                    for item in chunks[i] {
                        let result = build(item);
                        let failed = result.is_err();
                        built.push(result);
                        if failed {
                            break;
                        }
                    }
                    if send.send((i, built)).is_err() {
                        return; // the writer stopped: an error is on its way out
                    }
                }
            });
        }
        drop(send);
        let mut pending = std::collections::BTreeMap::new();
        let mut next = 0;
        for (i, built) in receive {
            pending.insert(i, built);
            while let Some(built) = pending.remove(&next) {
                for result in built {
                    write(result?)?;
                }
                next += 1;
            }
        }
        Ok(())
    })
}
