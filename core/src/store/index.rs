//! Keeps the index tables in step with the documents. Every row here is derived
//! from one document's content alone, so two stores holding the same documents
//! hold the same index rows, whatever order the changes arrived in.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::search;
use crate::doc;
use crate::error::{Error, Result};
use crate::model::case::Case;
use crate::model::category::Category;
use crate::model::inspection::Inspection;
use crate::model::patrol::Patrol;
use crate::model::rules::{DistrictRules, RULES_DOC};
use crate::model::shop::Shop;
use crate::model::template::ChecklistTemplate;
use automerge::AutoCommit;
use serde::de::DeserializeOwned;

/// A document read as its entity: what the index rows are made from.
pub(crate) enum Entity {
    Shop(Shop),
    /// A shop's public listing (`pub/<code>`): the shop without its contact.
    Listing(Shop),
    Template(ChecklistTemplate),
    Category(Category),
    Inspection(Inspection),
    Case(Case),
    Patrol(Patrol),
    Rules(DistrictRules),
}

pub(crate) fn reindex(tx: &Transaction<'_>, id: &str, d: &AutoCommit) -> Result<()> {
    write_entity(tx, id, &read_entity(id, d)?)
}

/// Where an entity is read from: the document itself, or its view (the JSON
/// a station stored beside it when it indexed it, see [`view_of`]).
pub(crate) trait EntitySource {
    fn read<T: DeserializeOwned>(&self, id: &str) -> Result<T>;
}

impl EntitySource for AutoCommit {
    fn read<T: DeserializeOwned>(&self, id: &str) -> Result<T> {
        doc::read(self, id)
    }
}

/// A hydrated document's root ([`doc::first`]).
impl EntitySource for automerge::hydrate::Value {
    fn read<T: DeserializeOwned>(&self, id: &str) -> Result<T> {
        doc::read_hydrated(self, id)
    }
}

/// A document's view, as a snapshot page carries it.
pub(crate) struct View<'a>(pub &'a str);

impl EntitySource for View<'_> {
    fn read<T: DeserializeOwned>(&self, id: &str) -> Result<T> {
        serde_json::from_str(self.0).map_err(|e| Error::corrupt(id, format!("its view: {e}")))
    }
}

/// The entity as JSON, in its model's serde form: what [`read_entity`]
/// reads back from a [`View`] as the same entity.
pub(crate) fn view_of(entity: &Entity) -> Result<String> {
    match entity {
        Entity::Shop(s) | Entity::Listing(s) => json_text(s),
        Entity::Template(t) => json_text(t),
        Entity::Category(c) => json_text(c),
        Entity::Inspection(i) => json_text(i),
        Entity::Case(c) => json_text(c),
        Entity::Patrol(p) => json_text(p),
        Entity::Rules(r) => json_text(r),
    }
}

/// Reads and validates a document as the entity its id names. Needs no
/// database, so snapshot loading runs it on worker threads.
pub(crate) fn read_entity(id: &str, d: &impl EntitySource) -> Result<Entity> {
    let kind = id.split_once('/').map(|(k, _)| k).unwrap_or_default();
    Ok(match kind {
        "shop" => {
            let s = d.read::<Shop>(id)?.validated()?;
            same_id(id, &s.id())?;
            Entity::Shop(s)
        }
        "pub" => {
            let s = d.read::<Shop>(id)?.validated_public()?;
            same_id(id, &s.listing_id())?;
            Entity::Listing(s.public())
        }
        "tmpl" => {
            let t = d.read::<ChecklistTemplate>(id)?.validated()?;
            same_id(id, &ChecklistTemplate::doc_id(&t.id, t.version))?;
            Entity::Template(t)
        }
        "cat" => {
            let c = d.read::<Category>(id)?.validated()?;
            same_id(id, &Category::doc_id(&c.code))?;
            Entity::Category(c)
        }
        "insp" => {
            let mut i: Inspection = d.read(id)?;
            i.id = id.to_string();
            Entity::Inspection(i)
        }
        "case" => {
            let mut c: Case = d.read(id)?;
            // A case under an escalation's id is that escalation, and only it.
            let escalates = c
                .rectification
                .as_deref()
                .map(super::ledger::escalation_case_id);
            if escalates.as_deref() != crate::ids::is_escalation(&id[5..]).then_some(id) {
                return Err(Error::corrupt(
                    id,
                    "a case's id and the rectification it escalates disagree",
                ));
            }
            c.id = id.to_string();
            Entity::Case(c)
        }
        "patrol" => {
            let mut p: Patrol = d.read(id)?;
            p.id = id.to_string();
            Entity::Patrol(p)
        }
        "rules" => {
            same_id(id, RULES_DOC)?;
            Entity::Rules(d.read::<DistrictRules>(id)?.validated()?)
        }
        _ => return Err(Error::corrupt(id, "unknown document kind")),
    })
}

