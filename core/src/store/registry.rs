//! The shop registry, checklist templates and the category table: what the
//! district administrator publishes and every device reads.

use std::collections::BTreeSet;

use automerge::{AutoCommit, ROOT, ReadDoc as _, transaction::Transactable as _};
use chrono::NaiveDate;
use rusqlite::{OptionalExtension, Row, params};

use super::{
    Origin, Store, build_in_parallel, commit, index, load_doc, persist, search, write_document,
};
use crate::doc;
use crate::error::{Error, Result};
use crate::model::category::Category;
use crate::model::geo::Zone;
use crate::model::shop::{Contact, Letter, Shop, ShopCategory, ShopPatch, ShopStatus, ShopTag};
use crate::model::template::ChecklistTemplate;
use crate::qr::{self, ShopCode};

/// What a list screen shows of a shop.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopSummary {
    pub id: String,
    pub code: String,
    pub name: String,
    pub address: String,
    pub street: String,
    pub lane: Option<String>,
    pub category: ShopCategory,
    pub status: ShopStatus,
    /// The zone's centroid, WGS-84.
    pub lat: f64,
    pub lon: f64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

const SUMMARY_COLUMNS: &str = "id, code, name, address, street, lane, category, status, lat, lon";

/// [`SUMMARY_COLUMNS`] of the shops table under the alias `alias`.
fn summary_columns_of(alias: &str) -> String {
    SUMMARY_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
const SHOP_COLUMNS: &str = "code, name, address, category, contact_person, contact_phone, zone, \
     letter_version, letter_signed, street, lane, tags, status, subdistrict";

impl Store {
    /// Imports a registry (from the district's list): new codes are created,
    /// known codes updated field by field, so re-importing the same list changes
    /// nothing. Every record is validated first; one bad record imports nothing
    /// and the error names it (`shops[12].name`).
    pub fn import_registry(&mut self, shops: Vec<Shop>) -> Result<ImportReport> {
        let clean = validate_registry(shops)?;
        self.import_clean(&clean)
    }

    /// The same import committed in steps of `step` shops, telling
    /// `progress(done, total)` after each; `progress` returning `false` stops
    /// after that step with [`Error::Cancelled`]. Every record is validated
    /// before the first step, so a bad record still imports nothing; importing
    /// the same list again finishes an interrupted import.
    pub fn import_registry_in_steps(
        &mut self,
        shops: Vec<Shop>,
        step: usize,
        mut progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<ImportReport> {
        let clean = validate_registry(shops)?;
        let total = clean.len() as u64;
        let mut report = ImportReport::default();
        let mut done = 0u64;
        let mut steps = clean.chunks(step.max(1)).peekable();
        while let Some(chunk) = steps.next() {
            let r = self.import_clean(chunk)?;
            report.created += r.created;
            report.updated += r.updated;
            report.unchanged += r.unchanged;
            done += chunk.len() as u64;
            if !progress(done, total) && steps.peek().is_some() {
                return Err(Error::Cancelled);
            }
        }
        Ok(report)
    }

    /// Every shop of the registry, closed ones too, by code.
    pub fn all_shops(&self) -> Result<Vec<Shop>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {SHOP_COLUMNS} FROM shops ORDER BY code"))?;
        let rows = stmt.query_map([], shop_from_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// Reads the district's ledger (a spreadsheet's rows as text) against
    /// the registry: what importing it would do and every problem, by row
    /// and column. Writes nothing.
    pub fn plan_ledger(
        &self,
        table: &[Vec<String>],
        options: &crate::onboard::LedgerOptions,
    ) -> Result<crate::onboard::LedgerPlan> {
        Ok(crate::onboard::plan(table, self.all_shops()?, options))
    }

    /// Writes a planned ledger in one transaction, telling `progress(done,
    /// total)` every few hundred shops; `progress` returning `false` cancels
    /// it and nothing is written. A plan with a refused row is refused whole.
    pub fn import_ledger(
        &mut self,
        plan: &crate::onboard::LedgerPlan,
        mut progress: impl FnMut(u64, u64) -> bool,
    ) -> Result<ImportReport> {
        if let Some(p) = plan.refusals().next() {
            let more = plan.refusals().count() - 1;
            return Err(Error::invalid(
                "ledger",
                format!(
                    "{p}{}",
                    if more > 0 {
                        format!("（另有 {more} 处）")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        let mut report = self.import_clean_with(&plan.shops, &mut progress)?;
        report.unchanged += plan.unchanged;
        Ok(report)
    }

    /// Imports validated shops in one transaction.
    fn import_clean(&mut self, clean: &[Shop]) -> Result<ImportReport> {
        self.import_clean_with(clean, &mut |_, _| true)
    }

    /// [`Store::import_clean`], telling `progress` as it goes; `false`
    /// rolls it back with [`Error::Cancelled`].
    fn import_clean_with(
        &mut self,
        clean: &[Shop],
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<ImportReport> {
        const EVERY: u64 = 500;
        let total = clean.len() as u64;
        let mut done = 0u64;
        let mut tell = |done: u64| -> Result<()> {
            if (done.is_multiple_of(EVERY) || done == total) && !progress(done, total) {
                return Err(Error::Cancelled);
            }
            Ok(())
        };
        let tx = self.conn.transaction()?;
        let mut report = ImportReport::default();
        let mut fresh = Vec::new();
        for shop in clean {
            let id = shop.id();
            let Some(mut d) = load_doc(&tx, &id, &self.actor)? else {
                fresh.push(shop);
                continue;
            };
            let old: Shop = doc::read(&d, &id)?;
            let patch = ShopPatch::between(&old, shop);
            if patch.is_empty() {
                report.unchanged += 1;
                continue;
            }
            write_patch(&mut d, &patch)?;
            if let Some(hash) = d.commit() {
                persist(&tx, &id, &mut d, &[hash], Origin::Local)?;
            }
            report.updated += 1;
            done += 1;
            tell(done)?;
        }
        // New shops: documents are built on worker threads while this thread
        // writes them, in input order (see `build_in_parallel`).
        let actor = self.actor.clone();
        build_in_parallel(
            &fresh,
            |shop| {
                let id = shop.id();
                let (mut d, hash) = doc::create(&actor, *shop)?;
                let saved = d.save();
                // The index is built from what the document holds, read back.
                let indexed = index::read_entity(&id, &d)?;
                Ok((id, saved, hash, indexed))
            },
            |(id, saved, hash, indexed)| {
                let view = index::view_of(&indexed)?;
                write_document(&tx, &id, &saved, Some(&view), &[hash], Origin::Local)?;
                index::write_rows(&tx, &id, &indexed)?;
                report.created += 1;
                done += 1;
                tell(done)
            },
        )?;
        commit(tx)?;
        Ok(report)
    }

    /// Registers one new shop; its code must be new.
    pub fn create_shop(&mut self, shop: Shop) -> Result<String> {
        let shop = shop.validated()?;
        let id = shop.id();
        self.mutate(&id, true, |_, d| {
            if d.get(ROOT, "code")?.is_some() {
                return Err(Error::invalid(
                    "code",
                    format!("{} is already registered", shop.code),
                ));
            }
            doc::write_root(d, &shop)
        })?;
        Ok(id)
    }

    /// Changes some of a shop's registry fields; each field merges on its own
    /// with edits made elsewhere.
    pub fn update_shop(&mut self, id: &str, patch: ShopPatch) -> Result<()> {
        let patch = validate_patch(patch)?;
        self.mutate(id, false, |_, d| write_patch(d, &patch))
    }

    /// A shop by document id.
    pub fn shop(&self, id: &str) -> Result<Shop> {
        read_shop(&self.conn, id)
    }

    /// A shop, if the reader may see it (`None` otherwise, as for a shop that
    /// does not exist): the same rule as what a phone receives.
    pub fn visible_shop(
        &self,
        id: &str,
        reader: &crate::access::Visibility,
    ) -> Result<Option<Shop>> {
        if !id.starts_with("shop/")
            || self
                .visible_documents(&[id.to_string()], reader)?
                .is_empty()
        {
            return Ok(None);
        }
        self.shop(id).map(Some)
    }

    /// The ids of the shops on `lanes` (a lane chief's area).
    pub fn shop_ids_in_lanes(
        &self,
        lanes: &[String],
    ) -> Result<std::collections::BTreeSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM shops WHERE lane = ?1")?;
        let mut ids = std::collections::BTreeSet::new();
        for lane in lanes {
            for id in stmt.query_map([lane], |r| r.get::<_, String>(0))? {
                ids.insert(id?);
            }
        }
        Ok(ids)
    }

    /// A shop by its code, typed or read from a signboard.
    pub fn shop_by_code(&self, code: &str) -> Result<Shop> {
        let code = ShopCode::parse(code)?;
        self.shop(&Shop::id_for(&code))
    }

    /// Reads a scanned QR payload and opens the shop: works offline.
    pub fn scan(&self, payload: &str) -> Result<Shop> {
        let code = qr::parse_payload(payload, &self.config.qr_hosts)?;
        self.shop(&Shop::id_for(&code))
    }

    /// Shops whose name or address contains `text` (Chinese substring match,
    /// punctuation and spaces ignored), at most `limit`.
    pub fn search_shops(&self, text: &str, limit: u32) -> Result<Vec<ShopSummary>> {
        self.search_shops_in(text, &crate::access::Area::District, limit)
    }

    /// [`Store::search_shops`] among the shops in `area` (a user's area).
    pub fn search_shops_in(
        &self,
        text: &str,
        area: &crate::access::Area,
        limit: u32,
    ) -> Result<Vec<ShopSummary>> {
        let Some(q) = search::query(text) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT {} FROM shop_search JOIN shops s ON s.rowid = shop_search.rowid
             WHERE shop_search MATCH :q AND {} LIMIT :limit",
            summary_columns_of("s"),
            crate::access::IN_AREA
        );
        let (sub, lanes) = area.bindings();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            rusqlite::named_params! {":q": q, ":limit": limit, ":sub": sub, ":lanes": lanes},
            summary_from_row,
        )?;
        rows.map(|r| r?).collect()
    }

    /// The subdistricts (街道) and lanes (街巷) of the shops in `area`, sorted:
    /// what a filter offers.
    pub fn places_in(&self, area: &crate::access::Area) -> Result<(Vec<String>, Vec<String>)> {
        let (sub, lanes) = area.bindings();
        let mut out = Vec::new();
        for column in ["subdistrict", "lane"] {
            let sql = format!(
                "SELECT DISTINCT s.{column} FROM shops s
                 WHERE s.{column} IS NOT NULL AND {} ORDER BY 1",
                crate::access::IN_AREA
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                rusqlite::named_params! {":sub": sub, ":lanes": lanes},
                |r| r.get::<_, String>(0),
            )?;
            out.push(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        let lanes = out.pop().unwrap_or_default();
        let subdistricts = out.pop().unwrap_or_default();
        Ok((subdistricts, lanes))
    }

    /// Every shop in `area`, in code order: what a map of the area draws.
    pub fn shops_in(&self, area: &crate::access::Area) -> Result<Vec<ShopSummary>> {
        let sql = format!(
            "SELECT {} FROM shops s WHERE {} ORDER BY s.code",
            summary_columns_of("s"),
            crate::access::IN_AREA
        );
        let (sub, lanes) = area.bindings();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            rusqlite::named_params! {":sub": sub, ":lanes": lanes},
            summary_from_row,
        )?;
        rows.map(|r| r?).collect()
    }

    /// The zones of the shops in `area` whose centroid lies in the box
    /// (south, west, north, east), at most `limit`: what a map draws zoomed in.
    pub fn zones_in(
        &self,
        area: &crate::access::Area,
        bbox: (f64, f64, f64, f64),
        limit: u32,
    ) -> Result<Vec<(String, Zone)>> {
        let sql = format!(
            "SELECT s.id, s.zone FROM shops s
             WHERE s.lat BETWEEN :s AND :n AND s.lon BETWEEN :w AND :e AND {}
             ORDER BY s.code LIMIT :limit",
            crate::access::IN_AREA
        );
        let (sub, lanes) = area.bindings();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let (s, w, n, e) = bbox;
        let rows = stmt.query_map(
            rusqlite::named_params! {
                ":s": s, ":w": w, ":n": n, ":e": e, ":limit": limit,
                ":sub": sub, ":lanes": lanes,
            },
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        rows.map(|r| {
            let (id, zone) = r?;
            Ok((id, Zone::decode(&zone)?))
        })
        .collect()
    }

    /// The shops on a street, or on one of its lanes, in code order.
    pub fn shops_on(&self, street: &str, lane: Option<&str>) -> Result<Vec<ShopSummary>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM shops
             WHERE street = ?1 AND (?2 IS NULL OR lane = ?2) ORDER BY code"
        ))?;
        let rows = stmt.query_map(
            params![street.trim(), lane.map(str::trim)],
            summary_from_row,
        )?;
        rows.map(|r| r?).collect()
    }

    /// Streets and their lanes with shop counts (`lane` is `None` for the street itself).
    pub fn streets(&self) -> Result<Vec<(String, Option<String>, u32)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT street, lane, count(*) FROM shops GROUP BY street, lane ORDER BY street, lane",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Publishes checklist templates. A version never changes once published:
    /// the same content again is a no-op, different content is refused.
    pub fn import_templates(&mut self, templates: Vec<ChecklistTemplate>) -> Result<usize> {
        let mut clean = Vec::with_capacity(templates.len());
        for (i, t) in templates.into_iter().enumerate() {
            clean.push(
                t.validated()
                    .map_err(|e| prefix(e, &format!("templates[{i}]")))?,
            );
        }
        let tx = self.conn.transaction()?;
        let mut created = 0;
        for t in &clean {
            let id = ChecklistTemplate::doc_id(&t.id, t.version);
            if let Some(existing) = load_doc(&tx, &id, &self.actor)? {
                if doc::read::<ChecklistTemplate>(&existing, &id)? != *t {
                    return Err(Error::invalid(
                        "template.version",
                        format!(
                            "{}@{} is published with other content; publish a new version",
                            t.id, t.version
                        ),
                    ));
                }
                continue;
            }
            let mut d = AutoCommit::new().with_actor(self.actor.clone());
            doc::write_root(&mut d, t)?;
            if let Some(hash) = d.commit() {
                persist(&tx, &id, &mut d, &[hash], Origin::Local)?;
            }
            created += 1;
        }
        commit(tx)?;
        Ok(created)
    }

    /// A template version, or the newest version when `version` is `None`.
    pub fn template(&self, template_id: &str, version: Option<u32>) -> Result<ChecklistTemplate> {
        let body: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT body FROM templates WHERE template_id = ?1 AND (?2 IS NULL OR version = ?2)
                 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![template_id, version], |r| r.get(0))
            .optional()?;
        let shown = match version {
            Some(v) => format!("{template_id}@{v}"),
            None => template_id.to_string(),
        };
        let body = body.ok_or_else(|| Error::not_found("checklist template", shown.clone()))?;
        serde_json::from_str(&body).map_err(|e| Error::corrupt(shown, e))
    }

    /// Every published template: (id, version, name).
    pub fn templates(&self) -> Result<Vec<(String, u32, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT template_id, version, name FROM templates ORDER BY template_id, version",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Publishes or updates problem categories.
    pub fn import_categories(&mut self, categories: Vec<Category>) -> Result<()> {
        let mut clean = Vec::with_capacity(categories.len());
        for (i, c) in categories.into_iter().enumerate() {
            clean.push(
                c.validated()
                    .map_err(|e| prefix(e, &format!("categories[{i}]")))?,
            );
        }
        let tx = self.conn.transaction()?;
        for c in &clean {
            let id = Category::doc_id(&c.code);
            let mut d = match load_doc(&tx, &id, &self.actor)? {
                Some(d) if doc::read::<Category>(&d, &id)? == *c => continue,
                Some(d) => d,
                None => AutoCommit::new().with_actor(self.actor.clone()),
            };
            doc::write_root(&mut d, c)?;
            if let Some(hash) = d.commit() {
                persist(&tx, &id, &mut d, &[hash], Origin::Local)?;
            }
        }
        commit(tx)?;
        Ok(())
    }

    /// The category table in code order.
    pub fn categories(&self) -> Result<Vec<Category>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT code, name, grp, national_code, local FROM categories ORDER BY code",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Category {
                code: r.get(0)?,
                name: r.get(1)?,
                group: r.get(2)?,
                national_code: r.get(3)?,
                local: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn category_exists(&self, code: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM categories WHERE code = ?1")?
            .exists([code])?)
    }
}

/// Puts a field-level path in front of a validation error's field name.
fn prefix(e: Error, path: &str) -> Error {
    match e {
        Error::InvalidInput { field, reason } => Error::InvalidInput {
            field: format!("{path}.{field}"),
            reason,
        },
        other => other,
    }
}

fn validate_patch(mut p: ShopPatch) -> Result<ShopPatch> {
    use crate::model::{MAX_PLACE_CHARS, optional_text, required_text};
    // A zone drawn by someone is no longer the ledger's estimate.
    if p.zone.is_some() && !p.add_tags.contains(&ShopTag::ZoneEstimated) {
        p.remove_tags.insert(ShopTag::ZoneEstimated);
    }
    if let Some(v) = &p.name {
        p.name = Some(required_text("name", v, 100)?);
    }
    if let Some(v) = &p.address {
        p.address = Some(required_text("address", v, 200)?);
    }
    if let Some(c) = &mut p.contact {
        c.person = required_text("contact.person", &c.person, 50)?;
        c.phone = crate::model::shop::phone("contact.phone", &c.phone)?;
    }
    if let Some(z) = &p.zone {
        p.zone = Some(Zone::new(z.points().to_vec())?);
    }
    if let Some(l) = &mut p.letter {
        l.version = required_text("letter.version", &l.version, 30)?;
    }
    if let Some(sub) = &p.subdistrict {
        p.subdistrict = Some(optional_text(
            "subdistrict",
            sub.as_deref(),
            MAX_PLACE_CHARS,
        )?);
    }
    if let Some(v) = &p.street {
        p.street = Some(required_text("street", v, MAX_PLACE_CHARS)?);
    }
    if let Some(lane) = &p.lane {
        p.lane = Some(optional_text("lane", lane.as_deref(), MAX_PLACE_CHARS)?);
    }
    if let Some(t) = p.add_tags.intersection(&p.remove_tags).next() {
        return Err(Error::invalid(
            "tags",
            format!("{} is both added and removed", t.as_str()),
        ));
    }
    if p.is_empty() {
        return Err(Error::invalid("patch", "nothing to change"));
    }
    Ok(p)
}

/// Writes each changed field on its own key, so concurrent edits of different
/// fields all survive a merge.
pub(crate) fn write_patch(d: &mut AutoCommit, p: &ShopPatch) -> Result<()> {
    let root = ROOT;
    if let Some(v) = &p.name {
        doc::put_field(d, &root, "name", v)?;
    }
    if let Some(v) = &p.address {
        doc::put_field(d, &root, "address", v)?;
    }
    if let Some(v) = &p.category {
        doc::put_field(d, &root, "category", v)?;
    }
    if let Some(c) = &p.contact {
        let contact = doc::map_at(d, "contact")?;
        doc::put_field(d, &contact, "person", &c.person)?;
        doc::put_field(d, &contact, "phone", &c.phone)?;
    }
    if let Some(z) = &p.zone {
        doc::put_field(d, &root, "zone", z)?;
    }
    if let Some(l) = &p.letter {
        let letter = doc::map_at(d, "letter")?;
        doc::put_field(d, &letter, "version", &l.version)?;
        doc::put_field(d, &letter, "signed_on", &l.signed_on)?;
    }
    if let Some(v) = &p.subdistrict {
        doc::put_field(d, &root, "subdistrict", v)?;
    }
    if let Some(v) = &p.street {
        doc::put_field(d, &root, "street", v)?;
    }
    if let Some(v) = &p.lane {
        doc::put_field(d, &root, "lane", v)?;
    }
    if !p.add_tags.is_empty() || !p.remove_tags.is_empty() {
        let tags = doc::map_at(d, "tags")?;
        for t in &p.add_tags {
            d.put(&tags, t.as_str(), true)?;
        }
        for t in &p.remove_tags {
            if d.get(&tags, t.as_str())?.is_some() {
                d.delete(&tags, t.as_str())?;
            }
        }
    }
    if let Some(v) = &p.status {
        doc::put_field(d, &root, "status", v)?;
    }
    Ok(())
}

fn summary_from_row(r: &Row<'_>) -> rusqlite::Result<Result<ShopSummary>> {
    let id: String = r.get(0)?;
    let category: String = r.get(6)?;
    let status: String = r.get(7)?;
    let (Some(category), Some(status)) =
        (ShopCategory::parse(&category), ShopStatus::parse(&status))
    else {
        return Ok(Err(Error::corrupt(
            id,
            "unknown category or status in index",
        )));
    };
    Ok(Ok(ShopSummary {
        id,
        code: r.get(1)?,
        name: r.get(2)?,
        address: r.get(3)?,
        street: r.get(4)?,
        lane: r.get(5)?,
        category,
        status,
        lat: r.get(8)?,
        lon: r.get(9)?,
    }))
}

/// Validates every shop of an import and refuses a code given twice; the error
/// names the record (`shops[12].name`).
fn validate_registry(shops: Vec<Shop>) -> Result<Vec<Shop>> {
    let mut clean = Vec::with_capacity(shops.len());
    let mut seen = BTreeSet::new();
    for (i, shop) in shops.into_iter().enumerate() {
        let shop = shop
            .validated()
            .map_err(|e| prefix(e, &format!("shops[{i}]")))?;
        if !seen.insert(shop.code.clone()) {
            return Err(Error::invalid(
                format!("shops[{i}].code"),
                format!("code {} appears twice in this import", shop.code),
            ));
        }
        clean.push(shop);
    }
    Ok(clean)
}

/// A shop from the index by document id.
pub(crate) fn read_shop(conn: &rusqlite::Connection, id: &str) -> Result<Shop> {
    conn.prepare_cached(&format!("SELECT {SHOP_COLUMNS} FROM shops WHERE id = ?1"))?
        .query_row([id], shop_from_row)
        .optional()?
        .ok_or_else(|| Error::not_found("shop", id))?
}

fn shop_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Shop>> {
    let code: String = r.get(0)?;
    let parse = || -> Result<Shop> {
        let bad =
            |what: &str| Error::corrupt(format!("shop/{code}"), format!("bad {what} in index"));
        let category: String = r.get(3)?;
        let zone: String = r.get(6)?;
        let letter_version: Option<String> = r.get(7)?;
        let letter_signed: Option<String> = r.get(8)?;
        let tags: String = r.get(11)?;
        let status: String = r.get(12)?;
        let letter = match (letter_version, letter_signed) {
            (Some(version), Some(date)) => Some(Letter {
                version,
                signed_on: NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                    .map_err(|_| bad("letter date"))?,
            }),
            _ => None,
        };
        Ok(Shop {
            code: code.clone(),
            name: r.get(1)?,
            address: r.get(2)?,
            category: ShopCategory::parse(&category).ok_or_else(|| bad("category"))?,
            contact: Contact {
                person: r.get(4)?,
                phone: r.get(5)?,
            },
            zone: Zone::decode(&zone)?,
            letter,
            subdistrict: r.get(13)?,
            street: r.get(9)?,
            lane: r.get(10)?,
            tags: tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| ShopTag::parse(t).ok_or_else(|| bad("tag")))
                .collect::<Result<_>>()?,
            status: ShopStatus::parse(&status).ok_or_else(|| bad("status"))?,
        })
    };
    Ok(parse())
}
