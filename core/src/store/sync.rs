//! The change feed between stores: `changes_since(cursor)` on one side,
//! `apply_changes(batch)` on the other. No per-document sync loop: one cursor
//! per peer covers every document (docs/adr/0002-change-feed.md).

use std::collections::{BTreeSet, HashMap};

use automerge::{AutoCommit, Change, ReadDoc as _};
use rusqlite::params;

use super::{Store, commit, kind_name, load_doc, persist};
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
        let limit = limit.max(1);
        let after = i64::try_from(cursor).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String, Vec<u8>)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT seq, doc_id, hash FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
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
        // Group by document, keeping each document's changes in feed order.
        let mut order: Vec<&str> = Vec::new();
        let mut by_doc: HashMap<&str, Vec<Change>> = HashMap::new();
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
                .push(change);
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
            let mut d =
                existing.unwrap_or_else(|| AutoCommit::new().with_actor(self.actor.clone()));
            let mut seen = BTreeSet::new();
            let mut fresh = Vec::new();
            for change in incoming {
                let hash = change.hash();
                if d.get_change_by_hash(&hash).is_some() || !seen.insert(hash) {
                    report.duplicates += 1;
                } else {
                    fresh.push(change);
                }
            }
            if fresh.is_empty() {
                continue;
            }
            if was_submitted {
                return Err(Error::InspectionSubmitted {
                    id: doc_id.to_string(),
                });
            }
            let hashes: Vec<_> = fresh.iter().map(Change::hash).collect();
            d.apply_changes(fresh)?;
            let missing = d.get_missing_deps(&[]);
            if !missing.is_empty() {
                return Err(Error::MissingDependencies {
                    doc_id: doc_id.to_string(),
                    missing: missing.len(),
                });
            }
            report.applied += hashes.len();
            report.documents += 1;
            persist(&tx, doc_id, &mut d, &hashes)?;
        }
        commit(tx)?;
        Ok(report)
    }
}