impl Entity {
    /// The first text field holding a control character, and what it is:
    /// records a device made carry no character a screen or terminal would
    /// act on, line breaks aside (shops, templates, categories and rules are
    /// checked field by field when they are read).
    pub(crate) fn control_characters(&self) -> Option<(String, String)> {
        let value = match self {
            Entity::Inspection(i) => serde_json::to_value(i),
            Entity::Case(c) => serde_json::to_value(c),
            Entity::Patrol(p) => serde_json::to_value(p),
            _ => return None,
        }
        .ok()?;
        control_in_json(&value, &mut String::new())
    }

    /// The first text of a device's record longer than its form takes, and
    /// why (a description or a note: [`crate::model::MAX_NOTE_CHARS`]). Text
    /// the same as before the batch stands, so a record stored before the
    /// station held devices to these lengths can still be moved on.
    pub(crate) fn overlong_text(&self, before: Option<&Entity>) -> Option<(String, String)> {
        let was: std::collections::HashMap<String, &str> = before
            .map(Entity::bounded_texts)
            .unwrap_or_default()
            .into_iter()
            .map(|(field, text, _)| (field, text))
            .collect();
        self.bounded_texts()
            .into_iter()
            .find(|(field, text, max)| was.get(field) != Some(text) && text.chars().count() > *max)
            .map(|(field, _, max)| (field, format!("longer than {max} characters")))
    }

    fn bounded_texts(&self) -> Vec<(String, &str, usize)> {
        match self {
            Entity::Case(c) => c.bounded_texts(),
            Entity::Inspection(i) => i.bounded_texts(),
            _ => Vec::new(),
        }
    }
}

fn control_in_json(v: &serde_json::Value, path: &mut String) -> Option<(String, String)> {
    use serde_json::Value as V;
    let nested = |key: &str, v: &serde_json::Value, path: &mut String| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        let found = control_in_json(v, path);
        path.truncate(len);
        found
    };
    match v {
        V::String(s) => crate::model::control_in(s, true).map(|why| (path.clone(), why)),
        V::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nested(&i.to_string(), item, path)),
        V::Object(map) => map.iter().find_map(|(k, item)| {
            crate::model::control_in(k, false)
                .map(|why| (path.clone(), why))
                .or_else(|| nested(k, item, path))
        }),
        _ => None,
    }
}

/// Replaces the document's index rows and its view with the entity's (the
/// document's row is written first).
pub(crate) fn write_entity(tx: &Transaction<'_>, id: &str, entity: &Entity) -> Result<()> {
    tx.prepare_cached("UPDATE documents SET view = ?2 WHERE id = ?1")?
        .execute(params![id, view_of(entity)?])?;
    write_rows(tx, id, entity)
}

/// Replaces the document's index rows with the entity's.
pub(crate) fn write_rows(tx: &Transaction<'_>, id: &str, entity: &Entity) -> Result<()> {
    match entity {
        Entity::Shop(s) => {
            // A station store keeps each shop's public listing in step (see
            // `publish`); the queue is drained when the transaction commits.
            tx.prepare_cached(
                "INSERT OR IGNORE INTO temp.publish_queue (id)
                 SELECT ?1 FROM meta WHERE key = 'publish_listings' AND value = '1'",
            )?
            .execute([id])?;
            shop(tx, id, s)
        }
        Entity::Listing(s) => {
            // A steward's phone lists shops from their listings; a store that
            // holds the shop itself indexes that instead.
            let shop_id = s.id();
            let has_shop: bool = tx
                .prepare_cached("SELECT count(*) > 0 FROM documents WHERE id = ?1")?
                .query_row([&shop_id], |r| r.get(0))?;
            if has_shop {
                Ok(())
            } else {
                shop(tx, &shop_id, s)
            }
        }
        Entity::Template(t) => template(tx, id, t),
        Entity::Category(c) => category(tx, id, c),
        Entity::Inspection(i) => inspection(tx, i),
        Entity::Case(c) => case(tx, c),
        Entity::Patrol(p) => patrol(tx, p),
        Entity::Rules(r) => {
            tx.prepare_cached("INSERT OR REPLACE INTO rules (id, body) VALUES (?1, ?2)")?
                .execute(params![id, json_text(r)?])?;
            Ok(())
        }
    }
}

