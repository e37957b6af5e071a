//! The authoritative documents and the change feed on PostgreSQL, for a
//! station of several instances. A push is merged and checked by the core
//! ([`menqian_core::merge_pushed`]) against the document as PostgreSQL holds
//! it, under a lock on each document taken before the transaction writes;
//! the sequencer then gives the feed its positions without gaps (see
//! `migrations/postgres/0002_documents.sql` and docs/adr/0013-city-storage.md).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use menqian_core::{ApplyReport, AuthorityDoc, DocChange, FeedEntry, Incoming, Writer};
use postgres::Client;

use super::{Conn, migrate};
use crate::store::periodic::Periodic;
use crate::store::{StoreError, StoreResult};

/// The sequencer's lock: one run at a time across every instance.
const SEQUENCER_LOCK: i64 = 0x6d65_6e71_6961_6e02;

/// The sweep's lease: one instance sweeps at a time.
const SWEEP_LOCK: i64 = 0x6d65_6e71_6961_6e03;

/// The first of the two keys of a document's lock (the second is the hash
/// of its id), apart from every other lock the station takes.
const DOCUMENT_LOCKS: i32 = 1;

/// At most this many changes get their positions in one sequencer step.
const SEQUENCER_STEP: i64 = 20_000;

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// Each change with its position, in feed order: every change comes
    /// after the changes it depends on.
    pub changes: Vec<(u64, DocChange)>,
    /// Pass this as the next call's cursor.
    pub cursor: u64,
    /// More changes wait after `cursor`.
    pub more: bool,
}

/// A page of the feed's entries ([`PgDocuments::entries_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntries {
    pub entries: Vec<FeedEntry>,
    /// Pass this as the next call's cursor.
    pub cursor: u64,
    /// More entries wait after `cursor`.
    pub more: bool,
}

/// The documents and feed in a PostgreSQL database, through one connection.
pub struct PgDocuments {
    client: Conn,
    /// Whether this connection holds the sweep's lease.
    leading: bool,
    /// Test hook: a random pause before each push commits, in this range of
    /// milliseconds, so that transactions commit out of the order they wrote.
    commit_delay_ms: (u64, u64),
}

/// One push of a group ([`PgDocuments::push_group`]).
#[derive(Debug)]
pub struct PgPush {
    /// Who made it; `None` for the station's own changes.
    pub writer: Option<Writer>,
    pub changes: Vec<Incoming>,
    /// When it arrived (the feed keeps it with each change).
    pub received: DateTime<Utc>,
}

/// A group's pushes merged one after another, before anything is written.
#[derive(Default)]
struct GroupMerge {
    /// The documents as the database held them.
    stored: HashMap<String, Vec<u8>>,
    /// The documents the group changed: their bytes and views.
    docs: HashMap<String, (Vec<u8>, String)>,
    /// The new changes in feed order, each with its push's arrival (ms).
    feed: Vec<(String, menqian_core::NewChange, i64)>,
    /// The actors of the new changes.
    actors: BTreeSet<Vec<u8>>,
}

impl GroupMerge {
    /// Merges one push, all or nothing: its documents are taken in only when
    /// every one of them merged.
    fn push(&mut self, push: PgPush) -> StoreResult<ApplyReport> {
        let writer = push.writer.as_ref();
        let mut report = ApplyReport::default();
        let mut docs = Vec::new();
        let mut changes = Vec::new();
        let mut actors = Vec::new();
        for (doc_id, incoming) in menqian_core::group_by_document(push.changes) {
            let current = match self.docs.get(&doc_id) {
                Some((bytes, _)) => Some(bytes.clone()),
                None => self.stored.get(&doc_id).cloned(),
            };
            let merged = menqian_core::merge_pushed(&doc_id, current, incoming, writer)?;
            report.duplicates += merged.duplicates;
            let Some(doc) = merged.merged else {
                continue;
            };
            report.applied += doc.changes.len();
            report.documents += 1;
            changes.extend(doc.changes.into_iter().map(|c| (doc_id.clone(), c)));
            docs.push((doc_id, (doc.saved, doc.view)));
            actors.extend(merged.actors);
        }
        // The feed keeps the order the changes were pushed in (a station
        // moved here from SQLite keeps its positions).
        changes.sort_by_key(|(_, c)| c.index);
        let at = push.received.timestamp_millis();
        self.feed
            .extend(changes.into_iter().map(|(doc_id, c)| (doc_id, c, at)));
        self.docs.extend(docs);
        self.actors.extend(actors);
        Ok(report)
    }
}

impl std::fmt::Debug for PgDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDocuments").finish_non_exhaustive()
    }
}

