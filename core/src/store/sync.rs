//! The change feed between stores: `changes_since(cursor)` on one side,
//! `apply_changes(batch)` on the other. No per-document sync loop: one cursor
//! per peer covers every document (docs/adr/0002-change-feed.md).

use std::collections::{BTreeSet, HashMap};

use automerge::{AutoCommit, Change, ReadDoc as _};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{
    Origin, Store, build_in_parallel, commit, get_meta, index, load_doc, persist, set_meta,
    write_document,
};
use crate::access::{self, Touched, Visibility, Writer, visible_doc};
use crate::error::{Error, Result};

/// One Automerge change to one document, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChange {
    pub doc_id: String,
    pub bytes: Vec<u8>,
}

/// A change as an authority's feed lists it, for a read model that follows
/// the authority's documents ([`Store::follow_authority`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub doc_id: String,
    /// The change's hash (32 bytes).
    pub hash: Vec<u8>,
    /// When the authority received it, in milliseconds since the epoch.
    pub received_at: Option<i64>,
}

/// A document as an authority holds it: its saved bytes and, when the
/// authority kept it, the view it indexed it from ([`MergedDoc::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityDoc {
    pub doc_id: String,
    pub bytes: Vec<u8>,
    pub view: Option<String>,
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// In the order this store received them, so every change's dependencies
    /// come before it.
    pub changes: Vec<DocChange>,
    /// Pass this as the next call's cursor.
    pub cursor: u64,
    /// More changes wait after `cursor`.
    pub more: bool,
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Changes new to this store.
    pub applied: usize,
    /// Changes it had already (re-sent batches are no-ops).
    pub duplicates: usize,
    /// Documents whose content changed.
    pub documents: usize,
}

/// How far a device has synced: its own changes pushed up to `pushed` (its
/// local feed), the server's feed pulled up to `pulled`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCursors {
    pub pushed: u64,
    pub pulled: u64,
}

const PUSHED: &str = "sync.pushed";
const PULLED: &str = "sync.pulled";
/// The hash (hex) of the last feed entry a store following an authority
/// took ([`Store::follow_authority`]).
const FOLLOWED: &str = "sync.followed";
/// While a snapshot is loading: "<feed head>\t<last document id loaded>".
const SNAPSHOT: &str = "sync.snapshot";

/// Moves the pull cursor other than by following an authority's feed: the
/// change last followed no longer marks it.
fn set_pulled(tx: &Transaction<'_>, cursor: u64) -> Result<()> {
    set_meta(tx, PULLED, &cursor.to_string())?;
    tx.execute("DELETE FROM meta WHERE key = ?1", [FOLLOWED])?;
    Ok(())
}

/// A page of whole documents, for bootstrapping a new device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPage {
    /// Saved documents (Automerge `save()` bytes), in id order.
    pub docs: Vec<DocChange>,
    /// Each document's view (its entity as the index read it, as JSON), in
    /// the order of `docs`, where this store has one.
    pub views: Vec<Option<String>>,
    /// More documents follow the last one.
    pub more: bool,
    /// The feed position the snapshot covers at least: pull from here after it.
    pub feed_head: u64,
}