/// A document whose key fields disagree with its id (a shop filed under another
/// shop's code) would make lookups by code and by id disagree: refuse it.
fn same_id(id: &str, from_content: &str) -> Result<()> {
    if id == from_content {
        Ok(())
    } else {
        Err(Error::corrupt(id, "its content belongs under another id"))
    }
}

fn shop(tx: &Transaction<'_>, id: &str, s: &Shop) -> Result<()> {
    let old_rowid: Option<i64> = tx
        .prepare_cached("SELECT rowid FROM shops WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(rowid) = old_rowid {
        // In the search index since before this transaction, unless this
        // transaction put it there (then it is still only pending).
        tx.prepare_cached(
            "INSERT OR IGNORE INTO temp.search_delete (rowid)
             SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM temp.search_insert WHERE rowid = ?1)",
        )?
        .execute([rowid])?;
    }
    let centre = s.zone.centroid();
    let tags: Vec<&str> = s.tags.iter().map(|t| t.as_str()).collect();
    let rowid: i64 = tx
        .prepare_cached(
            "INSERT INTO shops (id, code, name, address, category, contact_person, contact_phone,
                zone, lat, lon, letter_version, letter_signed, street, lane, tags, status, subdistrict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
                address = excluded.address, category = excluded.category,
                contact_person = excluded.contact_person, contact_phone = excluded.contact_phone,
                zone = excluded.zone, lat = excluded.lat, lon = excluded.lon,
                letter_version = excluded.letter_version, letter_signed = excluded.letter_signed,
                street = excluded.street, lane = excluded.lane, tags = excluded.tags,
                status = excluded.status, subdistrict = excluded.subdistrict
             RETURNING rowid",
        )?
        .query_row(
            params![
                id,
                s.code,
                s.name,
                s.address,
                s.category.as_str(),
                s.contact.person,
                s.contact.phone,
                s.zone.encode(),
                centre.lat,
                centre.lon,
                s.letter.as_ref().map(|l| l.version.as_str()),
                s.letter.as_ref().map(|l| l.signed_on.to_string()),
                s.street,
                s.lane,
                tags.join(","),
                s.status.as_str(),
                s.subdistrict,
            ],
            |r| r.get(0),
        )?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO temp.search_insert (rowid, name, address) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        rowid,
        search::tokens(&s.name),
        search::tokens(&s.address)
    ])?;
    Ok(())
}

fn template(tx: &Transaction<'_>, id: &str, t: &ChecklistTemplate) -> Result<()> {
    let body = serde_json::to_string(t).map_err(|e| Error::corrupt(id, e))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO templates (id, template_id, version, name, issuer, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, t.id, t.version, t.name, t.issuer, body])?;
    Ok(())
}

fn category(tx: &Transaction<'_>, id: &str, c: &Category) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO categories (id, code, name, grp, national_code, local)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        c.code,
        c.name,
        c.group,
        c.national_code,
        c.local
    ])?;
    Ok(())
}

