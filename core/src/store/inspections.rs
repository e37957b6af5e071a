//! Running a checklist at a shop: start, record items, submit. A submitted
//! inspection never changes.

use automerge::ROOT;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Store, new_id, split_list, time_from_ms};
use crate::doc;
use crate::error::{Error, Result};
use crate::model::inspection::{self, Inspection, ItemOutcome, ItemResult, NewInspection, Verdict};
use crate::model::{MAX_NOTE_CHARS, multiline_text, user_id};

/// One line of a shop's inspection history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectionRef {
    pub id: String,
    pub started_at: DateTime<Utc>,
    /// `None` while the inspection is open.
    pub score: Option<u32>,
}

/// An inspection as a screen shows it: the checklist's applicable items in
/// checklist order, each with its duty's name and its result so far. The
/// phone's inspection screen and the console's shop page read this one
/// model.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionSheet {
    pub inspection: Inspection,
    /// The checklist's name, e.g. 一核实五必查.
    pub checklist: String,
    pub lines: Vec<SheetLine>,
}

/// One applicable item of an [`InspectionSheet`].
#[derive(Debug, Clone, PartialEq)]
pub struct SheetLine {
    pub code: String,
    pub text: String,
    /// The duty group's name, e.g. 包环境有序.
    pub duty: String,
    pub weight: u32,
    pub photo_on_fail: bool,
    /// The problem category a failure of it is, if it names one.
    pub category: Option<String>,
    pub result: Option<ItemResult>,
}

impl InspectionSheet {
    /// The lines that failed.
    pub fn failed(&self) -> impl Iterator<Item = &SheetLine> {
        self.lines.iter().filter(|l| {
            l.result
                .as_ref()
                .is_some_and(|r| r.outcome == ItemOutcome::Fail)
        })
    }
}

/// What submitting an inspection produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub score: u32,
    pub verdict: Verdict,
    /// Codes of the failed items: each needs rectification.
    pub failed: Vec<String>,
}

impl Store {
    /// Starts an inspection of a shop with the district's checklist: the items
    /// that apply to this shop's category in this month are fixed now.
    pub fn start_inspection(&mut self, new: NewInspection) -> Result<String> {
        let inspector = user_id("inspector", &new.inspector)?;
        if let Some(fix) = &new.fix {
            fix.validate("fix")?;
        }
        let shop = self.shop(&new.shop_id)?;
        let template = self.template(&new.template_id, new.template_version)?;
        let applicable = template.applicable_items(shop.category, new.started_at);
        let margin = self.config.geofence_margin_m();
        let geofence = new
            .fix
            .map(|f| crate::model::place::Geofence::check(&f, &shop.zone, margin));
        let time = Some(self.record_time(new.started_at)?);
        let record = Inspection {
            id: String::new(),
            shop_id: new.shop_id.clone(),
            template_id: template.id.clone(),
            template_version: template.version,
            inspector,
            started_at: new.started_at,
            ended_at: None,
            fix: new.fix,
            applicable,
            items: Default::default(),
            score: None,
            verdict: None,
            evidence: Default::default(),
            time,
            geofence,
        };
        let id = new_id("insp");
        self.mutate(&id, true, |_, d| doc::write_root(d, &record))?;
        Ok(id)
    }

    /// Records (or re-records) one item's result while the inspection is open.
    pub fn record_item(&mut self, id: &str, code: &str, result: ItemResult) -> Result<()> {
        let current = self.inspection(id)?;
        if current.is_submitted() {
            return Err(Error::InspectionSubmitted { id: id.to_string() });
        }
        let template = self.template(&current.template_id, Some(current.template_version))?;
        if template.item(code).is_none() {
            return Err(Error::UnknownItem {
                template: format!("{}@{}", template.id, template.version),
                code: code.to_string(),
            });
        }
        if !current.applicable.iter().any(|c| c == code) {
            return Err(Error::ItemNotApplicable {
                code: code.to_string(),
            });
        }
        let result = ItemResult {
            outcome: result.outcome,
            note: multiline_text("note", result.note.as_deref(), MAX_NOTE_CHARS)?,
            photos: validate_photos(result.photos)?,
        };
        self.mutate(id, false, |tx, d| {
            let evidence = Store::evidence_for(tx, &result.photos, &current.evidence)?;
            if !evidence.is_empty() {
                let map = doc::map_at(d, "evidence")?;
                for (hash, meta) in evidence
                    .iter()
                    .filter(|(h, _)| !current.evidence.contains_key(*h))
                {
                    doc::put_field(d, &map, hash, meta)?;
                }
            }
            let items = doc::map_at(d, "items")?;
            doc::put_field(d, &items, code, &result)
        })
    }

    /// Submits: every applicable item must have a result and every failed item
    /// that demands evidence a photo. Computes the score; the record is final.
    pub fn submit_inspection(&mut self, id: &str, ended_at: DateTime<Utc>) -> Result<Submitted> {
        let current = self.inspection(id)?;
        if current.is_submitted() {
            return Err(Error::InspectionSubmitted { id: id.to_string() });
        }
        if ended_at < current.started_at {
            return Err(Error::invalid(
                "ended_at",
                "an inspection cannot end before it started",
            ));
        }
        let missing = current.missing_items();
        if !missing.is_empty() {
            return Err(Error::IncompleteInspection { codes: missing });
        }
        let template = self.template(&current.template_id, Some(current.template_version))?;
        for (code, r) in &current.items {
            let needs_photo = template.item(code).is_some_and(|i| i.photo_on_fail);
            if r.outcome == ItemOutcome::Fail && needs_photo && r.photos.is_empty() {
                return Err(Error::PhotoRequired { code: code.clone() });
            }
        }
        let (score, verdict) = inspection::score(&template, &current.items);
        self.mutate(id, false, |_, d| {
            doc::put_field(d, &ROOT, "ended_at", &ended_at.timestamp_millis())?;
            doc::put_field(d, &ROOT, "score", &score)?;
            doc::put_field(d, &ROOT, "verdict", &verdict)
        })?;
        let failed = current
            .items
            .iter()
            .filter(|(_, r)| r.outcome == ItemOutcome::Fail)
            .map(|(c, _)| c.clone())
            .collect();
        Ok(Submitted {
            score,
            verdict,
            failed,
        })
    }