impl PgDocuments {
    /// Connects to `url` and brings its schema up to date.
    pub fn open(url: &str) -> StoreResult<PgDocuments> {
        let mut client = Conn::open(url)?;
        migrate(&mut client)?;
        Ok(PgDocuments {
            client,
            leading: false,
            commit_delay_ms: (0, 0),
        })
    }

    /// The connection, opened again if PostgreSQL closed it (a restart).
    fn client(&mut self) -> StoreResult<&mut Client> {
        if self.client.reopen_if_closed()? {
            // A session lock ends with its connection.
            self.leading = false;
        }
        Ok(&mut self.client)
    }

    /// Whether this connection holds the sweep's lease: a session lock, so
    /// the lease ends when the instance (or its connection) does, and
    /// another instance takes it.
    pub fn lead_sweep(&mut self) -> StoreResult<bool> {
        if !self.leading {
            self.leading = self
                .client()?
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK])?
                .get(0);
        }
        Ok(self.leading)
    }

    /// Test hook: pause each push for a random time of `min_ms` to `max_ms`
    /// before it commits.
    #[doc(hidden)]
    pub fn delay_commits_for_tests(&mut self, min_ms: u64, max_ms: u64) {
        self.commit_delay_ms = (min_ms, max_ms.max(min_ms));
    }

    /// Applies a pushed batch, all or nothing, durable when it returns: each
    /// document's changes merged into it and checked against the access
    /// rules as `writer` made them. The changes are in the feed once the
    /// sequencer reaches them (this call runs it once after committing).
    /// With `writer` `None` the changes are the station's own (an instance's
    /// sweep, a citizen's report it filed): merged without the access rules.
    pub fn push(
        &mut self,
        writer: Option<&Writer>,
        changes: Vec<Incoming>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplyReport> {
        let push = PgPush {
            writer: writer.cloned(),
            changes,
            received: now,
        };
        self.push_group(vec![push])?
            .pop()
            .unwrap_or_else(|| Err(super::no_answer()))
    }

    /// Applies several pushes in one transaction with one durable commit
    /// and one sequencer run (group commit): each push all or nothing, as
    /// [`PgDocuments::push`] applies one, merged in their order (a later
    /// push of the group meets the documents as the earlier ones left
    /// them), and its feed entries after theirs. A refused push does not
    /// hold up the others: each has its own answer, in the group's order.
    /// An error of the database's fails them all.
    pub fn push_group(
        &mut self,
        pushes: Vec<PgPush>,
    ) -> StoreResult<Vec<StoreResult<ApplyReport>>> {
        let mut ids: Vec<&str> = pushes
            .iter()
            .flat_map(|p| p.changes.iter().map(|c| c.doc_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let (min, max) = self.commit_delay_ms;
        let mut tx = self.client()?.transaction()?;
        // Every document of the group is locked before this transaction
        // writes anything, and so before it has an id: a push that depends
        // on another's changes waits for that one's commit, and its id, taken
        // later, puts it after that one in the feed. In one order (by key),
        // so two groups never wait for each other.
        tx.query_one(
            "SELECT count(pg_advisory_xact_lock($2, k)) FROM (
                 SELECT DISTINCT hashtext(d) AS k FROM unnest($1::text[]) AS d ORDER BY k
             ) AS keys",
            &[&ids, &DOCUMENT_LOCKS],
        )?;
        let stored: HashMap<String, Vec<u8>> = tx
            .query("SELECT id, data FROM documents WHERE id = ANY($1)", &[&ids])?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut merged = GroupMerge {
            stored,
            ..GroupMerge::default()
        };
        let answers: Vec<StoreResult<ApplyReport>> =
            pushes.into_iter().map(|p| merged.push(p)).collect();
        if merged.docs.is_empty() {
            // Every change was here already, or refused: nothing to write.
            tx.commit()?;
            return Ok(answers);
        }
        let (mut doc_ids, mut saved, mut views) = (Vec::new(), Vec::new(), Vec::new());
        for (id, (bytes, view)) in merged.docs {
            doc_ids.push(id);
            saved.push(bytes);
            views.push(view);
        }
        let (mut feed_docs, mut hashes, mut bytes, mut received) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (doc_id, c, at) in merged.feed {
            feed_docs.push(doc_id);
            hashes.push(c.hash);
            bytes.push(c.bytes);
            received.push(at);
        }
        tx.execute(
            "INSERT INTO documents (id, data, view)
             SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[])
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, view = excluded.view",
            &[&doc_ids, &saved, &views],
        )?;
        tx.execute(
            "INSERT INTO feed (doc_id, hash, change, received_at)
             SELECT d, h, c, r FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::int8[])
                 WITH ORDINALITY AS t (d, h, c, r, n)
             ORDER BY n",
            &[&feed_docs, &hashes, &bytes, &received],
        )?;
        let actors: Vec<Vec<u8>> = merged.actors.into_iter().collect();
        tx.execute(
            "INSERT INTO actors (actor) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING",
            &[&actors],
        )?;
        if max > 0 {
            let ms = rand::random_range(min..=max);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        tx.commit()?;
        // Acknowledged from here on. Positions are the sequencer's business:
        // if this run fails, the instances' background sequencers give them.
        if let Err(e) = self.sequence() {
            tracing::warn!(error = %e, "the sequencer's run after a push failed");
        }
        Ok(answers)
    }

    /// Gives feed positions to every committed change that has none, in the
    /// order they were written (row id); returns how many. One run at a time across all
    /// instances, each in one transaction: a reader sees a run's positions
    /// all at once, after every earlier run's.
    pub fn sequence(&mut self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.client()?.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SEQUENCER_LOCK])?;
            // A statement of its own after the lock: its snapshot sees the
            // previous run's positions, and only committed changes. A change
            // committed after this snapshot waits for the next run, so it
            // comes after everything placed now; one that depends on another
            // was written after that one committed (its push held the
            // document's lock first), so it is later in this run or in a
            // later one, never first. Not by transaction id: a backup restored
            // into another cluster keeps its rows' ids from the old numbering
            // (migrations/postgres/0004_feed_order.sql).
            let n = tx.execute(
                "WITH base AS (SELECT coalesce(max(pos), 0) AS last FROM feed),
                      todo AS (
                          SELECT id, row_number() OVER (ORDER BY id) AS n
                          FROM feed WHERE pos IS NULL
                          ORDER BY id
                          LIMIT $1
                      )
                 UPDATE feed SET pos = base.last + todo.n FROM todo, base WHERE feed.id = todo.id",
                &[&SEQUENCER_STEP],
            )?;
            tx.commit()?;
            total += n;
            if n < SEQUENCER_STEP.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    /// Changes after `cursor`, at most `limit`, in feed order.
    pub fn changes_since(&mut self, cursor: u64, limit: u32) -> StoreResult<FeedPage> {
        self.changes_between(cursor, u64::MAX, limit)
    }

    /// The feed's entries after `cursor` (at most `limit`): each change's
    /// document, hash and receive time without its bytes, for a read model
    /// that takes the documents whole ([`PgDocuments::documents`]).
    ///
    /// `followed` is the hash of the change the caller took at `cursor`:
    /// the entry there is read too, and when the feed holds another change
    /// there, or none, the answer is [`StoreError::Diverged`].
    pub fn entries_since(
        &mut self,
        cursor: u64,
        followed: Option<&[u8]>,
        limit: u32,
    ) -> StoreResult<FeedEntries> {
        let limit = i64::from(limit.max(1));
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let at = i64::from(followed.is_some());
        let rows = self.client()?.query(
            "SELECT pos, doc_id, hash, received_at FROM feed WHERE pos > $1
             ORDER BY pos LIMIT $2",
            &[&(after - at), &(limit + 1 + at)],
        )?;
        let mut rows = rows.into_iter().peekable();
        if let Some(hash) = followed {
            let there = rows
                .next_if(|r| r.get::<_, i64>(0) == after)
                .map(|r| r.get::<_, Vec<u8>>(2));
            if there.as_deref() != Some(hash) {
                return Err(diverged(cursor));
            }
        }
        let rows: Vec<_> = rows.collect();
        let more = rows.len() as i64 > limit;
        let mut cursor = cursor;
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows.into_iter().take(limit.unsigned_abs() as usize) {
            cursor = r.get::<_, i64>(0).unsigned_abs();
            entries.push(FeedEntry {
                doc_id: r.get(1),
                hash: r.get(2),
                received_at: r.get(3),
            });
        }
        Ok(FeedEntries {
            entries,
            cursor,
            more,
        })
    }

    /// These documents as they are now, each with the view the instance
    /// that last merged it indexed it from.
    pub fn documents(&mut self, ids: &[&str]) -> StoreResult<Vec<AuthorityDoc>> {
        Ok(self
            .client()?
            .query(
                "SELECT id, data, view FROM documents WHERE id = ANY($1) ORDER BY id",
                &[&ids],
            )?
            .into_iter()
            .map(|r| AuthorityDoc {
                doc_id: r.get(0),
                bytes: r.get(1),
                view: r.get(2),
            })
            .collect())
    }

    /// Changes after `cursor` up to position `upto`, at most `limit`.
    pub fn changes_between(&mut self, cursor: u64, upto: u64, limit: u32) -> StoreResult<FeedPage> {
        let limit = i64::from(limit.max(1));
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let upto = i64::try_from(upto).unwrap_or(i64::MAX);
        let rows = self.client()?.query(
            "SELECT pos, doc_id, change FROM feed WHERE pos > $1 AND pos <= $2
             ORDER BY pos LIMIT $3",
            &[&after, &upto, &(limit + 1)],
        )?;
        let more = rows.len() as i64 > limit;
        let changes: Vec<(u64, DocChange)> = rows
            .into_iter()
            .take(limit.unsigned_abs() as usize)
            .map(|r| {
                (
                    r.get::<_, i64>(0).unsigned_abs(),
                    DocChange {
                        doc_id: r.get(1),
                        bytes: r.get(2),
                    },
                )
            })
            .collect();
        let cursor = changes.last().map_or(cursor, |(pos, _)| *pos);
        Ok(FeedPage {
            changes,
            cursor,
            more,
        })
    }

    /// How many changes each document has after `cursor` up to `upto`.
    pub fn counts_between(&mut self, cursor: u64, upto: u64) -> StoreResult<Vec<(String, u64)>> {
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let upto = i64::try_from(upto).unwrap_or(i64::MAX);
        Ok(self
            .client()?
            .query(
                "SELECT doc_id, count(*) FROM feed WHERE pos > $1 AND pos <= $2 GROUP BY doc_id",
                &[&after, &upto],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1).unsigned_abs()))
            .collect())
    }

    /// Whether the feed still holds the change `followed` at position
    /// `cursor`, as a reader that followed it there took it: if not, the
    /// database is another history than the one the reader followed (it was
    /// restored from a backup, or a standby took over without the last
    /// changes), and the answer is [`StoreError::Diverged`].
    pub fn check_followed(&mut self, cursor: u64, followed: Option<&[u8]>) -> StoreResult<()> {
        let Some(hash) = followed else {
            return Ok(());
        };
        let at = i64::try_from(cursor).unwrap_or(i64::MAX);
        let there: Option<Vec<u8>> = self
            .client()?
            .query_opt("SELECT hash FROM feed WHERE pos = $1", &[&at])?
            .map(|r| r.get(0));
        if there.as_deref() == Some(hash) {
            Ok(())
        } else {
            Err(diverged(cursor))
        }
    }

    /// The last position given.
    pub fn head(&mut self) -> StoreResult<u64> {
        let head: i64 = self
            .client()?
            .query_one("SELECT coalesce(max(pos), 0) FROM feed", &[])?
            .get(0);
        Ok(head.unsigned_abs())
    }

    /// Changes acknowledged but not yet given a position (the feed's lag).
    pub fn unsequenced(&mut self) -> StoreResult<u64> {
        let n: i64 = self
            .client()?
            .query_one("SELECT count(*) FROM feed WHERE pos IS NULL", &[])?
            .get(0);
        Ok(n.unsigned_abs())
    }

    /// Whether the feed holds changes by this Automerge actor (hex).
    pub fn actor_has_changes(&mut self, actor: &str) -> StoreResult<bool> {
        let Some(bytes) = menqian_core::hex::decode(actor) else {
            return Ok(false);
        };
        Ok(self
            .client()?
            .query_opt("SELECT 1 FROM actors WHERE actor = $1", &[&bytes])?
            .is_some())
    }
}