fn inspection(tx: &Transaction<'_>, i: &Inspection) -> Result<()> {
    tx.prepare_cached(
        // An upsert, not a replace: a replace into a table with other
        // indexes runs under a statement journal (see migration 0013).
        "INSERT INTO inspections (id, shop_id, template_id, template_version,
            inspector, started_at, ended_at, fix_lat, fix_lon, fix_accuracy_m, fix_at,
            applicable, score, verdict, evidence, time, geofence, off_site)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (id) DO UPDATE SET shop_id = excluded.shop_id, template_id = excluded.template_id, template_version = excluded.template_version, inspector = excluded.inspector, started_at = excluded.started_at, ended_at = excluded.ended_at, fix_lat = excluded.fix_lat, fix_lon = excluded.fix_lon, fix_accuracy_m = excluded.fix_accuracy_m, fix_at = excluded.fix_at, applicable = excluded.applicable, score = excluded.score, verdict = excluded.verdict, evidence = excluded.evidence, time = excluded.time, geofence = excluded.geofence, off_site = excluded.off_site",
    )?
    .execute(params![
        i.id,
        i.shop_id,
        i.template_id,
        i.template_version,
        i.inspector,
        i.started_at.timestamp_millis(),
        i.ended_at.map(|t| t.timestamp_millis()),
        i.fix.map(|f| f.lat),
        i.fix.map(|f| f.lon),
        i.fix.map(|f| f.accuracy_m),
        i.fix.map(|f| f.at.timestamp_millis()),
        i.applicable.join(","),
        i.score,
        i.verdict.map(|v| v.as_str()),
        json_or_null(&i.evidence, i.evidence.is_empty())?,
        i.time.map(|t| json_text(&t)).transpose()?,
        i.geofence.map(|g| json_text(&g)).transpose()?,
        i.geofence.map(|g| g.flagged),
    ])?;
    evidence_refs(tx, &i.id, &i.evidence)?;
    tx.prepare_cached("DELETE FROM inspection_items WHERE inspection_id = ?1")?
        .execute([&i.id])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO inspection_items (inspection_id, code, outcome, note, photos, shop_id,
            submitted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let submitted_at = i.verdict.and(i.ended_at).map(|t| t.timestamp_millis());
    for (code, r) in &i.items {
        ins.execute(params![
            i.id,
            code,
            r.outcome.as_str(),
            r.note,
            r.photos.join(","),
            i.shop_id,
            submitted_at,
        ])?;
    }
    Ok(())
}