    /// An inspection with its checklist's applicable items (see
    /// [`InspectionSheet`]).
    pub fn inspection_sheet(&self, id: &str) -> Result<InspectionSheet> {
        let inspection = self.inspection(id)?;
        let t = self.template(&inspection.template_id, Some(inspection.template_version))?;
        let lines = t
            .items
            .iter()
            .filter(|item| inspection.applicable.contains(&item.code))
            .map(|item| SheetLine {
                code: item.code.clone(),
                text: item.text.clone(),
                duty: t
                    .duties
                    .iter()
                    .find(|d| d.code == item.duty)
                    .map_or_else(|| item.duty.clone(), |d| d.name.clone()),
                weight: item.weight,
                photo_on_fail: item.photo_on_fail,
                category: item.category.clone(),
                result: inspection.items.get(&item.code).cloned(),
            })
            .collect();
        Ok(InspectionSheet {
            inspection,
            checklist: t.name,
            lines,
        })
    }

    /// An inspection as the index holds it.
    pub fn inspection(&self, id: &str) -> Result<Inspection> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT shop_id, template_id, template_version, inspector, started_at, ended_at,
                        fix_lat, fix_lon, fix_accuracy_m, fix_at, applicable, score, verdict,
                 evidence, time, geofence
                 FROM inspections WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    (
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, String>(3)?,
                    ),
                    (r.get::<_, i64>(4)?, r.get::<_, Option<i64>>(5)?),
                    (
                        r.get::<_, Option<f64>>(6)?,
                        r.get::<_, Option<f64>>(7)?,
                        r.get::<_, Option<f64>>(8)?,
                        r.get::<_, Option<i64>>(9)?,
                    ),
                    (
                        r.get::<_, String>(10)?,
                        r.get::<_, Option<u32>>(11)?,
                        r.get::<_, Option<String>>(12)?,
                    ),
                    (
                        r.get::<_, Option<String>>(13)?,
                        r.get::<_, Option<String>>(14)?,
                        r.get::<_, Option<String>>(15)?,
                    ),
                ))
            })
            .optional()?
            .ok_or_else(|| Error::not_found("inspection", id))?;
        let (
            (shop_id, template_id, template_version, inspector),
            (started, ended),
            fix,
            (applicable, score, verdict),
            (evidence, record_time, geofence),
        ) = row;
        let evidence = match evidence {
            Some(e) => serde_json::from_str(&e).map_err(|e| Error::corrupt(id, e))?,
            None => Default::default(),
        };
        let record_time = record_time
            .map(|t| serde_json::from_str(&t).map_err(|e| Error::corrupt(id, e)))
            .transpose()?;
        let time = |ms: i64| time_from_ms(id, ms);
        let geofence = geofence
            .map(|g| serde_json::from_str(&g).map_err(|e| Error::corrupt(id, e)))
            .transpose()?;
        let fix = match fix {
            (Some(lat), Some(lon), Some(accuracy_m), Some(at)) => Some(crate::model::geo::GpsFix {
                lat,
                lon,
                accuracy_m,
                at: time(at)?,
            }),
            _ => None,
        };
        let verdict = match verdict.as_deref() {
            None => None,
            Some("passed") => Some(Verdict::Passed),
            Some("needs_rectification") => Some(Verdict::NeedsRectification),
            Some(_) => return Err(Error::corrupt(id, "bad verdict")),
        };
        let mut items = std::collections::BTreeMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT code, outcome, note, photos FROM inspection_items WHERE inspection_id = ?1",
        )?;
        let mut rows = stmt.query(params![id])?;
        while let Some(r) = rows.next()? {
            let outcome = match r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)? {
                "pass" => ItemOutcome::Pass,
                "fail" => ItemOutcome::Fail,
                "not_applicable" => ItemOutcome::NotApplicable,
                _ => return Err(Error::corrupt(id, "bad item outcome")),
            };
            let photos: String = r.get(3)?;
            items.insert(
                r.get::<_, String>(0)?,
                ItemResult {
                    outcome,
                    note: r.get(2)?,
                    photos: split_list(&photos),
                },
            );
        }
        Ok(Inspection {
            id: id.to_string(),
            shop_id,
            template_id,
            template_version,
            inspector,
            started_at: time(started)?,
            ended_at: ended.map(time).transpose()?,
            fix,
            applicable: split_list(&applicable),
            items,
            score,
            verdict,
            evidence,
            time: record_time,
            geofence,
        })
    }

    /// A shop's inspections, newest first.
    pub fn inspections_of_shop(&self, shop_id: &str) -> Result<Vec<InspectionRef>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, started_at, score FROM inspections WHERE shop_id = ?1 ORDER BY started_at DESC, id",
        )?;
        let rows = stmt.query_map([shop_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, ms, score) = row?;
            out.push(InspectionRef {
                started_at: time_from_ms(&id, ms)?,
                id,
                score,
            });
        }
        Ok(out)
    }
}

/// Photos are named by their SHA-256 (what `capture_photo` returned).
pub(crate) fn validate_photos(photos: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(photos.len());
    for (i, p) in photos.into_iter().enumerate() {
        let p = p.trim().to_ascii_lowercase();
        crate::evidence::validate_hash(&format!("photos[{i}]"), &p)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}