/// An instance's background sequencer: gives positions to changes a push's
/// own run did not place (that run failed, or its instance died between the
/// commit and the run). Stops when dropped.
#[derive(Debug)]
pub struct Sequencer {
    _thread: Periodic,
}

impl Sequencer {
    /// Runs the sequencer on its own connection every `period`.
    pub fn start(url: &str, period: std::time::Duration) -> StoreResult<Sequencer> {
        let mut docs = Some(PgDocuments::open(url)?);
        let url = url.to_string();
        let periodic = Periodic::start("sequencer", period, move || {
            // A connection lost (PostgreSQL restarted) is opened again.
            let run = match docs.as_mut() {
                Some(d) => d.sequence().map(|_| ()),
                None => PgDocuments::open(&url).map(|d| docs = Some(d)),
            };
            match run {
                // Five times a second while PostgreSQL is away: once a minute.
                Err(e) => {
                    if let Some(held) = crate::quiet::LOG.pass("sequencer", std::time::Instant::now())
                    {
                        tracing::warn!(error = %e, held_back = held, "the background sequencer failed; retrying");
                    }
                    docs = None;
                }
                Ok(()) => crate::quiet::LOG.clear("sequencer"),
            }
        })
        .map_err(menqian_core::Error::from)?;
        Ok(Sequencer { _thread: periodic })
    }
}

fn diverged(cursor: u64) -> StoreError {
    StoreError::Diverged(format!(
        "the database holds another change at feed position {cursor} than this \
         instance's read model followed: it is another history (restored from a \
         backup, or a standby that took over without the last changes). Restart \
         the instance: it sets the read model aside and builds it again"
    ))
}