fn case(tx: &Transaction<'_>, c: &Case) -> Result<()> {
    let replay = c.replay();
    let closed_at = (replay.status == crate::model::case::CaseStatus::Closed)
        .then(|| replay.since.timestamp_millis());
    let accepted = c
        .history
        .iter()
        .zip(&replay.effective)
        .any(|(s, ok)| *ok && s.status == crate::model::case::CaseStatus::Accepted);
    // Where the case lies, for who may see it: its shop's subdistrict and
    // lane while the shop is in the registry, else where it was reported
    // (migration 0010; the triggers on `shops` keep this when a shop moves).
    let shop_area: Option<(Option<String>, Option<String>)> = match &c.shop_id {
        Some(shop) => tx
            .prepare_cached("SELECT subdistrict, lane FROM shops WHERE id = ?1")?
            .query_row([shop], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
        None => None,
    };
    let (area_sub, area_lane) = match &shop_area {
        Some((sub, lane)) => (sub.as_deref(), lane.as_deref()),
        None => (c.subdistrict.as_deref(), c.lane.as_deref()),
    };
    // The case's rowid, the key of its place in `case_places`: looked up,
    // not returned by the upsert, as SQLite runs `RETURNING` as a trigger,
    // under a statement journal (see migration 0013).
    let existing: Option<i64> = tx
        .prepare_cached("SELECT rowid FROM cases WHERE id = ?1")?
        .query_row([&c.id], |r| r.get(0))
        .optional()?;
    tx.prepare_cached(
        // An upsert, not a replace: the case keeps its rowid.
        "INSERT INTO cases (id, source, category, lat, lon, shop_id, description,
            photos, deadline, reported_by, reported_at, status, status_at, subdistrict, lane,
            evidence, time, department, whistle, dispatched_at, rectification, accepted, closed_at,
            area_sub, area_lane)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)
         ON CONFLICT (id) DO UPDATE SET source = excluded.source, category = excluded.category, lat = excluded.lat, lon = excluded.lon, shop_id = excluded.shop_id, description = excluded.description, photos = excluded.photos, deadline = excluded.deadline, reported_by = excluded.reported_by, reported_at = excluded.reported_at, status = excluded.status, status_at = excluded.status_at, subdistrict = excluded.subdistrict, lane = excluded.lane, evidence = excluded.evidence, time = excluded.time, department = excluded.department, whistle = excluded.whistle, dispatched_at = excluded.dispatched_at, rectification = excluded.rectification, accepted = excluded.accepted, closed_at = excluded.closed_at, area_sub = excluded.area_sub, area_lane = excluded.area_lane",
    )?
    .execute(params![
        c.id,
        c.source.as_str(),
        c.category,
        c.location.lat,
        c.location.lon,
        c.shop_id,
        c.description,
        c.photos.join(","),
        c.deadline.map(|t| t.timestamp_millis()),
        c.reported_by,
        c.reported_at.timestamp_millis(),
        replay.status.as_str(),
        replay.since.timestamp_millis(),
        c.subdistrict,
        c.lane,
        json_or_null(&c.evidence, c.evidence.is_empty())?,
        c.time.map(|t| json_text(&t)).transpose()?,
        replay.dispatch.as_ref().map(|d| d.0.as_str()),
        replay.dispatch.as_ref().map(|d| d.1.as_str()),
        replay.dispatch.as_ref().map(|d| d.2.timestamp_millis()),
        c.rectification,
        accepted,
        closed_at,
        area_sub,
        area_lane,
    ])?;
    let rowid = existing.unwrap_or_else(|| tx.last_insert_rowid());
    // Its place for the duplicate search, under its rowid (migration 0013):
    // rectification escalations take no part in it.
    if c.rectification.is_none() {
        let hours = c.reported_at.timestamp_millis() as f64 / 3_600_000.0;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO case_places VALUES (?1, ?2, ?2, ?3, ?3, ?4, ?4)",
        )?
        .execute(params![rowid, c.location.lat, c.location.lon, hours])?;
    } else {
        tx.prepare_cached("DELETE FROM case_places WHERE key = ?1")?
            .execute([rowid])?;
    }
    let mut evidence = c.evidence.clone();
    for l in &c.linked {
        evidence.extend(l.evidence.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    evidence_refs(tx, &c.id, &evidence)?;
    tx.prepare_cached("DELETE FROM case_history WHERE case_id = ?1")?
        .execute([&c.id])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO case_history (case_id, idx, status, at, by, note, role, department, whistle,
            effective)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (idx, (s, effective)) in c.history.iter().zip(&replay.effective).enumerate() {
        ins.execute(params![
            c.id,
            idx as i64,
            s.status.as_str(),
            s.at.timestamp_millis(),
            s.by,
            s.note,
            s.role.map(|r| r.as_str()),
            s.department,
            s.whistle.map(|w| w.as_str()),
            effective,
        ])?;
    }
    tx.prepare_cached("DELETE FROM case_links WHERE case_id = ?1")?
        .execute([&c.id])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO case_links (case_id, idx, source, reported_by, reported_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (idx, l) in c.linked.iter().enumerate() {
        ins.execute(params![
            c.id,
            idx as i64,
            l.source.as_str(),
            l.reported_by,
            l.reported_at.timestamp_millis()
        ])?;
    }
    Ok(())
}

fn patrol(tx: &Transaction<'_>, p: &Patrol) -> Result<()> {
    let points = p.points()?;
    let track = crate::model::patrol::encode_chunk(&points);
    tx.prepare_cached(
        "INSERT INTO patrols (id, user, started_at, ended_at, points, track, time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET user = excluded.user, started_at = excluded.started_at, ended_at = excluded.ended_at, points = excluded.points, track = excluded.track, time = excluded.time",
    )?
    .execute(params![
        p.id,
        p.user,
        p.started_at.timestamp_millis(),
        p.ended_at.map(|t| t.timestamp_millis()),
        points.len() as i64,
        track,
        p.time.map(|t| json_text(&t)).transpose()?,
    ])?;
    Ok(())
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::corrupt("index", e))
}

fn json_or_null<T: serde::Serialize>(value: &T, empty: bool) -> Result<Option<String>> {
    if empty {
        Ok(None)
    } else {
        json_text(value).map(Some)
    }
}

/// Which photos a record refers to: the sync server decides by this who may
/// download a photo.
fn evidence_refs(
    tx: &Transaction<'_>,
    doc_id: &str,
    evidence: &crate::evidence::Evidence,
) -> Result<()> {
    tx.prepare_cached("DELETE FROM evidence_refs WHERE doc_id = ?1")?
        .execute([doc_id])?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO evidence_refs (hash, thumb, doc_id) VALUES (?1, ?2, ?3)",
    )?;
    for (hash, meta) in evidence {
        ins.execute(params![hash, meta.thumb, doc_id])?;
    }
    Ok(())
}

