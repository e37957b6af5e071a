//! The change feed between stores: `changes_since(cursor)` on one side,
//! `apply_changes(batch)` on the other. No per-document sync loop: one cursor
//! per peer covers every document (docs/adr/0002-change-feed.md).

use std::collections::{BTreeSet, HashMap};

use automerge::{AutoCommit, Change, ReadDoc as _};
use rusqlite::{Transaction, params};

use super::{Origin, Store, commit, get_meta, kind_name, load_doc, persist, set_meta};
use crate::access::{self, Touched, Writer};
use crate::doc;
use crate::error::{Error, Result};

/// One Automerge change to one document, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChange {
    pub doc_id: String,
    pub bytes: Vec<u8>,
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
        self.feed(cursor, limit, false)
    }

    /// Only the changes made by this store after `cursor`: what a device pushes.
    pub fn own_changes_since(&self, cursor: u64, limit: u32) -> Result<ChangeBatch> {
        self.feed(cursor, limit, true)
    }

    /// How many changes this store has after `cursor` (only its own with `own_only`).
    pub fn count_changes_since(&self, cursor: u64, own_only: bool) -> Result<u64> {
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM changes WHERE seq > ?1 AND (?2 = 0 OR local = 1)",
            )?
            .query_row(params![after, own_only], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    fn feed(&self, cursor: u64, limit: u32, own_only: bool) -> Result<ChangeBatch> {
        let limit = limit.max(1);
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, Vec<u8>)> = {
            let sql = if own_only {
                "SELECT seq, doc_id, hash FROM changes WHERE seq > ?1 AND local = 1 ORDER BY seq LIMIT ?2"
            } else {
                "SELECT seq, doc_id, hash FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            };
            let mut stmt = self.conn.prepare_cached(sql)?;
            stmt.query_map(params![after, i64::from(limit) + 1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
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
        self.apply_batch(changes, None, None, |_| Ok(()))
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
        self.apply_batch(
            changes,
            Some(writer),
            Some(received_at.timestamp_millis()),
            |_| Ok(()),
        )
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
        self.apply_batch(changes, None, None, |tx| {
            set_meta(tx, PULLED, &cursor.to_string())
        })
    }

    fn apply_batch(
        &mut self,
        changes: &[DocChange],
        writer: Option<&Writer>,
        received_at: Option<i64>,
        finish: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<ApplyReport> {
        // Group by document, keeping each document's changes in feed order.
        let mut order: Vec<&str> = Vec::new();
        let mut by_doc: HashMap<&str, Vec<(usize, Change)>> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            if kind_name(&c.doc_id) == "record" || c.doc_id.len() > 200 {
                return Err(Error::invalid(
                    format!("changes[{i}].doc_id"),
                    "not a document id",
                ));
            }
            let change =
                Change::from_bytes(c.bytes.clone()).map_err(|e| Error::corrupt(&c.doc_id, e))?;
            by_doc
                .entry(c.doc_id.as_str())
                .or_insert_with(|| {
                    order.push(c.doc_id.as_str());
                    Vec::new()
                })
                .push((i, change));
        }
        let tx = self.conn.transaction()?;
        let mut report = ApplyReport::default();
        for doc_id in order {
            let incoming = by_doc.remove(doc_id).unwrap_or_default();
            let existing = load_doc(&tx, doc_id, &self.actor)?;
            let was_submitted = match &existing {
                Some(d) if doc_id.starts_with("insp/") => {
                    d.get(automerge::ROOT, "verdict")?.is_some()
                }
                _ => false,
            };
            let before = match (&existing, writer) {
                (Some(d), Some(_)) => Some(d.clone()),
                _ => None,
            };
            let mut d =
                existing.unwrap_or_else(|| AutoCommit::new().with_actor(self.actor.clone()));
            let mut seen = BTreeSet::new();
            let mut fresh = Vec::new();
            for (index, change) in incoming {
                let hash = change.hash();
                if d.get_change_by_hash(&hash).is_some() || !seen.insert(hash) {
                    report.duplicates += 1;
                } else {
                    fresh.push((index, change));
                }
            }
            let Some(&(first, _)) = fresh.first() else {
                continue;
            };
            if let Some(w) = writer {
                if let Some((index, _)) = fresh
                    .iter()
                    .find(|(_, c)| c.actor_id().to_hex_string() != w.actor)
                {
                    return Err(Error::Refused {
                        index: *index,
                        doc_id: doc_id.to_string(),
                        reason: "made by an actor not bound to this device".into(),
                    });
                }
            } else if was_submitted {
                return Err(Error::InspectionSubmitted {
                    id: doc_id.to_string(),
                });
            }
            let hashes: Vec<_> = fresh.iter().map(|(_, c)| c.hash()).collect();
            d.apply_changes(fresh.into_iter().map(|(_, c)| c))?;
            let missing = d.get_missing_deps(&[]);
            if !missing.is_empty() {
                return Err(Error::MissingDependencies {
                    doc_id: doc_id.to_string(),
                    missing: missing.len(),
                });
            }
            let refused = match writer {
                Some(w) => check_access(w, doc_id, before.as_ref(), &d)?,
                None => None,
            };
            if let Some(reason) = refused {
                return Err(Error::Refused {
                    index: first,
                    doc_id: doc_id.to_string(),
                    reason,
                });
            }
            report.applied += hashes.len();
            report.documents += 1;
            persist(
                &tx,
                doc_id,
                &mut d,
                &hashes,
                Origin::Received { at_ms: received_at },
            )?;
        }
        finish(&tx)?;
        commit(tx)?;
        Ok(report)
    }
}

/// Reads the document before and after as entities and asks the access rules.
fn check_access(
    writer: &Writer,
    id: &str,
    before: Option<&AutoCommit>,
    after: &AutoCommit,
) -> Result<Option<String>> {
    fn read<T: serde::de::DeserializeOwned>(d: Option<&AutoCommit>, id: &str) -> Result<Option<T>> {
        d.map(|d| doc::read::<T>(d, id)).transpose()
    }
    let kind = id.split_once('/').map(|(k, _)| k).unwrap_or_default();
    Ok(match kind {
        "shop" => access::refusal(writer, &Touched::Shop),
        "tmpl" => access::refusal(writer, &Touched::Template),
        "cat" => access::refusal(writer, &Touched::Category),
        "insp" => {
            let (b, a) = (read(before, id)?, doc::read(after, id)?);
            access::refusal(
                writer,
                &Touched::Inspection {
                    before: b.as_ref(),
                    after: &a,
                },
            )
        }
        "case" => {
            let (b, a) = (read(before, id)?, doc::read(after, id)?);
            access::refusal(
                writer,
                &Touched::Case {
                    before: b.as_ref(),
                    after: &a,
                },
            )
        }
        "patrol" => {
            let (b, a) = (read(before, id)?, doc::read(after, id)?);
            access::refusal(
                writer,
                &Touched::Patrol {
                    before: b.as_ref(),
                    after: &a,
                },
            )
        }
        _ => Some("unknown document kind".to_string()),
    })
}