impl Store {
    /// The cursor of this store's newest change: `changes_since(feed_head())`
    /// returns only what arrives or is made after this call.
    pub fn feed_head(&self) -> Result<u64> {
        let head: i64 =
            self.conn
                .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
                    r.get(0)
                })?;
        Ok(head.unsigned_abs())
    }

    /// Changes this store has after `cursor` (0 = from the beginning), at most `limit`.
    pub fn changes_since(&self, cursor: u64, limit: u32) -> Result<ChangeBatch> {
        self.feed(cursor, limit, false, &Visibility::Everything)
    }

    /// The changes after `cursor` that a reader may see (the server's pull).
    pub fn visible_changes_since(
        &self,
        cursor: u64,
        limit: u32,
        reader: &Visibility,
    ) -> Result<ChangeBatch> {
        self.feed(cursor, limit, false, reader)
    }

    /// How many changes after `cursor` a reader may see.
    pub fn count_visible_changes_since(&self, cursor: u64, reader: &Visibility) -> Result<u64> {
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT count(*) FROM changes WHERE seq > :after AND {}",
            visible_doc("doc_id")
        );
        let bind = reader.bindings();
        let n: i64 = self
            .conn
            .prepare_cached(&sql)?
            .query_row(bind.with(&[(":after", &after)]).as_slice(), |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    /// Only the changes made by this store after `cursor`: what a device pushes.
    pub fn own_changes_since(&self, cursor: u64, limit: u32) -> Result<ChangeBatch> {
        self.feed(cursor, limit, true, &Visibility::Everything)
    }

    /// How many changes this store has after `cursor` (only its own with `own_only`).
    pub fn count_changes_since(&self, cursor: u64, own_only: bool) -> Result<u64> {
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let sql = match own_only {
            true => "SELECT count(*) FROM changes WHERE seq > ?1 AND local = 1",
            false => "SELECT count(*) FROM changes WHERE seq > ?1",
        };
        let n: i64 = self
            .conn
            .prepare_cached(sql)?
            .query_row([after], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    fn feed(
        &self,
        cursor: u64,
        limit: u32,
        own_only: bool,
        reader: &Visibility,
    ) -> Result<ChangeBatch> {
        let limit = limit.max(1);
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, Vec<u8>)> = {
            // Own changes through their partial index (a condition on a
            // bound parameter could not use it, and a station's read model
            // would scan every change it received since its last own one).
            let sql = format!(
                "SELECT seq, doc_id, hash FROM changes
                 WHERE seq > :after AND {} AND {}
                 ORDER BY seq LIMIT :limit",
                if own_only { "local = 1" } else { "1" },
                visible_doc("doc_id")
            );
            let bind = reader.bindings();
            let page = i64::from(limit) + 1;
            let mut stmt = self.conn.prepare_cached(&sql)?;
            stmt.query_map(
                bind.with(&[(":after", &after), (":limit", &page)])
                    .as_slice(),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            .collect::<rusqlite::Result<_>>()?
        };
        let more = rows.len() > limit as usize;
        let mut docs: HashMap<String, AutoCommit> = HashMap::new();
        let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last = cursor;
        for (seq, doc_id, hash) in rows.into_iter().take(limit as usize) {
            if !docs.contains_key(&doc_id) {
                let d = load_doc(&self.conn, &doc_id, &self.actor)?
                    .ok_or_else(|| Error::corrupt(&doc_id, "logged change without its document"))?;
                docs.insert(doc_id.clone(), d);
            }
            let hash = automerge::ChangeHash::try_from(hash.as_slice())
                .map_err(|e| Error::corrupt(&doc_id, e))?;
            let change = docs
                .get_mut(&doc_id)
                .and_then(|d| d.get_change_by_hash(&hash))
                .ok_or_else(|| {
                    Error::corrupt(&doc_id, "logged change missing from its document")
                })?;
            changes.push(DocChange {
                doc_id,
                bytes: change.raw_bytes().to_vec(),
            });
            last = seq.unsigned_abs();
        }
        Ok(ChangeBatch {
            changes,
            cursor: last,
            more,
        })
    }

    /// Pulls every change `other` has after `cursor` into this store, page by
    /// page; returns the cursor to resume from next time and what was applied.
    /// Each page commits on its own, so an interruption keeps finished pages.
    pub fn merge_from(&mut self, other: &Store, cursor: u64) -> Result<(u64, ApplyReport)> {
        const PAGE: u32 = 2_000;
        let mut cursor = cursor;
        let mut total = ApplyReport::default();
        loop {
            let batch = other.changes_since(cursor, PAGE)?;
            let r = self.apply_changes(&batch.changes)?;
            total.applied += r.applied;
            total.duplicates += r.duplicates;
            total.documents += r.documents;
            cursor = batch.cursor;
            if !batch.more {
                return Ok((cursor, total));
            }
        }
    }

    /// Applies changes from another store, all or nothing. Re-sent changes are
    /// no-ops. A change whose dependencies this store lacks fails the whole batch
    /// with [`Error::MissingDependencies`]; so does any change to a submitted
    /// inspection, or one that leaves a document unreadable.
    pub fn apply_changes(&mut self, changes: &[DocChange]) -> Result<ApplyReport> {
        self.apply_batch(decode_changes(changes)?, None, None, |_| Ok(()))
    }

    /// The sync server's entry point: applies a batch pushed by `writer`, all or
    /// nothing, after checking each change against the access rules
    /// ([`Error::Refused`] names the first change refused and why), and records
    /// `received_at` as the server's receive time.
    pub fn apply_changes_as(
        &mut self,
        changes: &[DocChange],
        writer: &Writer,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<ApplyReport> {
        self.apply_decoded_as(decode_pushed(changes.to_vec())?, writer, received_at)
    }

    /// [`Store::apply_changes_as`] for a batch [`decode_pushed`] already read:
    /// the station decodes before it takes its store's lock.
    pub fn apply_decoded_as(
        &mut self,
        changes: Vec<Incoming>,
        writer: &Writer,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<ApplyReport> {
        self.apply_batch(
            changes,
            Some(writer),
            Some(received_at.timestamp_millis()),
            |_| Ok(()),
        )
    }

    /// Whole documents after `after` (by id), at most `limit`: a new device
    /// loads these instead of replaying every change ever made.
    pub fn snapshot_page(&self, after: Option<&str>, limit: u32) -> Result<SnapshotPage> {
        self.visible_snapshot_page(after, limit, &Visibility::Everything)
    }

    /// A snapshot page of the documents a reader may see.
    pub fn visible_snapshot_page(
        &self,
        after: Option<&str>,
        limit: u32,
        reader: &Visibility,
    ) -> Result<SnapshotPage> {
        let feed_head = self.feed_head()?;
        let limit = limit.max(1);
        let sql = match access::area_ids_after(reader) {
            // The area's ids first, then each document by its key.
            Some(ids) => format!(
                "SELECT d.id, d.data, d.view FROM ({ids}) AS c CROSS JOIN documents d ON d.id = c.id
                 ORDER BY c.id LIMIT :limit"
            ),
            None => format!(
                "SELECT id, data, view FROM documents WHERE id > :after AND {} ORDER BY id LIMIT :limit",
                visible_doc("id")
            ),
        };
        let bind = reader.bindings();
        let after = after.unwrap_or("");
        let page = i64::from(limit) + 1;
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let params = bind.for_statement(&stmt, &[(":after", &after), (":limit", &page)]);
        let (mut docs, mut views): (Vec<DocChange>, Vec<Option<String>>) = stmt
            .query_map(params.as_slice(), |r| {
                Ok((
                    DocChange {
                        doc_id: r.get(0)?,
                        bytes: r.get(1)?,
                    },
                    r.get(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let more = docs.len() > limit as usize;
        docs.truncate(limit as usize);
        views.truncate(limit as usize);
        Ok(SnapshotPage {
            docs,
            views,
            more,
            feed_head,
        })
    }

    /// The named documents, whole, those of them the reader may see.
    pub fn visible_documents(&self, ids: &[String], reader: &Visibility) -> Result<Vec<DocChange>> {
        let sql = format!(
            "SELECT id, data FROM documents WHERE id = :id AND {}",
            visible_doc("id")
        );
        let bind = reader.bindings();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut out = Vec::new();
        for id in ids {
            let found = stmt
                .query_row(bind.with(&[(":id", id)]).as_slice(), |r| {
                    Ok(DocChange {
                        doc_id: r.get(0)?,
                        bytes: r.get(1)?,
                    })
                })
                .optional()?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Which of these documents a reader may see.
    pub fn visible_ids(
        &self,
        ids: &[&str],
        reader: &Visibility,
    ) -> Result<std::collections::HashSet<String>> {
        let sql = format!(
            "SELECT id FROM documents WHERE id = :id AND {}",
            visible_doc("id")
        );
        let bind = reader.bindings();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut out = std::collections::HashSet::new();
        for id in ids {
            if let Some(found) = stmt
                .query_row(bind.with(&[(":id", id)]).as_slice(), |r| r.get(0))
                .optional()?
            {
                out.insert(found);
            }
        }
        Ok(out)
    }

    /// Documents a reader may see after `after` in a snapshot (for progress).
    pub fn count_documents_after(&self, after: Option<&str>, reader: &Visibility) -> Result<u64> {
        let sql = match access::area_ids_after(reader) {
            Some(ids) => format!(
                "SELECT count(*) FROM ({ids}) AS c WHERE EXISTS (SELECT 1 FROM documents d WHERE d.id = c.id)"
            ),
            None => format!(
                "SELECT count(*) FROM documents WHERE id > :after AND {}",
                visible_doc("id")
            ),
        };
        let bind = reader.bindings();
        let after = after.unwrap_or("");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let params = bind.for_statement(&stmt, &[(":after", &after)]);
        let n: i64 = stmt.query_row(params.as_slice(), |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    /// A snapshot load in progress: the feed head it covers and the last
    /// document id loaded.
    pub fn snapshot_progress(&self) -> Result<Option<(u64, String)>> {
        Ok(get_meta(&self.conn, SNAPSHOT)?.and_then(|v| {
            let (head, last) = v.split_once('\t')?;
            Some((head.parse().ok()?, last.to_string()))
        }))
    }

    /// Loads a snapshot page, all or nothing: documents this store lacks are
    /// stored as they came, ones it has (made here before the first sync) are
    /// merged. Progress is saved in the same transaction; after the last page
    /// (`last_page`) the pull cursor becomes `feed_head`. Documents loaded this
    /// way are not in this store's own change feed. `views` (empty, or one
    /// per document) are the station's views of them: a document this store
    /// lacks is indexed from its view instead of being loaded into Automerge,
    /// the saved bytes kept as they came for merging later.
    pub fn load_snapshot(
        &mut self,
        docs: &[DocChange],
        views: &[Option<String>],
        feed_head: u64,
        last_page: bool,
    ) -> Result<usize> {
        self.load_whole(docs, views, |tx| {
            if last_page {
                set_pulled(tx, feed_head)?;
                tx.execute("DELETE FROM meta WHERE key = ?1", [SNAPSHOT])?;
            } else if let Some(last) = docs.last() {
                set_meta(tx, SNAPSHOT, &format!("{feed_head}\t{}", last.doc_id))?;
            }
            Ok(())
        })
    }

    /// Merges whole documents (saved form) into this store, all or nothing:
    /// how a device heals a document whose earlier history it never received,
    /// because the document only now came into its area.
    pub fn load_documents(&mut self, docs: &[DocChange]) -> Result<usize> {
        self.load_whole(docs, &[], |_| Ok(()))
    }

    /// Forgets where pulling stands, so the next sync starts again from a
    /// snapshot (the server moved this user to another area). Documents stay;
    /// the snapshot merges into them.
    pub fn restart_pull(&mut self) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM meta WHERE key IN (?1, ?2, ?3)",
            [PULLED, SNAPSHOT, FOLLOWED],
        )?;
        commit(tx)
    }

    fn load_whole(
        &mut self,
        docs: &[DocChange],
        views: &[Option<String>],
        finish: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<usize> {
        if !views.is_empty() && views.len() != docs.len() {
            return Err(Error::invalid(
                "views",
                format!("{} views for {} documents", views.len(), docs.len()),
            ));
        }
        for (i, d) in docs.iter().enumerate() {
            crate::ids::check_doc_id(&d.doc_id)
                .map_err(|why| Error::invalid(format!("docs[{i}].doc_id"), why))?;
        }
        let items: Vec<(&DocChange, Option<&str>)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d, views.get(i).and_then(|v| v.as_deref())))
            .collect();
        let tx = self.conn.transaction()?;
        let actor = self.actor.clone();
        build_in_parallel(
            &items,
            |&(d, view)| {
                crate::limits::check_document(&d.bytes)
                    .map_err(|why| Error::corrupt(&d.doc_id, why))?;
                if let Some(view) = view {
                    // A view's size is bounded by its page's: the client
                    // reads at most `MAX_REPLY_BYTES` of a reply.
                    let entity = index::read_entity(&d.doc_id, &index::View(view))?;
                    return Ok((d, entity, Some(view)));
                }
                untrusted(&d.doc_id, || {
                    let doc =
                        AutoCommit::load(&d.bytes).map_err(|e| Error::corrupt(&d.doc_id, e))?;
                    Ok((d, index::read_entity(&d.doc_id, &doc)?, None))
                })
            },
            |(d, entity, view)| {
                match load_doc(&tx, &d.doc_id, &actor)? {
                    None => {
                        let made;
                        let view = match view {
                            Some(v) => v,
                            None => {
                                made = index::view_of(&entity)?;
                                &made
                            }
                        };
                        write_document(
                            &tx,
                            &d.doc_id,
                            &d.bytes,
                            Some(view),
                            &[],
                            Origin::Received { at_ms: None },
                        )?;
                        index::write_rows(&tx, &d.doc_id, &entity)?;
                    }
                    Some(mut local) => {
                        let mut incoming =
                            AutoCommit::load(&d.bytes).map_err(|e| Error::corrupt(&d.doc_id, e))?;
                        local.merge(&mut incoming)?;
                        persist(
                            &tx,
                            &d.doc_id,
                            &mut local,
                            &[],
                            Origin::Received { at_ms: None },
                        )?;
                    }
                }
                Ok(())
            },
        )?;
        finish(&tx)?;
        commit(tx)?;
        Ok(docs.len())
    }

    /// Takes a page of an authority's feed the way a station's read model
    /// follows PostgreSQL (docs/adr/0017-read-models-follow-documents.md):
    /// not by merging each change again, but by storing each document of the
    /// page as the authority holds it now (`docs`, with the view the
    /// authority indexed it from) and logging the page's changes (`entries`)
    /// it did not have, with the time the authority received them. All or
    /// nothing; the pull cursor becomes `cursor`.
    ///
    /// The authority's document holds every change this store has of it,
    /// unless this store made changes to it that it has not pushed yet:
    /// such a document is merged instead, so they stay. A document may be
    /// newer than the page (changes the feed has not placed yet); those
    /// changes come in a later page, whose documents are read again.
    pub fn follow_authority(
        &mut self,
        entries: &[FeedEntry],
        docs: &[AuthorityDoc],
        cursor: u64,
    ) -> Result<ApplyReport> {
        for (i, d) in docs.iter().enumerate() {
            crate::ids::check_doc_id(&d.doc_id)
                .map_err(|why| Error::invalid(format!("docs[{i}].doc_id"), why))?;
        }
        // A change is logged only with its document: an entry without one
        // would leave this store believing it has a change it lacks.
        let given: BTreeSet<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
        if let Some(e) = entries.iter().find(|e| !given.contains(e.doc_id.as_str())) {
            return Err(Error::corrupt(
                &e.doc_id,
                "the authority's feed lists a change of a document it did not send",
            ));
        }
        let tx = self.conn.transaction()?;
        let pushed: i64 = get_meta(&tx, PUSHED)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Usually none: the station's own writes are pushed right after they
        // are made (served by the partial index of local changes).
        let unpushed: BTreeSet<String> = tx
            .prepare_cached("SELECT DISTINCT doc_id FROM changes WHERE local = 1 AND seq > ?1")?
            .query_map([pushed], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let actor = self.actor.clone();
        build_in_parallel(
            docs,
            |d| {
                crate::limits::check_document(&d.bytes)
                    .map_err(|why| Error::corrupt(&d.doc_id, why))?;
                if unpushed.contains(&d.doc_id) {
                    return Ok((d, None));
                }
                // A view that does not read (one written by another version
                // of the station) is made again from the document.
                let from_view = d.view.as_deref().and_then(|view| {
                    index::read_entity(&d.doc_id, &index::View(view))
                        .ok()
                        .map(|entity| (entity, view))
                });
                let entity = match from_view {
                    Some((entity, view)) => (entity, Some(view)),
                    None => untrusted(&d.doc_id, || {
                        let doc =
                            AutoCommit::load(&d.bytes).map_err(|e| Error::corrupt(&d.doc_id, e))?;
                        Ok((index::read_entity(&d.doc_id, &doc)?, None))
                    })?,
                };
                Ok((d, Some(entity)))
            },
            |(d, entity)| {
                let received = Origin::Received { at_ms: None };
                match entity {
                    Some((entity, view)) => {
                        let made;
                        let view = match view {
                            Some(v) => v,
                            None => {
                                made = index::view_of(&entity)?;
                                &made
                            }
                        };
                        write_document(&tx, &d.doc_id, &d.bytes, Some(view), &[], received)?;
                        index::write_rows(&tx, &d.doc_id, &entity)
                    }
                    None => {
                        let mut incoming = untrusted(&d.doc_id, || {
                            AutoCommit::load(&d.bytes).map_err(|e| Error::corrupt(&d.doc_id, e))
                        })?;
                        let mut local = load_doc(&tx, &d.doc_id, &actor)?
                            .unwrap_or_else(|| AutoCommit::new().with_actor(actor.clone()));
                        local.merge(&mut incoming)?;
                        persist(&tx, &d.doc_id, &mut local, &[], received)
                    }
                }
            },
        )?;
        let mut report = ApplyReport {
            documents: docs.len(),
            ..ApplyReport::default()
        };
        {
            let mut known = tx.prepare_cached(
                "SELECT count(*) > 0 FROM changes WHERE doc_id = ?1 AND hash = ?2",
            )?;
            let mut log = tx.prepare_cached(
                "INSERT INTO changes (doc_id, hash, local, received_at) VALUES (?1, ?2, 0, ?3)",
            )?;
            for e in entries {
                if known.query_row(params![e.doc_id, e.hash], |r| r.get(0))? {
                    report.duplicates += 1;
                } else {
                    log.execute(params![e.doc_id, e.hash, e.received_at])?;
                    report.applied += 1;
                }
            }
        }
        set_meta(&tx, PULLED, &cursor.to_string())?;
        if let Some(last) = entries.last() {
            set_meta(&tx, FOLLOWED, &crate::hex::encode(&last.hash))?;
        }
        commit(tx)?;
        Ok(report)
    }

    /// The authority's feed position this store has followed to, and the
    /// hash of the change it found there: the authority's feed must still
    /// hold that change at that position, or it is another history than the
    /// one this store followed (a database restored from a backup, a standby
    /// that lacked the last changes when it took over).
    pub fn followed(&self) -> Result<(u64, Option<Vec<u8>>)> {
        let hash = get_meta(&self.conn, FOLLOWED)?.and_then(|h| crate::hex::decode(&h));
        Ok((self.sync_cursors()?.pulled, hash))
    }

    /// Where this device's sync stands.
    pub fn sync_cursors(&self) -> Result<SyncCursors> {
        let read = |key| -> Result<u64> {
            Ok(get_meta(&self.conn, key)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        };
        Ok(SyncCursors {
            pushed: read(PUSHED)?,
            pulled: read(PULLED)?,
        })
    }

    /// Records that own changes up to `cursor` are durable on the server.
    pub fn set_pushed(&mut self, cursor: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        set_meta(&tx, PUSHED, &cursor.to_string())?;
        commit(tx)
    }

    /// Applies a pulled page and moves the pull cursor in the same transaction,
    /// so an interrupted sync never skips or repeats a page.
    pub fn apply_pulled(&mut self, changes: &[DocChange], cursor: u64) -> Result<ApplyReport> {
        self.apply_batch(decode_changes(changes)?, None, None, |tx| {
            set_pulled(tx, cursor)
        })
    }

    fn apply_batch(
        &mut self,
        changes: Vec<Incoming>,
        writer: Option<&Writer>,
        received_at: Option<i64>,
        finish: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<ApplyReport> {
        let tx = self.conn.transaction()?;
        let report = apply_in(&tx, &self.actor, changes, writer, received_at)?;
        finish(&tx)?;
        commit(tx)?;
        Ok(report)
    }

    /// Applies several devices' pushed batches in one transaction, with one
    /// durable commit (group commit). Each batch is still all or nothing on
    /// its own: every document of a batch is merged and checked before any
    /// is written, so a refused batch writes nothing and the others go on.
    /// Each gets its own answer. The outer error means none was applied
    /// (the commit failed, or writing a checked batch did).
    pub fn apply_group(&mut self, group: Vec<GroupedPush>) -> Result<Vec<Result<ApplyReport>>> {
        let tx = self.conn.transaction()?;
        let mut answers = Vec::with_capacity(group.len());
        for mut push in group {
            // A push merged ahead holds if every document it merged into is
            // still as it was then; else it is merged again here.
            let ahead = match push.premerged.take() {
                Some(ahead) => ahead.still_current(&tx)?,
                None => None,
            };
            let merged = match ahead {
                Some(merged) => Ok(merged),
                None => merge_all(&tx, &self.actor, &push.changes, Some(&push.writer)),
            };
            match merged {
                Err(refused) => answers.push(Err(refused)),
                Ok(merged) => answers.push(Ok(write_merged(
                    &tx,
                    merged,
                    Some(push.received_at.timestamp_millis()),
                )?)),
            }
        }
        commit(tx)?;
        Ok(answers)
    }
}

/// One device's pushed batch, decoded, in a group ([`Store::apply_group`]).
#[derive(Debug)]
pub struct GroupedPush {
    pub changes: Vec<Incoming>,
    pub writer: Writer,
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// The batch merged ahead of the group ([`GroupedPush::premerge`]).
    premerged: Option<Premerged>,
}

impl GroupedPush {
    /// The documents the batch changes, each once, in order.
    pub fn doc_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.changes.iter().map(|c| c.doc_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn new(
        changes: Vec<Incoming>,
        writer: Writer,
        received_at: chrono::DateTime<chrono::Utc>,
    ) -> GroupedPush {
        GroupedPush {
            changes,
            writer,
            received_at,
            premerged: None,
        }
    }

    /// Merges and checks the batch into `bases` (what [`Store::push_bases`]
    /// read) on the calling thread, ahead of its group commit: the thread
    /// that writes the group then only checks that each document is still
    /// as it was and writes the result. A batch that fails here is left to
    /// be merged again in the group, which gives its answer.
    pub fn premerge(&mut self, bases: PushBases) {
        let actor = automerge::ActorId::random();
        let mut stored: HashMap<String, Option<Vec<u8>>> = bases.docs.into_iter().collect();
        let mut merged = Vec::new();
        for (doc_id, incoming) in group_refs(&self.changes) {
            let Some(base) = stored.remove(&doc_id) else {
                return;
            };
            let work = DocWork {
                doc_id,
                incoming,
                stored: base,
            };
            match merge_with_view(&work, &actor, Some(&self.writer)) {
                Ok(m) => merged.push((work.stored, m)),
                Err(_) => return,
            }
        }
        self.premerged = Some(Premerged { merged });
    }
}

/// A copy leaves out the batch merged ahead: the copy is merged in its group.
impl Clone for GroupedPush {
    fn clone(&self) -> GroupedPush {
        GroupedPush::new(self.changes.clone(), self.writer.clone(), self.received_at)
    }
}

/// The documents a push touches as a store held them when it was read
/// ([`Store::push_bases`]).
#[derive(Debug)]
pub struct PushBases {
    docs: Vec<(String, Option<Vec<u8>>)>,
}

impl Store {
    /// What each document `push` touches holds now, for
    /// [`GroupedPush::premerge`]: read on any handle of the store, a reader
    /// beside the writer included. `None` when they come to more than
    /// [`crate::limits::MAX_AHEAD_BYTES`]: such a push is merged by the
    /// writer alone.
    pub fn push_bases(&self, push: &GroupedPush) -> Result<Option<PushBases>> {
        let mut ids: Vec<&str> = push.changes.iter().map(|c| c.doc_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut read = self
            .conn
            .prepare_cached("SELECT data FROM documents WHERE id = ?1")?;
        let mut docs = Vec::with_capacity(ids.len());
        let mut bytes = 0;
        for id in ids {
            let data: Option<Vec<u8>> = read.query_row([id], |r| r.get(0)).optional()?;
            bytes += data.as_ref().map_or(0, Vec::len);
            if bytes > crate::limits::MAX_AHEAD_BYTES {
                return Ok(None);
            }
            docs.push((id.to_string(), data));
        }
        Ok(Some(PushBases { docs }))
    }
}

/// A batch merged ahead of its group: each document's result with the
/// bytes it was merged into.
struct Premerged {
    merged: Vec<(Option<Vec<u8>>, Merged)>,
}

impl std::fmt::Debug for Premerged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Premerged")
            .field("documents", &self.merged.len())
            .finish()
    }
}

impl Premerged {
    /// The merged documents, if each is in `tx` as it was merged into.
    fn still_current(self, tx: &Transaction<'_>) -> Result<Option<Vec<Merged>>> {
        let mut read = tx.prepare_cached("SELECT data FROM documents WHERE id = ?1")?;
        let mut merged = Vec::with_capacity(self.merged.len());
        for (base, m) in self.merged {
            let now: Option<Vec<u8>> = read.query_row([&m.doc_id], |r| r.get(0)).optional()?;
            if now != base {
                return Ok(None);
            }
            merged.push(m);
        }
        Ok(Some(merged))
    }
}

/// Merges a batch into the documents inside `tx`, all or nothing only as part
/// of `tx`: each document is written as soon as it is merged.
fn apply_in(
    tx: &Transaction<'_>,
    actor: &automerge::ActorId,
    changes: Vec<Incoming>,
    writer: Option<&Writer>,
    received_at: Option<i64>,
) -> Result<ApplyReport> {
    let work = read_stored(tx, &changes)?;
    // Decoding, merging, checking and saving each document is CPU work that
    // needs no database: it runs on worker threads; this thread writes.
    let mut report = ApplyReport::default();
    build_in_parallel(
        &work,
        |w| merge_with_view(w, actor, writer),
        |merged| write_one(tx, merged, received_at, &mut report),
    )?;
    Ok(report)
}

/// A batch grouped by document, each with the document as `tx` holds it.
fn read_stored<'a>(tx: &Transaction<'_>, changes: &'a [Incoming]) -> Result<Vec<DocWork<'a>>> {
    // Group by document, keeping each document's changes in feed order.
    let mut work: Vec<DocWork> = group_refs(changes)
        .into_iter()
        .map(|(doc_id, incoming)| DocWork {
            doc_id,
            incoming,
            stored: None,
        })
        .collect();
    for w in &mut work {
        w.stored = tx
            .prepare_cached("SELECT data FROM documents WHERE id = ?1")?
            .query_row([&w.doc_id], |r| r.get(0))
            .optional()?;
    }
    Ok(work)
}

/// Every document of a batch merged and checked, nothing written: the first
/// refusal refuses the batch.
fn merge_all(
    tx: &Transaction<'_>,
    actor: &automerge::ActorId,
    changes: &[Incoming],
    writer: Option<&Writer>,
) -> Result<Vec<Merged>> {
    let work = read_stored(tx, changes)?;
    let mut merged = Vec::with_capacity(work.len());
    build_in_parallel(
        &work,
        |w| merge_with_view(w, actor, writer),
        |m| {
            merged.push(m);
            Ok(())
        },
    )?;
    Ok(merged)
}

/// Writes the documents [`merge_all`] merged.
fn write_merged(
    tx: &Transaction<'_>,
    merged: Vec<Merged>,
    received_at: Option<i64>,
) -> Result<ApplyReport> {
    let mut report = ApplyReport::default();
    for m in merged {
        write_one(tx, m, received_at, &mut report)?;
    }
    Ok(report)
}

/// Writes one merged document: its bytes, its new changes into the feed, its
/// index rows.
fn write_one(
    tx: &Transaction<'_>,
    merged: Merged,
    received_at: Option<i64>,
    report: &mut ApplyReport,
) -> Result<()> {
    report.duplicates += merged.duplicates;
    if let Some((saved, hashes, entity)) = merged.result {
        report.applied += hashes.len();
        report.documents += 1;
        let view = match merged.view {
            Some(view) => view,
            None => index::view_of(&entity)?,
        };
        write_document(
            tx,
            &merged.doc_id,
            &saved,
            Some(&view),
            &hashes,
            Origin::Received { at_ms: received_at },
        )?;
        index::write_rows(tx, &merged.doc_id, &entity)?;
        super::record_actors(tx, merged.actors.iter().map(Vec::as_slice))?;
    }
    Ok(())
}

/// One document's share of a pushed batch, merged into the document as the
/// authority stores it and checked against the access rules: the step every
/// backend takes under its lock on the document (the station's SQLite store
/// through [`Store::apply_decoded_as`], PostgreSQL for a city).
#[derive(Debug)]
pub struct MergedPush {
    pub doc_id: String,
    /// Changes the document had already.
    pub duplicates: usize,
    /// The document after the merge, its view ([`index::view_of`], what a
    /// read model indexes it from: [`Store::follow_authority`]) and its new
    /// changes in the order they were pushed; `None` when every change was a
    /// duplicate.
    pub merged: Option<MergedDoc>,
    /// The actors of the new changes.
    pub actors: Vec<Vec<u8>>,
}

/// A document merged with a push ([`MergedPush`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedDoc {
    /// The saved document.
    pub saved: Vec<u8>,
    /// Its entity's view, as JSON.
    pub view: String,
    /// Its changes new with this push, in the order they were pushed.
    pub changes: Vec<NewChange>,
}

/// A change new to its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// Its place in the pushed batch.
    pub index: usize,
    pub hash: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// A pushed batch grouped by document, each document's changes in the order
/// pushed (with their place in the batch, for refusals).
pub fn group_by_document(changes: Vec<Incoming>) -> Vec<(String, Vec<(usize, Change)>)> {
    in_groups(changes.into_iter().map(|c| (c.doc_id, c.change)))
}

/// [`group_by_document`] of borrowed changes.
fn group_refs(changes: &[Incoming]) -> Vec<(String, Vec<(usize, &Change)>)> {
    in_groups(changes.iter().map(|c| (c.doc_id.clone(), &c.change)))
}

fn in_groups<C>(changes: impl Iterator<Item = (String, C)>) -> Vec<(String, Vec<(usize, C)>)> {
    let mut work: Vec<(String, Vec<(usize, C)>)> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    for (i, (doc_id, change)) in changes.enumerate() {
        let k = match slot.get(&doc_id) {
            Some(k) => *k,
            None => {
                slot.insert(doc_id.clone(), work.len());
                work.push((doc_id, Vec::new()));
                work.len() - 1
            }
        };
        work[k].1.push((i, change));
    }
    work
}

/// Merges `incoming` (one document's changes from [`group_by_document`])
/// into the document `stored`, as `writer` pushed them: the same checks as
/// [`Store::apply_decoded_as`] (actor bound to the device, dependencies
/// present, control characters, access rules), on bytes kept anywhere.
/// With `writer` `None`, the station's own changes: merged and checked for
/// dependencies, without the access rules (as [`Store::apply_changes`]).
pub fn merge_pushed(
    doc_id: &str,
    stored: Option<Vec<u8>>,
    incoming: Vec<(usize, Change)>,
    writer: Option<&Writer>,
) -> Result<MergedPush> {
    let work = DocWork {
        doc_id: doc_id.to_string(),
        incoming: incoming.iter().map(|(i, c)| (*i, c)).collect(),
        stored,
    };
    let merged = untrusted(doc_id, || {
        merge_one(&work, &automerge::ActorId::random(), writer)
    })?;
    let result = match merged.result {
        None => None,
        Some((saved, hashes, entity)) => {
            let view = index::view_of(&entity)?;
            let by_hash: HashMap<automerge::ChangeHash, &(usize, &Change)> =
                work.incoming.iter().map(|c| (c.1.hash(), c)).collect();
            let mut changes = Vec::with_capacity(hashes.len());
            for h in &hashes {
                let (index, change) = by_hash
                    .get(h)
                    .ok_or_else(|| Error::corrupt(doc_id, "a merged change is not in its batch"))?;
                changes.push(NewChange {
                    index: *index,
                    hash: h.as_ref().to_vec(),
                    bytes: change.raw_bytes().to_vec(),
                });
            }
            Some(MergedDoc {
                saved,
                view,
                changes,
            })
        }
    };
    Ok(MergedPush {
        doc_id: merged.doc_id,
        duplicates: merged.duplicates,
        merged: result,
        actors: merged.actors.into_iter().collect(),
    })
}

/// A change read and checked: its document id fits the grammar
/// ([`crate::ids`]) and its bytes the limits ([`crate::limits`]).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub doc_id: String,
    pub change: Change,
}

/// The checks every incoming change passes before anything parses it: its
/// document id's grammar and its bytes' limits.
pub fn check_incoming(doc_id: &str, bytes: &[u8]) -> std::result::Result<(), String> {
    crate::ids::check_doc_id(doc_id)?;
    crate::limits::check_change(bytes).map(|_| ())
}

/// Reads changes from another store, checking every id and every change's
/// size before Automerge parses it.
pub fn decode_changes(changes: &[DocChange]) -> Result<Vec<Incoming>> {
    decode(changes.to_vec(), None)
}

/// [`decode_changes`] for a device's push, which also may encode at most
/// [`crate::limits::MAX_BATCH_OPS`] operations in all.
pub fn decode_pushed(changes: Vec<DocChange>) -> Result<Vec<Incoming>> {
    decode(changes, Some(crate::limits::MAX_BATCH_OPS))
}

fn decode(changes: Vec<DocChange>, max_ops: Option<u64>) -> Result<Vec<Incoming>> {
    let mut ops = 0u64;
    changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            crate::ids::check_doc_id(&c.doc_id)
                .map_err(|why| Error::invalid(format!("changes[{i}].doc_id"), why))?;
            let n = crate::limits::check_change(&c.bytes)
                .map_err(|why| Error::corrupt(&c.doc_id, format!("change {i}: {why}")))?;
            ops = ops.saturating_add(n);
            if let Some(max) = max_ops.filter(|max| ops > *max) {
                return Err(Error::invalid(
                    "changes",
                    format!("more than {max} operations in one push: send fewer changes"),
                ));
            }
            let change = untrusted(&c.doc_id, || {
                Change::from_bytes(c.bytes).map_err(|e| Error::corrupt(&c.doc_id, e))
            })?;
            Ok(Incoming {
                doc_id: c.doc_id,
                change,
            })
        })
        .collect()
}

/// Runs Automerge on bytes from another store. Automerge may panic on some
/// malformed changes that pass its parser (found by fuzzing: `fuzz/`); a panic
/// here would take down the station's writer, so it becomes a refusal of the
/// batch like any other corrupt change. Nothing was written: the caller's
/// transaction is rolled back.
fn untrusted<T>(doc_id: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(Error::corrupt(
            doc_id,
            "Automerge could not apply this change (it failed inside Automerge)",
        ))
    })
}

/// One document's share of an incoming batch.
struct DocWork<'a> {
    doc_id: String,
    incoming: Vec<(usize, &'a Change)>,
    /// The document as stored before the batch, if any.
    stored: Option<Vec<u8>>,
}

/// A document after merging its share of a batch.
struct Merged {
    doc_id: String,
    duplicates: usize,
    /// The saved document, the new change hashes and what to index; `None`
    /// when every change was a duplicate.
    result: Option<(Vec<u8>, Vec<automerge::ChangeHash>, index::Entity)>,
    /// The actors of the new changes.
    actors: BTreeSet<Vec<u8>>,
    /// The entity's view ([`index::view_of`]), when made beside the merge.
    view: Option<String>,
}

/// [`merge_one`] and the merged entity's view, on the worker thread that
/// merged it: the thread that writes has only to write.
fn merge_with_view(
    w: &DocWork,
    actor: &automerge::ActorId,
    writer: Option<&Writer>,
) -> Result<Merged> {
    untrusted(&w.doc_id, || {
        let mut merged = merge_one(w, actor, writer)?;
        if let Some((_, _, entity)) = &merged.result {
            merged.view = Some(index::view_of(entity)?);
        }
        Ok(merged)
    })
}

fn merge_one(w: &DocWork, actor: &automerge::ActorId, writer: Option<&Writer>) -> Result<Merged> {
    let id = w.doc_id.as_str();
    let existing = match &w.stored {
        Some(bytes) => Some(
            AutoCommit::load(bytes)
                .map_err(|e| Error::corrupt(id, e))?
                .with_actor(actor.clone()),
        ),
        None => None,
    };
    let was_submitted = match &existing {
        Some(d) if id.starts_with("insp/") => d.get(automerge::ROOT, "verdict")?.is_some(),
        _ => false,
    };
    let before = match (&existing, writer) {
        (Some(d), Some(_)) => Some(index::read_entity(id, d)?),
        _ => None,
    };
    let mut d = existing.unwrap_or_else(|| AutoCommit::new().with_actor(actor.clone()));
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    let mut fresh = Vec::new();
    for (index, change) in &w.incoming {
        let hash = change.hash();
        if d.get_change_by_hash(&hash).is_some() || !seen.insert(hash) {
            duplicates += 1;
        } else {
            fresh.push((*index, (*change).clone()));
        }
    }
    let Some(&(first, _)) = fresh.first() else {
        return Ok(Merged {
            doc_id: w.doc_id.clone(),
            duplicates,
            result: None,
            actors: BTreeSet::new(),
            view: None,
        });
    };
    if let Some(wr) = writer {
        if let Some((index, _)) = fresh
            .iter()
            .find(|(_, c)| c.actor_id().to_hex_string() != wr.actor)
        {
            return Err(Error::Refused {
                index: *index,
                doc_id: id.to_string(),
                reason: "made by an actor not bound to this device".into(),
            });
        }
    } else if was_submitted {
        return Err(Error::InspectionSubmitted { id: id.to_string() });
    }
    let hashes: Vec<_> = fresh.iter().map(|(_, c)| c.hash()).collect();
    let actors = fresh
        .iter()
        .map(|(_, c)| c.actor_id().to_bytes().to_vec())
        .collect();
    // A new record pushed as the one change that made it is read from its
    // operations when it has the plain shape the app writes
    // ([`crate::doc::first`]); the document is then that change's bytes,
    // which Automerge loads as it loads a saved document.
    let plain = match (&w.stored, fresh.as_slice()) {
        (None, [(_, only)]) => crate::doc::first::read(only).map(|f| (f, only.raw_bytes())),
        _ => None,
    };
    let (entity, plain) = match plain {
        Some((f, bytes)) => (index::read_entity(id, &f.root)?, Some((f.ops, bytes))),
        None => {
            d.apply_changes(fresh.into_iter().map(|(_, c)| c))?;
            let missing = d.get_missing_deps(&[]);
            if !missing.is_empty() {
                return Err(Error::MissingDependencies {
                    doc_id: id.to_string(),
                    missing: missing.len(),
                });
            }
            (index::read_entity(id, &d)?, None)
        }
    };
    if writer.is_some()
        && let Some((field, why)) = entity
            .control_characters()
            .or_else(|| entity.overlong_text(before.as_ref()))
    {
        return Err(Error::invalid(format!("{id}.{field}"), why));
    }
    if let Some(reason) = writer.and_then(|wr| check_access(wr, before.as_ref(), &entity)) {
        return Err(Error::Refused {
            index: first,
            doc_id: id.to_string(),
            reason,
        });
    }
    let (saved, ops) = match plain {
        Some((ops, bytes)) => (bytes.to_vec(), ops),
        None => (d.save(), d.stats().num_ops),
    };
    if writer.is_some() {
        crate::limits::check_record_size(ops, saved.len())
            .map_err(|why| Error::invalid(id, why))?;
    }
    Ok(Merged {
        doc_id: w.doc_id.clone(),
        duplicates,
        result: Some((saved, hashes, entity)),
        actors,
        view: None,
    })
}

/// Asks the access rules about a document's entity before and after the batch.
fn check_access(
    writer: &Writer,
    before: Option<&index::Entity>,
    after: &index::Entity,
) -> Option<String> {
    use index::Entity as E;
    let touched = match (before, after) {
        (_, E::Shop(_)) => Touched::Shop,
        (_, E::Listing(_)) => Touched::Listing,
        (_, E::Template(_)) => Touched::Template,
        (_, E::Category(_)) => Touched::Category,
        (_, E::Rules(_)) => Touched::Rules,
        (b, E::Inspection(a)) => Touched::Inspection {
            before: match b {
                Some(E::Inspection(b)) => Some(b),
                _ => None,
            },
            after: a,
        },
        (b, E::Case(a)) => Touched::Case {
            before: match b {
                Some(E::Case(b)) => Some(b),
                _ => None,
            },
            after: a,
        },
        (b, E::Patrol(a)) => Touched::Patrol {
            before: match b {
                Some(E::Patrol(b)) => Some(b),
                _ => None,
            },
            after: a,
        },
    };
    access::refusal(writer, &touched)
}