const TABLES: &[(&str, &str)] = &[
    ("shops", "id"),
    ("templates", "id"),
    ("categories", "id"),
    ("inspections", "id"),
    ("inspection_items", "inspection_id, code"),
    ("cases", "id"),
    ("case_history", "case_id, idx"),
    ("case_links", "case_id, idx"),
    ("rules", "id"),
    ("evidence_refs", "hash, doc_id"),
    ("patrols", "id"),
];

/// Search rows wait in two temp tables until the transaction commits, then go
/// into FTS5 in one pass: any statement with a statement journal makes FTS5
/// flush its pending rows to disk, which per shop would cost more than the rest
/// of an import together.
pub(crate) fn create_search_buffer(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS search_delete (rowid INTEGER PRIMARY KEY);
         CREATE TEMP TABLE IF NOT EXISTS search_insert (rowid INTEGER PRIMARY KEY, name TEXT, address TEXT);
         CREATE TEMP TABLE IF NOT EXISTS publish_queue (id TEXT PRIMARY KEY);",
    )?;
    Ok(())
}

/// Moves buffered search rows into FTS5; every transaction calls it before commit.
pub(crate) fn flush_search(tx: &Transaction<'_>) -> Result<()> {
    let pending: i64 = tx
        .prepare_cached("SELECT (SELECT count(*) FROM temp.search_delete) + (SELECT count(*) FROM temp.search_insert)")?
        .query_row([], |r| r.get(0))?;
    if pending == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "DELETE FROM shop_search WHERE rowid IN (SELECT rowid FROM temp.search_delete)",
    )?
    .execute([])?;
    tx.prepare_cached(
        "INSERT INTO shop_search (rowid, name, address) SELECT rowid, name, address FROM temp.search_insert",
    )?
    .execute([])?;
    tx.prepare_cached("DELETE FROM temp.search_delete")?
        .execute([])?;
    tx.prepare_cached("DELETE FROM temp.search_insert")?
        .execute([])?;
    Ok(())
}

pub(crate) fn clear(tx: &Transaction<'_>) -> Result<()> {
    for (table, _) in TABLES {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    tx.execute(
        "INSERT INTO shop_search (shop_search) VALUES ('delete-all')",
        [],
    )?;
    Ok(())
}

pub(crate) fn snapshot(conn: &Connection) -> Result<Vec<String>> {
    // Each document's view: every store reads the same one from the same
    // document, whichever way the document reached it.
    let mut out: Vec<String> = conn
        .prepare("SELECT id, view FROM documents ORDER BY id")?
        .query_map([], |r| {
            Ok(format!(
                "view:|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_else(|| "∅".into())
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (table, key) in TABLES {
        rows_as_lines(
            conn,
            table,
            &format!("SELECT * FROM {table} ORDER BY {key}"),
            &mut out,
        )?;
    }
    // Each case's place for the duplicate search, by case id (the R*Tree's
    // key is the case's rowid, which differs between stores), and how many
    // places have lost their case.
    rows_as_lines(
        conn,
        "case_places",
        "SELECT c.id, p.lat0, p.lat1, p.lon0, p.lon1, p.h0, p.h1
         FROM cases c LEFT JOIN case_places p ON p.key = c.rowid ORDER BY c.id",
        &mut out,
    )?;
    rows_as_lines(
        conn,
        "case_places without a case",
        "SELECT count(*) FROM case_places WHERE key NOT IN (SELECT rowid FROM cases)",
        &mut out,
    )?;
    Ok(out)
}

/// Appends each row `sql` reads as one line, `label:|value|value…`.
fn rows_as_lines(conn: &Connection, label: &str, sql: &str, out: &mut Vec<String>) -> Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut line = format!("{label}:");
        for i in 0..n {
            match row.get_ref(i)? {
                ValueRef::Null => line.push_str("|∅"),
                ValueRef::Integer(v) => line.push_str(&format!("|{v}")),
                ValueRef::Real(v) => line.push_str(&format!("|{v:?}")),
                ValueRef::Text(t) => line.push_str(&format!("|{}", String::from_utf8_lossy(t))),
                ValueRef::Blob(b) => line.push_str(&format!("|{b:?}")),
            }
        }
        out.push(line);
    }
    Ok(())
}
